// The live table of open positions, shared by the dashboard and the recorders page.
// Its <thead> is the macro open_positions_table in templates/_tables.html; keep the two in step.
import { api } from "./api.js";
import { el, fillBody, flash, numCell, timeCell } from "./dom.js";
import { pnl, pnlClass, price, qty } from "./format.js";
import { onEvent } from "./live.js";

export const STOP_REASONS = { sl: "stop-loss", breakeven: "break-even", trail: "trail" };

/** The target legs: level × contracts still allotted, and what each has filled (§3b). */
export function legsCell(p) {
  const legs = p.targets ?? [];
  if (!legs.length) return numCell("—", "legs");
  return el("td", { className: "num legs" }, legs.map((leg, i) => {
    const done = leg.filled > 0 && !leg.allotted;
    return el("span", {
      className: `leg${done ? " filled" : ""}`, dataset: { leg: i + 1 },
      title: `Target ${i + 1}: ${qty(leg.allotted)} contract(s) left to close at ${price(leg.level)}, ${qty(leg.filled)} filled`,
    }, `${price(leg.level)} × ${qty(leg.allotted)}`, leg.filled > 0 ? el("span", { className: "leg-filled" }, ` · filled ${qty(leg.filled)}`) : null);
  }));
}

/** The stop and what put it there, e.g. "25,003.00 · trail". */
export function stopCell(p) {
  const level = p.stop_price ?? p.sl_price ?? null;
  if (level === null) return numCell("—", "stop");
  const reason = p.stop_reason ? STOP_REASONS[p.stop_reason] ?? p.stop_reason : null;
  return el("td", { className: `num stop ${p.stop_reason ?? ""}`.trim() },
    price(level), reason ? el("span", { className: "stop-reason" }, ` · ${reason}`) : null);
}

const exitsOf = (p) => JSON.stringify([p.targets ?? null, p.stop_price ?? null, p.stop_reason ?? null]);

export class OpenPositions {
  /**
   * tbody: the table body to fill; recorderName(id) → name; empty: what to show with none;
   * onClosed(position): called when the engine closes one (after the row is gone);
   * onChange(count): called after every change, marks included.
   */
  constructor(tbody, { recorderName, empty, onClosed, onChange } = {}) {
    this.tbody = tbody;
    this.recorderName = recorderName ?? ((id) => `#${id}`);
    this.empty = empty ?? "No open positions.";
    this.onClosed = onClosed ?? (() => {});
    this.onChange = onChange ?? (() => {});
    this.positions = new Map(); // id → position (plus last_price/unrealized_pnl once marked)
    onEvent("position.opened", (p) => this.upsert(p));
    onEvent("position.changed", (p) => this.upsert(p));
    onEvent("position.marked", (p) => this.upsert(p));
    onEvent("position.closed", (p) => {
      this.remove(p.id);
      this.onClosed(p);
    });
  }

  async load() {
    const { positions } = await api("/api/positions", { params: { status: "open" } });
    const previous = this.positions;
    this.positions = new Map();
    for (const p of positions) {
      const marks = previous.get(p.id); // without a price in Redis the API has none: keep the last mark
      const unmarked = p.last_price === null || p.last_price === undefined;
      this.positions.set(p.id, marks && unmarked ? { ...p, last_price: marks.last_price, unrealized_pnl: marks.unrealized_pnl } : p);
    }
    this.render();
  }

  upsert(p) {
    if (p.status !== "open") {
      this.remove(p.id);
      return;
    }
    const known = this.positions.get(p.id);
    this.positions.set(p.id, { ...known, ...p });
    const row = this.tbody.querySelector(`tr[data-position-id="${p.id}"]`);
    if (row) {
      const fresh = this.row(this.positions.get(p.id));
      row.replaceWith(fresh);
      const moved = known && p.targets !== undefined && exitsOf(known) !== exitsOf({ ...known, ...p });
      if (!known || moved || known.quantity !== p.quantity || known.avg_entry_price !== p.avg_entry_price) flash(fresh);
      this.onChange(this.positions.size);
    } else {
      this.render();
      const added = this.tbody.querySelector(`tr[data-position-id="${p.id}"]`);
      if (added) flash(added);
    }
  }

  remove(id) {
    if (this.positions.delete(id)) this.render();
  }

  render() {
    const sorted = [...this.positions.values()].sort((a, b) => b.id - a.id);
    fillBody(this.tbody, sorted.map((p) => this.row(p)), this.empty);
    this.onChange(sorted.length);
  }

  row(p) {
    const unrealized = p.unrealized_pnl ?? null;
    return el("tr", {
      className: "opens-detail", tabIndex: 0, title: "Open its fills and stop moves",
      dataset: { positionId: p.id, recorderId: p.recorder_id },
    },
      el("td", {}, el("span", { className: "name-cut", title: this.recorderName(p.recorder_id) }, this.recorderName(p.recorder_id))),
      el("td", { className: "symbol hide-sm" }, p.symbol),
      el("td", {}, el("span", { className: `side ${p.side}` }, p.side)),
      numCell(qty(p.quantity)),
      numCell(price(p.avg_entry_price)),
      legsCell(p),
      stopCell(p),
      numCell(price(p.last_price ?? null), "last hide-sm"),
      el("td", {
        className: `num unrealized ${pnlClass(unrealized)}`,
        title: unrealized === null ? "Waiting for the next price tick" : "",
      }, pnl(unrealized)),
      numCell(pnl(p.worst_unrealized_pnl), `hide-sm ${pnlClass(p.worst_unrealized_pnl)}`),
      numCell(pnl(p.best_unrealized_pnl), `hide-sm ${pnlClass(p.best_unrealized_pnl)}`),
      timeCell(p.opened_at, "hide-sm"),
    );
  }
}
