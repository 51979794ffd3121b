// The control center: every open position and signal live, each service's health and pipeline
// figures, an alerts
// feed, and the kill switch (flatten all) behind a typed confirmation.
import { api, toast } from "./api.js";
import { el, fillBody, flash, numCell, timeCell } from "./dom.js";
import { loadRecorders, wireDialog } from "./directory.js";
import { price, zonedTime } from "./format.js";
import { coalesced, onEvent, onResync } from "./live.js";
import { loadPipeline } from "./pipeline_metrics.js";
import { OpenPositions } from "./positions.js";

let recorders = [];
const nameOf = (id) => recorders.find((r) => r.id === id)?.name ?? `#${id}`;

const open = new OpenPositions(document.querySelector("#open-positions tbody"), {
  recorderName: nameOf,
  empty: "Nothing open. Positions appear here live when a recorder's alert arrives.",
  onChange: (n) => { document.getElementById("open-count").textContent = n ? `${n} open` : ""; },
});

// ---- health ----

const SERVICE_NAMES = {
  ui: "Web UI", redis: "Redis", postgres: "PostgreSQL", price_feed: "Price feed",
  engine: "Position engine", executor: "Order executor", notifier: "Notifications",
};
// What a service that is down means for the trader.
const DOWN_MEANS = {
  engine: "signals wait in the stream; no position moves",
  executor: "orders wait in the queue; nothing reaches the broker",
  notifier: "notifications wait; nothing is sent",
};
const STATE_TEXT = { ok: "OK", degraded: "Degraded", down: "Down" };

async function loadHealth() {
  const { services, price_feed: feed } = await api("/api/status", { quiet: true });
  const cards = Object.entries(services).map(([name, state]) => {
    let sub = "";
    if (name === "price_feed" && feed) {
      sub = `${feed.active_source ?? feed.source ?? ""}${feed.delayed_symbols?.length ? ` · delayed: ${feed.delayed_symbols.join(", ")}` : ""}`;
    } else if (name === "price_feed") {
      sub = "not reporting: is it running?";
    } else if (state === "down" && DOWN_MEANS[name]) {
      sub = DOWN_MEANS[name];
    }
    return el("div", { className: `card health-card ${state}`, dataset: { service: name } },
      el("div", { className: "card-label" }, SERVICE_NAMES[name] ?? name),
      el("div", { className: "card-value" }, el("span", { className: "dot" }), STATE_TEXT[state] ?? state),
      el("div", { className: "card-sub" }, sub));
  });
  document.getElementById("health").replaceChildren(...cards);
}

// ---- signals ----

function signalText(s) {
  if (s.action) return `${s.action} ${s.qty ?? ""} ${s.ticker ?? ""}`.replace(/\s+/g, " ");
  if (s.market_position) return `${s.market_position} ${s.position_size ?? ""} ${s.ticker ?? ""}`.replace(/\s+/g, " ");
  return s.ticker ?? "—";
}

async function loadSignals() {
  const { signals } = await api("/api/signals", { params: { limit: 50 } });
  fillBody(document.querySelector("#signals tbody"), signals.map((s) => el("tr", { dataset: { signalId: s.id } },
    timeCell(s.received_at),
    el("td", {}, nameOf(s.recorder_id)),
    el("td", { className: "signal" }, signalText(s)),
    numCell(price(s.price), "hide-sm"),
    el("td", {}, el("span", { className: `pill ${s.status}` }, s.status)),
    el("td", { className: "hide-sm wrap" }, s.reason ?? ""),
  )), "No signals yet. Point a TradingView alert at a recorder's webhook URL (Recorders page) and each one shows here.");
}

// ---- alerts ----

const ALERT_TITLES = { "account.alert": "Broker", "account.mismatch": "Mismatch", "account.trader_paused": "Trader paused" };

// account.mismatch rows: {subaccount_id, symbol, expected, actual, since}
function describeMismatch(d) {
  const rows = d?.mismatches ?? [];
  if (!rows.length) return `Positions on account #${d?.account_id} match the broker again.`;
  const parts = rows.map((m) => `subaccount #${m.subaccount_id} ${m.symbol}: expected ${m.expected}, broker ${m.actual}`);
  return `Positions differ from the broker on account #${d?.account_id}: ${parts.join("; ")}`;
}

function describeAlert(type, d) {
  if (d?.message) return d.message;
  if (type === "account.mismatch") return describeMismatch(d);
  return JSON.stringify(d);
}

function addAlert(type, data) {
  const list = document.getElementById("alerts");
  list.querySelector(".empty-message")?.remove();
  const item = el("li", { className: `alert ${type.replace(".", "-")}` },
    el("span", { className: "time" }, zonedTime(new Date().toISOString()).slice(11)),
    el("span", { className: "pill off" }, ALERT_TITLES[type] ?? type),
    el("span", { className: "wrap" }, describeAlert(type, data)));
  list.prepend(item);
  flash(item);
  while (list.children.length > 100) list.lastElementChild.remove();
}

for (const type of Object.keys(ALERT_TITLES)) onEvent(type, (d) => addAlert(type, d));

// ---- the kill switch ----

const dialog = wireDialog(document.getElementById("kill-dialog"));
const killForm = document.getElementById("kill-form");
const confirmButton = document.getElementById("kill-confirm");
killForm.elements.typed.addEventListener("input", (event) => {
  confirmButton.disabled = event.target.value.trim() !== "FLATTEN";
});
document.getElementById("kill-switch").addEventListener("click", () => {
  killForm.reset();
  confirmButton.disabled = true;
  dialog.showModal();
  killForm.elements.typed.focus();
});
killForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (killForm.elements.typed.value.trim() !== "FLATTEN") return;
  confirmButton.disabled = true;
  try {
    const done = await api("/api/control/flatten-all", { method: "POST", body: {} });
    dialog.close();
    toast(`Kill switch: ${done.traders_switched_off} trader(s) switched off, ${done.flatten_orders.length} subaccount(s) being flattened.`, "success", 8000);
    addAlert("account.alert", { message: `Kill switch used: ${done.traders_switched_off} trader(s) off, ${done.flatten_orders.length} flatten order(s) sent.` });
  } catch {
    confirmButton.disabled = false;
  }
});

// ---- loading ----

const refreshSignals = coalesced(loadSignals);
const refreshHealth = coalesced(loadHealth);
const refreshAll = coalesced(async () => {
  recorders = await loadRecorders();
  await Promise.all([open.load(), loadSignals(), loadHealth(), loadPipeline()]);
  document.body.dataset.loaded = "true";
});
onEvent("signal.*", () => refreshSignals());
onEvent("price.status", () => refreshHealth());
onResync(() => refreshAll());
const refreshPipeline = coalesced(loadPipeline);
setInterval(() => { if (!document.hidden) { refreshHealth(); refreshPipeline(); } }, 5000);
refreshAll();
