// The dashboard: metric cards, profit vs drawdown chart, daily calendar, open positions and trade
// history, all from /api/dashboard/* and /api/positions, filtered by recorder and dates (days in
// the user's zone, which the API cuts the same way).
import { api, fetchAll, toast } from "./api.js";
import { currentMonth, renderCalendar, shiftMonth } from "./calendar.js";
import { ProfitChart } from "./chart.js";
import { el, fillBody, numCell, timeCell } from "./dom.js";
import {
  EXIT_REASONS, TIME_ZONE, duration, offsetIso, percent, pnl, pnlClass, price, qty, ratio, usd,
} from "./format.js";
import { coalesced, onEvent, onResync } from "./live.js";
import { OpenPositions } from "./positions.js";
import { TradeDetail } from "./trade_detail.js";

const PER_PAGE = 50;
const form = document.getElementById("filters");
const recorderNames = new Map();
const state = { page: 1, month: null, chart: null };

// ---- filters (kept in the address bar, so a reload or a shared link shows the same view) ----

function filters() {
  const data = new FormData(form);
  return { recorder_id: data.get("recorder_id"), from: data.get("from"), to: data.get("to") };
}

/** From after To: one message beside the dates and no request (the API would answer each with a 422). */
function datesInOrder() {
  const { from, to } = filters();
  const wrong = Boolean(from && to && from > to);
  document.getElementById("dates-error").hidden = !wrong;
  for (const name of ["from", "to"]) form.elements[name].setAttribute("aria-invalid", String(wrong));
  return !wrong;
}

function readUrl() {
  const query = new URLSearchParams(window.location.search);
  for (const name of ["from", "to"]) form.elements[name].value = query.get(name) ?? "";
  state.page = Math.max(1, Number(query.get("page")) || 1);
  state.month = query.get("month") || (query.get("to") ? query.get("to").slice(0, 7) : currentMonth());
  return query.get("recorder_id") ?? "";
}

function writeUrl() {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters())) if (value) query.set(key, value);
  if (state.page > 1) query.set("page", state.page);
  if (state.month !== currentMonth()) query.set("month", state.month);
  const text = query.toString();
  window.history.replaceState(null, "", text ? `?${text}` : window.location.pathname);
}

async function loadRecorders(selected) {
  const { recorders } = await api("/api/recorders");
  recorderNames.clear();
  const select = form.elements.recorder_id;
  select.replaceChildren(el("option", { value: "" }, "All recorders"));
  for (const r of recorders) {
    recorderNames.set(r.id, r.name);
    select.append(el("option", { value: String(r.id) }, r.name));
  }
  select.value = recorders.some((r) => String(r.id) === selected) ? selected : "";
  document.getElementById("onboarding").hidden = recorders.length > 0;
}

// ---- metric cards ----

const CARDS = {
  net_pnl: (m) => [pnl(m.net_pnl), pnlClass(m.net_pnl), `${pnl(m.gross_profit)} / ${pnl(-m.gross_loss)}`],
  win_rate: (m) => [percent(m.win_rate), "", `${m.wins} won · ${m.losses} lost`],
  profit_factor: (m) => [ratio(m.profit_factor), "", m.losses ? "gross profit ÷ gross loss" : "no losing trade yet"],
  avg_win: (m) => [pnl(m.avg_win), pnlClass(m.avg_win), "per winning trade"],
  avg_loss: (m) => [pnl(m.avg_loss), pnlClass(m.avg_loss), "per losing trade"],
  expectancy: (m) => [pnl(m.expectancy), pnlClass(m.expectancy), "average PnL per trade"],
  max_drawdown: (m) => [usd(m.max_drawdown), m.max_drawdown ? "neg" : "", "largest drop from a peak"],
  trades: (m) => [String(m.trades), "", "closed positions"],
};

function showMetrics(m) {
  for (const card of document.querySelectorAll("#cards .card")) {
    const [text, tone, sub] = CARDS[card.dataset.metric](m);
    const value = card.querySelector(".card-value");
    value.textContent = text;
    value.className = `card-value num ${tone}`.trim();
    card.querySelector(".card-sub").textContent = sub;
  }
}

// ---- trade history ----

function tradeRow(t) {
  return el("tr", { className: "opens-detail", tabIndex: 0, dataset: { positionId: t.id } },
    timeCell(t.closed_at),
    el("td", { className: "hide-sm" }, el("span", { className: "name-cut", title: t.recorder_name }, t.recorder_name)),
    el("td", { className: "symbol" }, t.symbol),
    el("td", {}, el("span", { className: `side ${t.side}` }, t.side)),
    numCell(qty(t.quantity)),
    numCell(price(t.avg_entry_price), "hide-sm"),
    numCell(price(t.exit_price), "hide-sm"),
    el("td", { className: "hide-sm" }, EXIT_REASONS[t.exit_reason] ?? t.exit_reason ?? "—"),
    numCell(pnl(t.realized_pnl), `pnl ${pnlClass(t.realized_pnl)}`),
    numCell(pnl(t.worst_unrealized_pnl), `hide-sm ${pnlClass(t.worst_unrealized_pnl)}`),
    numCell(pnl(t.best_unrealized_pnl), `hide-sm ${pnlClass(t.best_unrealized_pnl)}`),
    numCell(duration(t.opened_at, t.closed_at), "hide-sm"),
  );
}

function showHistory(data) {
  const tbody = document.querySelector("#trades tbody");
  const filtered = Object.values(filters()).some(Boolean);
  fillBody(tbody, data.trades.map(tradeRow), filtered
    ? "No closed trades match these filters. Clear them to see everything."
    : "No closed trades yet. They appear here the moment a position closes.");
  const first = data.total ? (data.page - 1) * data.per_page + 1 : 0;
  const last = Math.min(data.total, data.page * data.per_page);
  document.getElementById("page-info").textContent = data.total ? `${first}–${last} of ${data.total}` : "";
  document.getElementById("history-count").textContent = `${data.total} trade${data.total === 1 ? "" : "s"}`;
  document.getElementById("page-prev").disabled = data.page <= 1;
  document.getElementById("page-next").disabled = last >= data.total;
}

// ---- loading ----

async function loadCalendar() {
  if (!datesInOrder()) return;
  const data = await api("/api/dashboard/calendar", { params: { ...filters(), month: state.month } });
  const title = renderCalendar(document.getElementById("calendar"), data);
  document.getElementById("calendar-title").textContent = `Daily PnL · ${title}`;
  const total = document.getElementById("calendar-total");
  total.textContent = data.trades ? `${pnl(data.pnl)} · ${data.trades} trades` : "no trades";
  total.className = `num ${pnlClass(data.pnl)}`;
}

async function loadStats() {
  if (!datesInOrder()) {
    document.body.dataset.loaded = "true";
    return;
  }
  const params = filters();
  const [metrics, chart, history] = await Promise.all([
    api("/api/dashboard/metrics", { params }),
    api("/api/dashboard/chart-data", { params }),
    api("/api/dashboard/trade-history", { params: { ...params, page: state.page, per_page: PER_PAGE } }),
    loadCalendar(),
  ]);
  showMetrics(metrics);
  showHistory(history);
  const empty = chart.points.length === 0;
  document.getElementById("chart-empty").hidden = !empty;
  document.getElementById("chart").hidden = empty;
  if (!empty) {
    state.chart ??= new ProfitChart(document.getElementById("chart"));
    state.chart.show(chart.points);
  }
  document.body.dataset.loaded = "true"; // the browser tests wait for this
}

const open = new OpenPositions(document.querySelector("#open-positions tbody"), {
  recorderName: (id) => recorderNames.get(id) ?? `#${id}`,
  empty: "No open positions. A recorder opens one when its TradingView alert fires.",
  onChange: (n) => { document.getElementById("open-count").textContent = n ? `${n} open` : ""; },
});
const detail = new TradeDetail({ recorderName: (id) => recorderNames.get(id) ?? `#${id}` });
detail.bindRows(document.getElementById("open-positions"));
detail.bindRows(document.getElementById("trades"));
const refreshStats = coalesced(loadStats);
const refreshAll = coalesced(async () => {
  await loadRecorders(readUrl()); // the address bar always holds the current filters
  await Promise.all([loadStats(), open.load()]);
});

// ---- CSV export: every trade of the current filter, numbers exactly as the API sends them, times
// in the user's zone with their UTC offset ("2026-11-02T08:30:05-06:00") and the zone named ----

const CSV_COLUMNS = [
  "id", "recorder_name", "recorder_id", "symbol", "side", "quantity", "avg_entry_price", "exit_price",
  "exit_reason", "realized_pnl", "worst_unrealized_pnl", "best_unrealized_pnl", "max_favorable",
  "max_adverse", "tp_price", "sl_price", "opened_at", "closed_at", "time_zone",
];
const CSV_TIMES = new Set(["opened_at", "closed_at"]);

function csvValue(trade, column) {
  if (column === "time_zone") return TIME_ZONE;
  return CSV_TIMES.has(column) ? offsetIso(trade[column]) : trade[column];
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) || /^[=+\-@]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

async function exportCsv() {
  if (!datesInOrder()) return;
  const button = document.getElementById("export-csv");
  button.disabled = true;
  try {
    const trades = await fetchAll("/api/dashboard/trade-history", "trades", filters());
    const lines = [CSV_COLUMNS.join(",")];
    for (const t of trades) lines.push(CSV_COLUMNS.map((c) => csvField(csvValue(t, c))).join(","));
    const blob = new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" });
    const { from, to } = filters();
    const zone = TIME_ZONE.replaceAll("/", "-");
    const link = el("a", {
      href: URL.createObjectURL(blob),
      download: `justtrades-trades${from ? `-${from}` : ""}${to ? `-to-${to}` : ""}-${zone}.csv`,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    toast(`Exported ${trades.length} trade${trades.length === 1 ? "" : "s"}.`, "success", 2500);
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----

form.addEventListener("change", () => {
  state.page = 1;
  if (form.elements.to.value) state.month = form.elements.to.value.slice(0, 7);
  writeUrl();
  refreshStats();
});
document.getElementById("clear-filters").addEventListener("click", () => {
  form.reset();
  state.page = 1;
  state.month = currentMonth();
  writeUrl();
  refreshStats();
});
document.getElementById("export-csv").addEventListener("click", exportCsv);
for (const [id, delta] of [["page-prev", -1], ["page-next", 1]]) {
  document.getElementById(id).addEventListener("click", () => {
    state.page = Math.max(1, state.page + delta);
    writeUrl();
    refreshStats();
  });
}
for (const [id, move] of [["calendar-prev", -1], ["calendar-next", 1], ["calendar-today", 0]]) {
  document.getElementById(id).addEventListener("click", () => {
    state.month = move ? shiftMonth(state.month, move) : currentMonth();
    writeUrl();
    loadCalendar().catch(() => {});
  });
}

// A closed position changes every number on this page; opens and marks only the open table.
onEvent("position.closed", () => refreshStats());
onResync(() => refreshAll());
refreshAll();
