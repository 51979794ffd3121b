// The recorders page: the list with each one's live position, the open positions, recent closes
// and signals (each with its timeline); create, edit, webhook, reset history and delete (each of
// the last two confirmed).
import { api, confirmDialog, toast } from "./api.js";
import { el, fillBody, numCell, timeCell } from "./dom.js";
import { EXIT_REASONS, pnl, pnlClass, price, qty } from "./format.js";
import { coalesced, onEvent, onResync } from "./live.js";
import { OpenPositions } from "./positions.js";
import { distanceText } from "./exit_plan_editor.js";
import { RecorderDialog, WebhookDialog } from "./recorder_forms.js";
import { showRecorderAlerts } from "./recorder_alerts.js";
import { TradeDetail } from "./trade_detail.js";
import { bindTimelineButtons, timelineButton } from "./timeline.js";

const recorders = new Map(); // id → recorder
const nameOf = (id) => recorders.get(id)?.name ?? `#${id}`;

const open = new OpenPositions(document.querySelector("#open-positions tbody"), {
  recorderName: nameOf,
  empty: "No open positions. The next alert of an enabled recorder opens one here.",
  onChange: (n) => {
    document.getElementById("open-count").textContent = n ? `${n} open` : "";
    renderRecorders(); // each recorder row shows its own position and unrealized PnL
  },
});

const detail = new TradeDetail({ recorderName: nameOf });
detail.bindRows(document.getElementById("open-positions"));
detail.bindRows(document.getElementById("closed-positions"));

// ---- the recorder list ----

/** The TP and SL cells: ticks, or the exit plan's legs and stop (with BE / trail marks). */
function exitCells(r) {
  if (!r.exits) return [numCell(r.tp_ticks ?? "—", "hide-sm"), numCell(r.sl_ticks ?? "—", "hide-sm")];
  const legs = (r.exits.targets ?? []).map(distanceText).join(" / ") || "—";
  const extras = [r.exits.breakeven ? "BE" : null, r.exits.trail ? "trail" : null].filter(Boolean);
  return [
    el("td", { className: "num hide-sm plan", title: "Exit plan: the target legs" }, legs),
    el("td", { className: "num hide-sm plan", title: "Exit plan: the stop, break-even (BE) and trailing" },
      distanceText(r.exits.stop), extras.length ? el("span", { className: "muted" }, ` · ${extras.join(" · ")}`) : null),
  ];
}

function positionSummary(positions) {
  if (!positions.length) return el("span", { className: "muted" }, "flat");
  return positions.map((p, i) => el("span", {},
    i ? ", " : "",
    el("span", { className: `side ${p.side}` }, p.side), ` ${qty(p.quantity)} ${p.symbol} @ ${price(p.avg_entry_price)}`));
}

function recorderRow(r) {
  const positions = [...open.positions.values()].filter((p) => p.recorder_id === r.id);
  const marked = positions.filter((p) => p.unrealized_pnl !== undefined && p.unrealized_pnl !== null);
  const unrealized = marked.length ? marked.reduce((sum, p) => sum + p.unrealized_pnl, 0) : null;
  const button = (label, action, extra = "") => el("button", {
    type: "button", className: `btn btn-sm ${extra}`.trim(), dataset: { action, id: r.id },
  }, label);
  return el("tr", { dataset: { recorderId: r.id } },
    el("td", {}, el("b", { className: "name-cut", title: r.name }, r.name)),
    el("td", {}, el("span", { className: `pill ${r.enabled ? "on" : "off"}` }, r.enabled ? "Enabled" : "Off")),
    numCell(qty(r.default_qty), "hide-sm"),
    ...exitCells(r),
    el("td", { className: "hide-sm" }, r.on_opposite === "reverse" ? "Reverse" : "Close"),
    el("td", { className: "hide-sm" }, r.allow_dca ? "Yes" : "No"),
    el("td", { className: "position" }, positionSummary(positions)),
    numCell(unrealized === null ? "—" : pnl(Math.round(unrealized * 100) / 100), `unrealized ${pnlClass(unrealized)}`),
    el("td", { className: "actions" },
      button("Webhook", "webhook"), button("Edit", "edit"),
      button("Reset", "reset", "btn-ghost danger"), button("Delete", "delete", "btn-ghost danger")),
  );
}

function renderRecorders() {
  const list = [...recorders.values()];
  document.getElementById("first-recorder").hidden = list.length > 0;
  document.getElementById("recorders-panel").hidden = list.length === 0;
  fillBody(document.querySelector("#recorders tbody"), list.map(recorderRow), "");
  showRecorderAlerts(list);
}

async function loadRecorders() {
  const data = await api("/api/recorders");
  recorders.clear();
  for (const r of data.recorders) recorders.set(r.id, r);
  renderRecorders();
}

// ---- recent closes and signals ----

async function loadClosed() {
  const { positions } = await api("/api/positions", { params: { status: "closed", limit: 10 } });
  positions.sort((a, b) => (b.closed_at ?? "").localeCompare(a.closed_at ?? ""));
  fillBody(document.querySelector("#closed-positions tbody"), positions.map((p) => el("tr", {
    className: "opens-detail", tabIndex: 0, dataset: { positionId: p.id },
  },
    timeCell(p.closed_at),
    el("td", {}, el("span", { className: "name-cut", title: nameOf(p.recorder_id) }, nameOf(p.recorder_id))),
    el("td", { className: "symbol hide-sm" }, p.symbol),
    el("td", {}, el("span", { className: `side ${p.side}` }, p.side)),
    numCell(qty(p.quantity), "hide-sm"),
    numCell(price(p.avg_entry_price), "hide-sm"),
    numCell(price(p.exit_price), "hide-sm"),
    el("td", { className: "hide-sm" }, EXIT_REASONS[p.exit_reason] ?? p.exit_reason ?? "—"),
    numCell(pnl(p.realized_pnl), `pnl ${pnlClass(p.realized_pnl)}`),
  )), "Nothing closed yet. A position closes on its take-profit, stop-loss or an opposite signal.");
}

function signalText(s) {
  if (s.action) return `${s.action} ${s.qty ?? ""} ${s.ticker}`.replace(/\s+/g, " ");
  if (s.market_position) return `${s.market_position} ${s.position_size ?? ""} ${s.ticker}`.replace(/\s+/g, " ");
  return s.ticker ?? "—";
}

async function loadSignals() {
  const { signals } = await api("/api/signals", { params: { limit: 10 } });
  fillBody(document.querySelector("#signals tbody"), signals.map((s) => el("tr", { dataset: { signalId: s.id } },
    timeCell(s.received_at),
    el("td", { className: "hide-sm" }, nameOf(s.recorder_id)),
    el("td", { className: "signal" }, signalText(s)),
    numCell(price(s.price), "hide-sm"),
    el("td", { title: s.reason ?? "" },
      el("span", { className: `pill ${s.status}` }, s.status), s.reason ? ` ${s.reason}` : ""),
    el("td", { className: "actions" }, timelineButton(s.id)),
  )), "No signals yet. Fire your TradingView alert (or post to the webhook URL) and it shows here.");
}

bindTimelineButtons(document.getElementById("signals"));

const refreshClosed = coalesced(loadClosed);
const refreshSignals = coalesced(loadSignals);

// ---- actions ----

const recorderDialog = new RecorderDialog((saved, created) => {
  recorders.set(saved.id, saved);
  open.render(); // re-renders the recorder list too, and every name shown
  refreshClosed();
  refreshSignals();
  if (created) webhookDialog.open(saved); // the next step: put the URL into TradingView
});
const webhookDialog = new WebhookDialog(() => loadRecorders());

async function resetHistory(r) {
  const yes = await confirmDialog({
    title: `Reset the history of ${r.name}?`,
    message: "Its closed trades and its signal log are deleted, so the dashboard starts again from zero for this recorder. An open position stays. This cannot be undone.",
    confirm: "Reset history", danger: true,
  });
  if (!yes) return;
  const done = await api(`/api/recorders/${r.id}/reset-history`, { method: "POST", body: {} });
  toast(done.queued ? done.message : `Deleted ${done.deleted_positions} closed trades and ${done.deleted_signals} signals of ${r.name}.`, "success");
  await refreshAll();
}

async function deleteRecorder(r) {
  const yes = await confirmDialog({
    title: `Delete ${r.name}?`,
    message: "Its webhook URL stops working, and all its signals and positions, open ones included, are deleted. This cannot be undone.",
    confirm: "Delete recorder", danger: true,
  });
  if (!yes) return;
  const done = await api(`/api/recorders/${r.id}`, { method: "DELETE" });
  toast(done.queued ? done.message : `Recorder ${r.name} deleted.`, "success");
  await refreshAll();
}

const ACTIONS = {
  new: () => recorderDialog.open(),
  edit: (r) => recorderDialog.open(r),
  webhook: (r) => webhookDialog.open(r),
  reset: resetHistory,
  delete: deleteRecorder,
};

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button || !(button.dataset.action in ACTIONS)) return;
  const recorder = button.dataset.id ? recorders.get(Number(button.dataset.id)) : undefined;
  Promise.resolve(ACTIONS[button.dataset.action](recorder)).catch(() => {}); // the API showed a toast
});

// ---- loading and live updates ----

const refreshAll = coalesced(async () => {
  await loadRecorders();
  await Promise.all([open.load(), loadClosed(), loadSignals()]);
  document.body.dataset.loaded = "true"; // the browser tests wait for this
});

onEvent("position.closed", () => refreshClosed());
onEvent("signal.*", () => refreshSignals());
onResync(() => refreshAll());

refreshAll().then(() => {
  if (new URLSearchParams(window.location.search).has("new")) {
    window.history.replaceState(null, "", window.location.pathname);
    recorderDialog.open();
  }
});
