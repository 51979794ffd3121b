// The account view of one subaccount (GET /api/subaccounts/<id>): its positions with open PnL at
// the feed's last price, realized PnL and trades of the trade date, working orders and brackets,
// the broker's own cash balance and realized PnL (Tradovate's word, fees included) beside ours,
// and its risk desk: the lock, each limit with the room left, a form to change them (§4c).
// A shown panel reloads every 2 s (the open PnL follows the feed) and at once on order events.
import { api, ApiError, toast } from "./api.js";
import { el, fillBody } from "./dom.js";
import { clearFieldErrors, showFormError } from "./forms.js";
import { pnl, pnlClass, price, qty, usd, zonedTime } from "./format.js";
import { coalesced, onEvent, onResync } from "./live.js";

const REFRESH_MS = 2000;
const ROLES = { entry: "Entry", target: "Target", stop: "Stop", bracket: "Bracket" };
const shown = new Set();
const LIMITS = [
  ["daily_loss_limit", "Daily loss limit", "usd"],
  ["daily_profit_target", "Daily profit target", "usd"],
  ["trailing_drawdown", "Trailing drawdown", "usd"],
  ["max_trades_per_day", "Max trades a day", "count"],
  ["max_contracts", "Max contracts", "count"],
];

function limitText(value, unit) {
  if (value === null || value === undefined) return "—";
  return unit === "usd" ? pnl(value).replace(/^\+/, "") : String(value);
}

function lockBanner(v) {
  if (!v.locked) return null;
  return el("div", { className: "lock-banner", role: "alert", dataset: { role: "lock" } },
    el("b", {}, `Locked until ${v.locked_until}`),
    ` — ${v.lock_reason}. New entries wait for that trade date; exits still go out.`);
}

function riskTable(v) {
  const rows = LIMITS.filter(([name]) => v.risk?.[name] !== null && v.risk?.[name] !== undefined)
    .map(([name, label, unit]) => {
      const left = v.room?.[name];
      return el("tr", { dataset: { limit: name } },
        el("td", {}, label),
        el("td", { className: "num" }, limitText(v.risk[name], unit)),
        el("td", { className: `num ${left !== null && left !== undefined && left <= 0 ? "loss" : ""}`.trim(), dataset: { field: "room" } },
          left === null || left === undefined ? "—" : `${limitText(left, unit)} left`));
    });
  return table("av-risk", [["Limit"], ["Set", "num"], ["Room", "num"]], rows, "No limits set.");
}

function riskForm(v, onSaved) {
  const inputs = LIMITS.map(([name, label, unit]) => el("label", {}, label,
    el("input", { name, type: "number", min: unit === "usd" ? "0.01" : "1", step: unit === "usd" ? "0.01" : "1",
      value: v.risk?.[name] ?? "", placeholder: "none" })));
  const error = el("p", { className: "form-error", hidden: true });
  const form = el("form", { className: "av-risk-form" }, ...inputs,
    el("button", { type: "submit", className: "btn btn-sm" }, "Save limits"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const [name, , unit] of LIMITS) {
      const raw = form.elements[name].value.trim();
      body[name] = raw === "" ? null : (unit === "usd" ? Number(raw) : Number.parseInt(raw, 10));
    }
    error.hidden = true;
    clearFieldErrors(form);
    try {
      onSaved(await api(`/api/subaccounts/${v.id}/risk`, { method: "PUT", body, quiet: true }));
    } catch (e) {
      showFormError(form, e, { rest: error }); // a limit's sentence beside it, e.g. a lock's 409 below
    }
  });
  const pending = v.pending
    ? el("p", { className: "hint", dataset: { role: "pending" } },
      `Looser limits asked for take effect on ${v.effective_from}: a limit never loosens during a trade date.`)
    : null;
  return el("details", { className: "av-risk-edit" }, el("summary", {}, "Change limits"), pending, form);
}

function figure(label, name, value, text) {
  return el("div", { className: "av-figure" },
    el("span", { className: "card-label" }, label),
    el("b", { className: `num ${pnlClass(value)}`.trim(), dataset: { figure: name } }, text));
}

/** What the broker says (Tradovate's cash balance); nothing for paper or before the broker said. */
function brokerFigures(v) {
  const cash = v.broker_cash;
  if (!cash) return null;
  // Tradovate's realized PnL starts again each trade date: one of another date is not today's.
  const today = cash.as_of === v.trade_date;
  const realized = today ? cash.realized_pnl : null;
  const stale = cash.as_of && !today
    ? el("p", { className: "hint", dataset: { role: "broker-cash-date" } },
      `The broker's cash balance is for the trade date ${cash.as_of}.`)
    : null;
  return [
    el("div", { className: "av-figures", dataset: { role: "broker-cash" } },
      figure("Cash balance (broker)", "broker_cash_amount", null, usd(cash.amount)),
      figure("Realized today (broker)", "broker_realized_pnl", realized, pnl(realized))),
    stale,
  ];
}

function table(className, heads, rows, empty) {
  const tbody = el("tbody");
  const thead = el("thead", {}, el("tr", {}, heads.map(([text, cls]) => el("th", { className: cls ?? "" }, text))));
  const t = el("table", { className: `data ${className}` }, thead, tbody);
  fillBody(tbody, rows, empty);
  return el("div", { className: "table-wrap" }, t);
}

function positionRow(p) {
  const side = p.net_qty > 0 ? "long" : "short";
  return el("tr", { dataset: { contract: p.contract } },
    el("td", { className: "symbol" }, p.contract),
    el("td", { className: "num" }, el("span", { className: `side ${side}` }, side), ` ${qty(Math.abs(p.net_qty))}`),
    el("td", { className: "num hide-sm" }, price(p.avg_price)),
    el("td", { className: "num", dataset: { field: "last_price" } }, price(p.last_price)),
    el("td", { className: `num ${pnlClass(p.open_pnl)}`.trim(), dataset: { field: "open_pnl" } }, pnl(p.open_pnl)));
}

function orderRow(o, traderName) {
  // A target is a limit and a stop a stop: the type is worth saying for entries only.
  const kind = o.role === "entry" || !(o.role in ROLES) ? `${ROLES[o.role] ?? o.role} ${o.order_type}` : ROLES[o.role];
  return el("tr", { dataset: { orderId: o.id, role: o.role } },
    el("td", {}, el("span", { className: `side ${o.side === "buy" ? "long" : "short"}` }, o.side), ` ${kind}`),
    el("td", { className: "symbol hide-sm" }, o.contract),
    el("td", { className: "num" }, qty(o.quantity)),
    el("td", { className: "num", dataset: { field: "price" } }, price(o.price)),
    el("td", { className: "muted" }, o.trader_id === null || o.trader_id === undefined ? "manual" : traderName(o.trader_id)));
}

/** A panel in `root` for one subaccount at a time (`show(id)`; `show(null)` hides it). */
export class AccountPanel {
  constructor(root, { traderName = (id) => `trader #${id}` } = {}) {
    this.root = root;
    this.root.classList.add("account-view");
    this.traderName = traderName;
    this.id = null;
    this.load = coalesced(() => this.fetch());
  }

  show(id) {
    this.id = id;
    this.root.hidden = id === null;
    if (id === null) {
      shown.delete(this);
      this.root.replaceChildren();
      return;
    }
    shown.add(this);
    delete this.root.dataset.loaded;
    this.root.replaceChildren(el("p", { className: "hint" }, "Loading…"));
    this.load();
  }

  /** The limits form, kept open across the 2 s refreshes while the user edits it. */
  editing(v) {
    const open = this.root.querySelector(".av-risk-edit")?.open;
    if (open && this.form) return this.form;
    this.form = riskForm(v, () => { this.form = null; this.load(); });
    return this.form;
  }

  async fetch() {
    const id = this.id;
    if (id === null) return;
    try {
      const view = await api(`/api/subaccounts/${id}`, { quiet: true });
      if (id === this.id) this.render(view);
    } catch (error) {
      if (id !== this.id) return;
      const text = error instanceof ApiError ? error.message : String(error);
      this.root.replaceChildren(el("p", { className: "form-error" }, text));
    }
  }

  render(v) {
    const waiting = v.broker_view
      ? el("p", { className: "hint", dataset: { role: "waiting" } }, `No broker numbers yet: ${v.broker_view}.`)
      : null;
    const trades = v.trades_today === null || v.trades_today === undefined ? "—" : String(v.trades_today);
    this.root.dataset.subaccountId = v.id;
    this.root.replaceChildren(...[
      lockBanner(v),
      el("div", { className: "av-figures" },
        figure("Open PnL", "open_pnl", v.open_pnl, pnl(v.open_pnl)),
        figure("Realized today", "realized_pnl_today", v.realized_pnl_today, pnl(v.realized_pnl_today)),
        figure("Trades today", "trades_today", null, trades)),
      ...(brokerFigures(v) ?? []),
      waiting,
      table("av-positions", [["Contract"], ["Position", "num"], ["Avg", "num hide-sm"], ["Last", "num"], ["Open PnL", "num"]],
        v.positions.map(positionRow), "Flat: no position on this subaccount."),
      table("av-orders", [["Working order"], ["Contract", "hide-sm"], ["Qty", "num"], ["Price", "num"], ["Trader"]],
        v.working_orders.map((o) => orderRow(o, this.traderName)), "No working orders."),
      el("h4", { className: "av-heading" }, "Risk desk"),
      riskTable(v),
      this.editing(v),
      el("p", { className: "hint av-updated" },
        v.updated_at ? `Trade date ${v.trade_date} · as of ${zonedTime(v.updated_at)}` : `Trade date ${v.trade_date}`),
    ].filter(Boolean));
    this.root.dataset.loaded = "true";
  }
}

function refreshShown() {
  for (const panel of shown) panel.load();
}

setInterval(() => { if (!document.hidden) refreshShown(); }, REFRESH_MS);
onEvent("order.*", () => refreshShown());
onEvent("account.*", () => refreshShown());
onEvent("account.locked", (e) => toast(
  `${e.name} is locked until ${e.locked_until}: ${e.reason}${e.flattened ? " — flattened" : ""}.`, "error"));
onResync(() => refreshShown());
