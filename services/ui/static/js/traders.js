// The traders page: recorder → subaccount links with multiplier, guards and an on/off switch,
// a create/edit dialog, and each trader's last orders, updated live from order.* events.
import { api, confirmDialog, toast } from "./api.js";
import { el, fillBody, flash, numCell } from "./dom.js";
import { fillSelect, loadRecorders, loadSubaccounts, optionalNumber, wireDialog } from "./directory.js";
import { clearFieldErrors, showFormError } from "./forms.js";
import { qty, usd, zonedTime } from "./format.js";
import { orderRow } from "./orders.js";
import { coalesced, onEvent, onResync } from "./live.js";

const traders = new Map();
const orders = new Map(); // intent id → order
let recorders = [];
let subaccounts = [];
const recorderName = (id) => recorders.find((r) => r.id === id)?.name ?? `#${id}`;
const subaccountName = (id) => subaccounts.find((s) => s.id === id)?.label ?? `#${id}`;
const traderName = (id) => (traders.has(id) ? `${recorderName(traders.get(id).recorder_id)} → ${subaccountName(traders.get(id).subaccount_id).split(" · ")[0]}` : "manual");

function guards(t) {
  const parts = [];
  if (t.max_contracts) parts.push(`max ${t.max_contracts} ct`);
  if (t.daily_loss_limit) parts.push(`loss ≤ ${usd(t.daily_loss_limit)}/day`);
  if (t.window) parts.push(`${t.window.start}–${t.window.end} ${t.window.tz}`);
  return parts.length ? parts.join(" · ") : el("span", { className: "muted" }, "none");
}

function stateCell(t) {
  if (t.paused_until && Date.parse(t.paused_until) > Date.now()) {
    return el("td", { className: "wrap", title: t.paused_reason ?? "" },
      el("span", { className: "pill ignored" }, "Paused"), ` until ${zonedTime(t.paused_until)}`,
      t.paused_reason ? el("div", { className: "hint" }, t.paused_reason) : null);
  }
  return el("td", {}, el("span", { className: `pill ${t.enabled ? "on" : "off"}` }, t.enabled ? "Trading" : "Off"));
}

function traderRow(t) {
  const button = (label, action, extra = "") => el("button", { type: "button", className: `btn btn-sm ${extra}`.trim(), dataset: { action, id: t.id } }, label);
  return el("tr", { dataset: { traderId: t.id } },
    el("td", {}, el("label", { className: "switch", title: t.enabled ? "Switch off" : "Switch on" },
      el("input", { type: "checkbox", checked: t.enabled, dataset: { action: "toggle", id: t.id }, "aria-label": `Trader ${t.id} on` }),
      el("span", { className: "slider" }))),
    el("td", {}, el("b", { className: "name-cut", title: recorderName(t.recorder_id) }, recorderName(t.recorder_id))),
    el("td", {}, el("span", { className: "name-cut", title: subaccountName(t.subaccount_id) }, subaccountName(t.subaccount_id))),
    numCell(`×${qty(t.multiplier)}`),
    el("td", { className: "hide-sm" }, guards(t)),
    stateCell(t),
    el("td", { className: "actions" }, button("Edit", "edit"), button("Delete", "delete", "btn-ghost danger")),
  );
}

function renderTraders() {
  const list = [...traders.values()];
  document.getElementById("first-trader").hidden = list.length > 0;
  document.getElementById("traders-panel").hidden = list.length === 0;
  const missing = [];
  if (!recorders.length) missing.push("You have no recorder yet: make one on Recorders first.");
  if (!subaccounts.length) missing.push("You have no account yet: add a paper account on Accounts first.");
  document.getElementById("missing-steps").textContent = missing.join(" ");
  fillBody(document.querySelector("#traders tbody"), list.map(traderRow), "");
}

function renderOrders() {
  const list = [...orders.values()].sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? "")).slice(0, 50);
  fillBody(document.querySelector("#orders tbody"), list.map((o) => orderRow(o, (x) => (x.trader_id ? traderName(x.trader_id) : x.source))),
    traders.size ? "No orders yet. The next signal of a linked recorder places one here." : "No orders yet: create a trader first.");
}

async function loadOrders() {
  const lists = await Promise.all([...traders.keys()].map((id) => api("/api/orders", { params: { trader_id: id, limit: 10 } })));
  orders.clear();
  for (const { orders: list } of lists) for (const o of list) orders.set(o.id, o);
  renderOrders();
}

async function loadAll() {
  const [{ traders: list }, recs, subs] = await Promise.all([api("/api/traders"), loadRecorders(), loadSubaccounts()]);
  recorders = recs;
  subaccounts = subs;
  traders.clear();
  for (const t of list) traders.set(t.id, t);
  renderTraders();
  await loadOrders();
}

// ---- the dialog ----

const dialog = wireDialog(document.getElementById("trader-dialog"));
const form = document.getElementById("trader-form");
let editing = null;

function openDialog(t = null) {
  editing = t;
  form.reset();
  document.getElementById("trader-error").hidden = true;
  clearFieldErrors(form);
  const f = form.elements;
  fillSelect(f.recorder_id, recorders, { placeholder: recorders.length ? "Choose a recorder" : "No recorders yet" });
  fillSelect(f.subaccount_id, subaccounts, { label: (s) => s.label, placeholder: subaccounts.length ? "Choose a subaccount" : "No accounts yet" });
  f.recorder_id.disabled = f.subaccount_id.disabled = Boolean(t);
  if (t) {
    f.recorder_id.value = String(t.recorder_id);
    f.subaccount_id.value = String(t.subaccount_id);
    f.multiplier.value = t.multiplier;
    f.max_contracts.value = t.max_contracts;
    f.daily_loss_limit.value = t.daily_loss_limit ?? "";
    f.enabled.checked = t.enabled;
    f.window_start.value = t.window?.start ?? "";
    f.window_end.value = t.window?.end ?? "";
    f.window_tz.value = t.window?.tz ?? "America/New_York";
  } else {
    if (recorders.length === 1) f.recorder_id.value = String(recorders[0].id);
    if (subaccounts.length === 1) f.subaccount_id.value = String(subaccounts[0].id);
  }
  document.getElementById("trader-dialog-title").textContent = t ? "Edit trader" : "New trader";
  document.getElementById("trader-save").textContent = t ? "Save changes" : "Create trader";
  dialog.showModal();
}

function body() {
  const f = form.elements;
  const start = f.window_start.value;
  const end = f.window_end.value;
  const fields = {
    multiplier: optionalNumber(f.multiplier.value) ?? 1,
    max_contracts: optionalNumber(f.max_contracts.value),
    daily_loss_limit: optionalNumber(f.daily_loss_limit.value),
    enabled: f.enabled.checked,
    window: start || end ? { start, end, tz: f.window_tz.value.trim() || "America/New_York" } : null,
  };
  if (!editing) {
    fields.recorder_id = optionalNumber(f.recorder_id.value);
    fields.subaccount_id = optionalNumber(f.subaccount_id.value);
  }
  return fields;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("trader-error");
  const button = document.getElementById("trader-save");
  button.disabled = true;
  error.hidden = true;
  clearFieldErrors(form);
  try {
    const saved = editing
      ? await api(`/api/traders/${editing.id}`, { method: "PUT", body: body(), quiet: true })
      : await api("/api/traders", { method: "POST", body: body(), quiet: true });
    traders.set(saved.id, saved);
    dialog.close();
    toast(editing ? "Trader saved." : `Trader created: ${traderName(saved.id)}.`, "success", 2500);
    renderTraders();
    renderOrders();
  } catch (e) {
    // A field's sentence beside its input; the rest (the window's rule) above the form.
    showFormError(form, e, { rest: error });
  } finally {
    button.disabled = false;
  }
});

// ---- actions ----

async function toggle(t, input) {
  try {
    const saved = await api(`/api/traders/${t.id}`, { method: "PUT", body: { enabled: input.checked } });
    traders.set(t.id, saved);
    toast(`${traderName(t.id)} is ${saved.enabled ? "on" : "off"}.`, "success", 2000);
  } catch {
    input.checked = t.enabled;
  }
  renderTraders();
}

async function remove(t) {
  const yes = await confirmDialog({
    title: `Delete the trader ${traderName(t.id)}?`,
    message: "No more orders are sent for this recorder to this subaccount. An open broker position stays open: flatten it on Manual Trader.",
    confirm: "Delete trader", danger: true,
  });
  if (!yes) return;
  await api(`/api/traders/${t.id}`, { method: "DELETE" });
  traders.delete(t.id);
  renderTraders();
  renderOrders();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) return;
  const t = traders.get(Number(target.dataset.id));
  const action = target.dataset.action;
  if (action === "new") openDialog();
  else if (action === "edit") openDialog(t);
  else if (action === "delete") remove(t).catch(() => {});
});
document.addEventListener("change", (event) => {
  const input = event.target.closest("input[data-action=toggle]");
  if (input) toggle(traders.get(Number(input.dataset.id)), input);
});

// ---- live ----

const refresh = coalesced(loadAll);
const refreshTraders = coalesced(async () => {
  const { traders: list } = await api("/api/traders");
  traders.clear();
  for (const t of list) traders.set(t.id, t);
  renderTraders();
});

onEvent("order.*", (o) => {
  if (!o?.id || (o.trader_id && !traders.has(o.trader_id))) return;
  if (!o.trader_id) return;
  orders.set(o.id, { ...orders.get(o.id), ...o });
  renderOrders();
  const row = document.querySelector(`#orders tr[data-order-id="${o.id}"]`);
  if (row) flash(row);
});
for (const kind of ["account.trader_paused", "account.trader_skipped", "account.trader_flattened"]) {
  onEvent(kind, (d) => {
    if (d?.message) toast(d.message, kind.endsWith("skipped") ? "info" : "error");
    refreshTraders();
  });
}
onResync(() => refresh());
refresh().then(() => {
  document.body.dataset.loaded = "true";
  if (new URLSearchParams(window.location.search).has("new")) openDialog();
});
