// One trade in a dialog: its fills by kind, the stop's moves, MFE/MAE in points, ticks and dollars,
// and the time held, from GET /api/positions/<id>; opened from any row with data-position-id.
// A fill made by a signal links to that signal's timeline.
import { api } from "./api.js";
import { el, fillBody, numCell, timeCell } from "./dom.js";
import { EXIT_REASONS, pnl, pnlClass, price, qty, usd } from "./format.js";
import { coalesced, onEvent } from "./live.js";
import { STOP_REASONS, legsCell, stopCell } from "./positions.js";
import { bindTimelineButtons, timelineButton } from "./timeline.js";

const FILL_KINDS = { entry: "Entry", exit: "Exit", tp: "Target" };

/** 3725.5 → "1h 2m 5s": the time a position was (or has been) held. */
export function heldText(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  const parts = [[Math.floor(s / 86400), "d"], [Math.floor((s % 86400) / 3600), "h"], [Math.floor((s % 3600) / 60), "m"], [s % 60, "s"]];
  const first = parts.findIndex(([n]) => n > 0);
  if (first === -1) return "0s";
  return parts.slice(first, first + 3).map(([n, unit]) => `${n}${unit}`).join(" ");
}

function excursion(name, e, tone) {
  return el("div", { className: `excursion ${tone}`, dataset: { excursion: name } },
    el("span", { className: "card-label" }, name === "max_favorable" ? "Max favorable (MFE)" : "Max adverse (MAE)"),
    el("span", { className: "card-value num" }, `${qty(e.points)} pts`),
    el("span", { className: "card-sub" }, `${qty(e.ticks)} ticks · ${usd(e.usd)} per contract`));
}

function fillRow(f) {
  return el("tr", { dataset: { kind: f.kind } },
    timeCell(f.filled_at),
    el("td", {}, el("span", { className: `pill fill-${f.kind}` }, FILL_KINDS[f.kind] ?? f.kind)),
    el("td", {}, el("span", { className: `side ${f.side === "buy" ? "long" : f.side === "sell" ? "short" : f.side}` }, f.side)),
    numCell(qty(f.quantity)),
    numCell(price(f.price)),
    numCell(f.kind === "entry" ? "—" : pnl(f.realized_pnl), pnlClass(f.realized_pnl)),
    el("td", { className: "hide-sm" }, EXIT_REASONS[f.reason] ?? f.reason ?? "—"),
    el("td", { className: "actions" }, f.signal_id ? timelineButton(f.signal_id) : null),
  );
}

export class TradeDetail {
  /** recorderName(id) → the name shown in the title. */
  constructor({ recorderName } = {}) {
    this.dialog = document.getElementById("trade-dialog");
    this.recorderName = recorderName ?? ((id) => `#${id}`);
    this.id = null;
    for (const button of this.dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => this.dialog.close());
    }
    this.dialog.addEventListener("close", () => { this.id = null; });
    bindTimelineButtons(this.dialog); // a fill made by a signal: that signal's hops
    // A leg fill, a stop move or the close adds to what the open dialog shows.
    this.reload = coalesced(() => this.load());
    for (const type of ["position.changed", "position.closed"]) {
      onEvent(type, (p) => { if (p.id === this.id) this.reload(); });
    }
  }

  /** Open the detail of the position on any row (with data-position-id) clicked in `container`. */
  bindRows(container) {
    const pick = (event) => {
      const row = event.target.closest("tr[data-position-id]");
      if (!row || event.target.closest("button, a, input, select")) return;
      this.open(Number(row.dataset.positionId)).catch(() => {}); // the API showed a toast
    };
    container.addEventListener("click", pick);
    container.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.matches("tr[data-position-id]")) pick(event);
    });
  }

  async open(id) {
    this.id = id;
    await this.load();
    if (!this.dialog.open) this.dialog.showModal();
  }

  async load() {
    if (this.id === null) return;
    const p = await api(`/api/positions/${this.id}`);
    if (p.id !== this.id) return;
    this.dialog.dataset.positionId = p.id;
    this.dialog.dataset.status = p.status;
    document.getElementById("trade-dialog-title").textContent =
      `${this.recorderName(p.recorder_id)} · ${p.side} ${qty(p.quantity)} ${p.symbol}`;
    this.showFacts(p);
    const { max_favorable: mfe, max_adverse: mae } = p.excursions;
    document.getElementById("trade-excursions").replaceChildren(
      excursion("max_favorable", mfe, "pos"), excursion("max_adverse", mae, "neg"));
    fillBody(document.querySelector("#trade-fills tbody"), p.fills.map(fillRow), "No fills recorded.");
    fillBody(document.querySelector("#trade-stops tbody"), p.stop_moves.map((m) => el("tr", {},
      timeCell(m.moved_at), numCell(price(m.stop_price)), el("td", {}, STOP_REASONS[m.reason] ?? m.reason ?? "—"),
    )), "The stop never moved.");
  }

  showFacts(p) {
    const open = p.status === "open";
    const facts = [
      ["Status", open ? "Open" : `Closed · ${EXIT_REASONS[p.exit_reason] ?? p.exit_reason ?? "—"}`],
      ["Average entry", price(p.avg_entry_price)],
      [open ? "Targets" : "Exit", open ? legsCell(p).childNodes : price(p.exit_price)],
      [open ? "Stop" : "Last stop", stopCell(p).childNodes],
      ["Realized", el("span", { className: pnlClass(p.realized_pnl) }, pnl(p.realized_pnl))],
      ["Held", el("span", { dataset: { held: "" } }, heldText(p.held_seconds))],
    ];
    document.getElementById("trade-facts").replaceChildren(...facts.flatMap(([name, value]) => [
      el("dt", {}, name), el("dd", {}, ...(typeof value === "string" ? [value] : value instanceof Node ? [value] : [...value])),
    ]));
  }
}
