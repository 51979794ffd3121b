// The manual trader: an order ticket (buy/sell, market/limit, TP/SL, copy), close and flatten
// behind a confirmation, a card per subaccount with its last fills, the recorders' live
// positions, and the recent orders updating live.
import { api, confirmDialog, toast } from "./api.js";
import { el, fillBody, flash } from "./dom.js";
import { fillSelect, loadRecorders, loadSubaccounts, optionalNumber } from "./directory.js";
import { clearFieldErrors, showFormError } from "./forms.js";
import { price, qty } from "./format.js";
import { coalesced, onEvent, onResync } from "./live.js";
import { orderRow, orderWhat } from "./orders.js";
import { OpenPositions } from "./positions.js";
import { AccountPanel } from "./account_panel.js";

const form = document.getElementById("ticket");
const f = form.elements;
let subaccounts = [];
let recorders = [];
const orders = new Map();
let confirmAbove = 5; // the user's own size (PUT /api/me), above which the ticket asks first
const subName = (id) => subaccounts.find((s) => s.id === id)?.name ?? `#${id}`;

const open = new OpenPositions(document.querySelector("#open-positions tbody"), {
  recorderName: (id) => recorders.find((r) => r.id === id)?.name ?? `#${id}`,
  empty: "No recorder positions open. They show here live as your recorders' alerts arrive.",
  onChange: (n) => { document.getElementById("open-count").textContent = n ? `${n} open` : ""; },
});

// The chosen subaccount's positions, PnL of the day and working orders, live.
const accountView = new AccountPanel(document.getElementById("account-view"));

function showChosenAccount() {
  const id = optionalNumber(f.subaccount_id.value);
  document.getElementById("account-view-panel").hidden = id === null;
  document.getElementById("account-view-name").textContent = id === null ? "" : subName(id);
  if (id !== accountView.id) accountView.show(id);
}
f.subaccount_id.addEventListener("change", showChosenAccount);

// ---- the ticket ----

function describe() {
  const side = f.side.value === "buy" ? "Buy" : "Sell";
  const at = f.order_type.value === "limit" ? `limit ${f.limit_price.value || "?"}` : "market";
  const button = document.getElementById("place");
  button.textContent = `${side} ${f.quantity.value || "?"} ${f.ticker.value.trim().toUpperCase() || "?"} at ${at}`;
  button.classList.toggle("btn-sell", f.side.value === "sell");
  f.limit_price.disabled = f.order_type.value !== "limit";
  if (f.limit_price.disabled) f.limit_price.value = "";
}
form.addEventListener("input", describe);
form.addEventListener("change", describe);

function chosenSubaccount() {
  const id = optionalNumber(f.subaccount_id.value);
  if (id === null) toast("Choose a subaccount first; add one on Accounts.", "error");
  return id;
}

async function send(body, what, quiet = false) {
  const answer = await api("/api/manual-trade", { method: "POST", body, quiet });
  orders.set(answer.order.id, answer.order);
  for (const c of answer.copies) orders.set(c.id, c);
  renderOrders();
  toast(`${what} sent${answer.copies.length ? `, copied to ${answer.copies.length} follower(s)` : ""}.`, "success", 2500);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const subaccount_id = chosenSubaccount();
  if (subaccount_id === null) return;
  const body = {
    subaccount_id, action: f.side.value, ticker: f.ticker.value.trim(), quantity: optionalNumber(f.quantity.value),
    order_type: f.order_type.value, tp_ticks: optionalNumber(f.tp_ticks.value), sl_ticks: optionalNumber(f.sl_ticks.value),
    copy: f.copy.checked,
  };
  if (body.order_type === "limit") body.limit_price = optionalNumber(f.limit_price.value);
  const button = document.getElementById("place");
  if (body.quantity > confirmAbove) {
    const yes = await confirmDialog({
      title: `${button.textContent}?`,
      message: `This order is for ${body.quantity} contracts, more than the ${confirmAbove} above which you asked to confirm.`,
      confirm: `Send ${body.quantity} contracts`, danger: true,
    });
    if (!yes) return;
    body.confirm = true;
  }
  button.disabled = true;
  clearFieldErrors(form);
  try {
    await send(body, document.getElementById("place").textContent, true);
  } catch (error) {
    showFormError(form, error); // beside the ticket's inputs; the rest as a toast
  } finally {
    button.disabled = false;
  }
});

document.getElementById("close-ticker").addEventListener("click", async () => {
  const subaccount_id = chosenSubaccount();
  if (subaccount_id === null) return;
  const ticker = f.ticker.value.trim();
  const yes = await confirmDialog({
    title: `Close ${ticker} on ${subName(subaccount_id)}?`,
    message: "A market order closes the whole position in this contract, and its bracket orders are cancelled.",
    confirm: `Close ${ticker}`, danger: true,
  });
  if (yes) await send({ subaccount_id, action: "close", ticker, copy: f.copy.checked }, `Close ${ticker}`).catch(() => {});
});

document.getElementById("flatten-sub").addEventListener("click", async () => {
  const subaccount_id = chosenSubaccount();
  if (subaccount_id === null) return;
  const yes = await confirmDialog({
    title: `Flatten ${subName(subaccount_id)}?`,
    message: "Every position of this subaccount is closed at market and its working orders cancelled. Traders stay on.",
    confirm: "Flatten subaccount", danger: true,
  });
  if (yes) await send({ subaccount_id, action: "flatten", copy: f.copy.checked }, "Flatten").catch(() => {});
});

async function loadConfirmSize() {
  confirmAbove = (await api("/api/me")).manual_confirm_above;
  f.confirm_above.value = confirmAbove;
}

f.confirm_above.addEventListener("change", async () => {
  const size = optionalNumber(f.confirm_above.value);
  try {
    confirmAbove = (await api("/api/me", { method: "PUT", body: { manual_confirm_above: size }, quiet: true })).manual_confirm_above;
    toast(`The ticket asks before sending more than ${confirmAbove} contracts.`, "success", 2500);
  } catch (error) {
    showFormError(form, error, { names: { manual_confirm_above: "confirm_above" } });
    f.confirm_above.value = confirmAbove;
  }
});

// ---- account cards and orders ----

function renderCards() {
  const byAccount = new Map();
  for (const o of orders.values()) {
    if (!byAccount.has(o.subaccount_id)) byAccount.set(o.subaccount_id, []);
    byAccount.get(o.subaccount_id).push(o);
  }
  const cards = subaccounts.map((s) => {
    const fills = (byAccount.get(s.id) ?? []).filter((o) => o.status === "filled")
      .sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? "")).slice(0, 3);
    return el("article", { className: "card account-card", dataset: { subaccountId: s.id } },
      el("div", { className: "card-label name-cut", title: `${s.account.name} · ${s.account.broker}` }, `${s.account.name} · ${s.account.broker}`),
      el("div", { className: "card-title" }, el("span", { className: "name-cut", title: s.name }, s.name),
        s.risk_status !== "normal" ? el("span", { className: "pill off" }, s.risk_status.replace("_", " ")) : null),
      fills.length
        ? el("ul", { className: "fills" }, fills.map((o) => el("li", {},
          el("span", { className: `side ${o.side === "buy" ? "long" : "short"}` }, orderWhat(o)),
          el("span", { className: "num" }, o.kind === "entry" ? `${qty(o.quantity)} @ ${price(o.fill_price)}` : o.fill_price === null ? "done" : `@ ${price(o.fill_price)}`))))
        : el("p", { className: "hint" }, "No fills yet. Use the ticket to place an order here."),
      el("button", { type: "button", className: "btn btn-sm", dataset: { pick: s.id } }, "Trade this"),
    );
  });
  document.getElementById("account-cards").replaceChildren(...cards);
}

function renderOrders() {
  const list = [...orders.values()].sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? "")).slice(0, 50);
  fillBody(document.querySelector("#orders tbody"), list.map((o) => orderRow(o, (x) => `${subName(x.subaccount_id)} · ${x.source}`)),
    subaccounts.length ? "No orders yet. Fill in the ticket and press Buy or Sell." : "No orders yet: add an account first.");
  renderCards();
}

document.getElementById("account-cards").addEventListener("click", (event) => {
  const pick = event.target.closest("[data-pick]");
  if (!pick) return;
  f.subaccount_id.value = pick.dataset.pick;
  showChosenAccount();
  f.ticker.focus();
});

async function loadAll() {
  [subaccounts, recorders] = await Promise.all([loadSubaccounts(), loadRecorders(), loadConfirmSize()]);
  document.getElementById("no-accounts").hidden = subaccounts.length > 0;
  fillSelect(f.subaccount_id, subaccounts, { label: (s) => s.label, placeholder: subaccounts.length ? "Choose a subaccount" : "No accounts yet" });
  if (subaccounts.length === 1) f.subaccount_id.value = String(subaccounts[0].id);
  showChosenAccount();
  const { orders: list } = await api("/api/orders", { params: { limit: 100 } });
  orders.clear();
  for (const o of list) orders.set(o.id, o);
  renderOrders();
  await open.load();
  describe();
}

onEvent("order.*", (o) => {
  if (!o?.id) return;
  orders.set(o.id, { ...orders.get(o.id), ...o });
  renderOrders();
  const row = document.querySelector(`#orders tr[data-order-id="${o.id}"]`);
  if (row) flash(row);
});
onEvent("account.risk_status", () => refresh());
const refresh = coalesced(loadAll);
onResync(() => refresh());
refresh().then(() => { document.body.dataset.loaded = "true"; });
