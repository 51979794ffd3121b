// The accounts page: paper and Tradovate accounts with their subaccounts, the TradingView
// session and the price feed's health, and copy groups.
import { api, confirmDialog, toast } from "./api.js";
import { el, fillBody, timeCell } from "./dom.js";
import { fillSelect, loadSubaccounts, wireDialog } from "./directory.js";
import { clearFieldErrors, showFormError } from "./forms.js";
import { zonedTime } from "./format.js";
import { coalesced, onEvent, onResync } from "./live.js";
import { AccountPanel } from "./account_panel.js";

let accounts = [];
let subaccounts = [];
const RISK = { normal: "Normal", liquidate_only: "Liquidate only", locked: "Locked" };
const panels = new Map(); // subaccount id → its open AccountPanel (kept across re-renders)

// ---- accounts ----

function accountCard(a) {
  const state = a.status === "connected" ? "on" : "off";
  const tokenNote = a.broker === "paper" ? "paper: no token"
    : a.token_expires_at ? `token until ${zonedTime(a.token_expires_at)}` : "no token";
  const rows = a.subaccounts.flatMap((s) => [el("tr", { dataset: { subaccountId: s.id } },
    el("td", { className: "symbol" }, el("span", { className: "name-cut", title: s.name }, s.name)),
    el("td", { className: "num hide-sm" }, String(s.broker_account_id)),
    el("td", {}, el("span", { className: `pill ${s.active ? "on" : "off"}` }, s.active ? "Active" : "Closed")),
    el("td", {}, el("span", { className: `pill risk-${s.risk_status}` }, RISK[s.risk_status] ?? s.risk_status)),
    s.refreshed_at ? timeCell(s.refreshed_at, "hide-sm") : el("td", { className: "muted hide-sm" }, "—"),
    el("td", { className: "actions" }, el("button", { type: "button", className: "btn btn-sm",
      ariaExpanded: String(panels.has(s.id)), dataset: { action: "view", id: s.id } }, panels.has(s.id) ? "Hide" : "View")),
  ), panels.has(s.id) ? panelRow(s.id) : null].filter(Boolean));
  const body = el("tbody");
  fillBody(body, rows, "No subaccounts found. Press Refresh to ask the broker again.");
  return el("section", { className: "panel account", dataset: { accountId: a.id } },
    el("header", {},
      el("div", { className: "title" },
        el("h3", { className: "name-cut", title: a.name }, a.name),
        el("span", { className: "muted" }, a.broker === "paper" ? "Paper" : `Tradovate ${a.environment ?? ""}`),
        el("span", { className: `pill ${state}` }, a.status === "connected" ? "Connected" : "Error")),
      el("div", { className: "head-actions" },
        el("span", { className: "muted hint" }, tokenNote),
        el("button", { type: "button", className: "btn btn-sm", dataset: { action: "refresh", id: a.id } }, "Refresh"),
        el("button", { type: "button", className: "btn btn-sm btn-ghost danger", dataset: { action: "delete", id: a.id } }, "Remove"))),
    a.status_message ? el("p", { className: a.status === "connected" ? "hint body" : "form-error" }, a.status_message) : null,
    el("div", { className: "table-wrap" }, el("table", { className: "data subaccounts" },
      el("thead", {}, el("tr", {}, el("th", {}, "Subaccount"), el("th", { className: "num hide-sm" }, "Broker id"),
        el("th", {}, "State"), el("th", {}, "Risk"), el("th", { className: "hide-sm" }, "Checked"), el("th", {}, ""))),
      body)),
  );
}

// ---- the account view of a subaccount (account_panel.js), opened under its row ----

function panelRow(id) {
  return el("tr", { className: "account-view-row", dataset: { viewOf: id } },
    el("td", { colSpan: 6 }, panels.get(id).root));
}

function toggleView(id) {
  if (panels.has(id)) {
    panels.get(id).show(null);
    panels.delete(id);
  } else {
    const panel = new AccountPanel(el("div"));
    panels.set(id, panel);
    panel.show(id);
  }
  document.getElementById("accounts").replaceChildren(...accounts.map(accountCard));
}

async function loadAccounts() {
  ({ accounts } = await api("/api/accounts"));
  subaccounts = await loadSubaccounts();
  document.getElementById("first-account").hidden = accounts.length > 0;
  const known = new Set(accounts.flatMap((a) => a.subaccounts.map((s) => s.id)));
  for (const [id, panel] of panels) {
    if (!known.has(id)) {
      panel.show(null);
      panels.delete(id);
    }
  }
  document.getElementById("accounts").replaceChildren(...accounts.map(accountCard));
  const form = document.getElementById("copy-form");
  fillSelect(form.elements.leader, subaccounts, { label: (s) => s.label, placeholder: "Choose the leader" });
  const chosen = new Set([...document.querySelectorAll("#copy-followers input[name=follow]:checked")].map((i) => i.value));
  document.getElementById("copy-followers").replaceChildren(...(subaccounts.length ? subaccounts.map((s) => followerRow(s, chosen.has(String(s.id))))
    : [el("span", { className: "muted" }, "Add an account first.")]));
}

// One follower's line in the copy-group form: ticked to follow, with how it copies.
function followerRow(s, checked) {
  return el("div", { className: "copy-follower", dataset: { subaccountId: s.id } },
    el("label", { className: "check" }, el("input", { type: "checkbox", name: "follow", value: String(s.id), checked }), s.label),
    el("label", {}, "×", el("input", { name: "multiplier", type: "number", min: "0.0001", step: "any", value: "1", inputMode: "decimal", size: 4, ariaLabel: `Multiplier of ${s.label}` })),
    el("label", { className: "check" }, el("input", { type: "checkbox", name: "inverted" }), "Inverted"),
    el("label", {}, "Map ", el("input", { name: "symbol_map", placeholder: "NQ=MNQ", size: 10, ariaLabel: `Contract mapping of ${s.label}` })),
    el("label", {}, "Max ", el("input", { name: "max_contracts", type: "number", min: "1", step: "1", size: 4, placeholder: "none", ariaLabel: `Maximum contracts of ${s.label}` })),
  );
}

// "NQ=MNQ, ES=MES" (or → or :) as {NQ: "MNQ", ES: "MES"}; null when empty.
function parseMapping(text) {
  const pairs = text.split(/[,;]+/).map((x) => x.trim()).filter(Boolean).map((p) => p.split(/=|→|->|:/).map((x) => x.trim().toUpperCase()));
  if (!pairs.length) return null;
  return Object.fromEntries(pairs.map(([from, to]) => [from, to ?? ""]));
}

// ---- TradingView session and the price feed ----

// What the feed's prices are: a simulator's or a replay's are never called real-time.
const QUOTES = {
  "real-time": "real time", delayed: "delayed",
  simulated: "simulated (PRICE_SOURCE=sim, not market prices)", replay: "replay of a CSV of ticks",
};
const NOT_LIVE = { sim: ["Simulated", "simulated prices from a random walk"], replay: ["Replay", "ticks replayed from a CSV file"] };

/** The pill of a symbol's quotes: Simulated or Replay whatever else, then Delayed or Real-time. */
function quotesPill(feed, delayed) {
  const made = NOT_LIVE[feed.active_source] ?? NOT_LIVE[feed.source];
  if (made) return el("span", { className: "pill", title: made[1] }, made[0]);
  return el("span", { className: `pill ${delayed ? "ignored" : "on"}` }, delayed ? "Delayed" : "Real-time");
}

// How the stored session was obtained (GET /api/tradingview/session `source`).
const SOURCES = { cookies: "cookies pasted by the operator", "sign-in": "the feed signing in by itself" };

function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")]));
}

// The feed's session is an operator setting: everyone sees how the feed is doing; only an
// operator (can_edit) gets the form, anyone else a sentence saying the operator sets it.
async function loadSession() {
  const s = await api("/api/tradingview/session");
  const state = !s.configured ? ["off", "Not set"] : s.authenticated === true ? ["on", "Signed in"]
    : s.authenticated === false ? ["off", "Refused"] : ["pending", s.in_use ? "Checking…" : "Saved"];
  const quotes = QUOTES[s.quotes] ?? "—";
  document.getElementById("tv-state").replaceChildren(el("span", { className: `pill ${state[0]}` }, state[1]));
  facts(document.getElementById("tv-facts"), [
    ["Session", s.configured ? `set by the operator ${zonedTime(s.updated_at)}` : "not set"],
    ["Feed", s.connected ? "connected" : "not connected"],
    ["Quotes", quotes],
    ["Token expires", s.token_expires_at ? zonedTime(s.token_expires_at) : "—"],
    ["Price source", s.price_source],
    ...(s.error ? [["Error", s.error]] : []),
    ["Obtained by", SOURCES[s.source] ?? "—"],
    ["Sign-in", s.credentials ? `saved ${zonedTime(s.credentials.saved_at)}${s.credentials.username_hint ? ` (${s.credentials.username_hint})` : ""}` : "not saved"],
    ...(s.credentials ? [
      ["Last renewed", s.renewed_at ? zonedTime(s.renewed_at) : "never"],
      ["Last sign-in attempt", s.last_attempt_at ? zonedTime(s.last_attempt_at) : "never"],
      ...(s.renewals_stopped ? [["Renewals", "stopped until the sign-in is saved again"]] : []),
      ...(s.last_error ? [["Last sign-in error", s.last_error]] : []),
    ] : []),
  ]);
  const how = document.getElementById("tv-how");
  how.textContent = s.can_edit ? s.how_to_refresh ?? "" : "";
  how.hidden = !how.textContent;
  document.getElementById("tv-form").hidden = !s.can_edit;
  document.getElementById("tv-operator-only").hidden = s.can_edit;
  document.getElementById("tv-forget").hidden = !s.configured;
  document.getElementById("tv-credentials-form").hidden = !s.can_edit;
  document.getElementById("tv-credentials-forget").hidden = !s.credentials;
  document.getElementById("tv-own").hidden = !s.own_cookies_ignored;
}

async function loadFeed() {
  const { services, price_feed: feed } = await api("/api/status");
  const state = services.price_feed;
  document.getElementById("feed-state").replaceChildren(el("span", {
    className: `pill ${state === "ok" ? "on" : state === "degraded" ? "pending" : "off"}` },
  state === "ok" ? "Connected" : state === "degraded" ? "Degraded" : "Not running"));
  const tbody = document.querySelector("#feed-symbols tbody");
  if (!feed) {
    facts(document.getElementById("feed-facts"), [["Status", "The price feed has not reported; start it with justtrades run."]]);
    fillBody(tbody, [], "No prices yet. Without prices paper orders cannot fill and TP/SL cannot trigger.");
    return;
  }
  const made = NOT_LIVE[feed.active_source] ?? NOT_LIVE[feed.source];
  facts(document.getElementById("feed-facts"), [
    ["Source", feed.active_source && feed.active_source !== feed.source ? `${feed.source} (using ${feed.active_source})` : feed.source],
    ...(made ? [["Prices", `${made[0]}: ${made[1]}, not a market's quotes`]] : []),
    ["Connected", feed.connected ? "yes" : "no"],
    ["Signed in", feed.authenticated === null || feed.authenticated === undefined ? "—" : feed.authenticated ? "yes" : "no"],
    ...(feed.error ? [["Error", feed.error]] : []),
  ]);
  const delayed = new Set(feed.delayed_symbols ?? []);
  const ages = Object.entries(feed.last_tick_age_s ?? {}).sort(([a], [b]) => a.localeCompare(b));
  fillBody(tbody, ages.map(([symbol, age]) => el("tr", {},
    el("td", { className: "symbol" }, symbol),
    el("td", {}, quotesPill(feed, delayed.has(symbol))),
    el("td", { className: "num" }, age === null || age === undefined ? "—" : `${Number(age).toFixed(1)} s ago`),
  )), "No symbol has ticked yet. Symbols are watched once a recorder or trader uses them.");
}

// ---- copy groups ----

let copyGroups = [];

function followerText(f, nameOf) {
  const parts = [`${nameOf(f.subaccount_id)} ×${f.multiplier}`];
  if (f.inverted) parts.push("inverted");
  for (const [from, to] of Object.entries(f.symbol_map ?? {})) parts.push(`${from}→${to}`);
  if (f.max_contracts !== null && f.max_contracts !== undefined) parts.push(`max ${f.max_contracts}`);
  if (!f.enabled) parts.push("off");
  return parts.join(" ");
}

function followerItem(f, nameOf) {
  const item = el("li", { dataset: { subaccountId: f.subaccount_id } }, followerText(f, nameOf));
  if (f.out_of_step) {
    item.append(" ", el("span", { className: "pill off", title: f.checked_at ? `checked ${zonedTime(f.checked_at)}` : "" }, "Out of step"),
      el("div", { className: "muted out-of-step" }, f.out_of_step));
  }
  return item;
}

async function loadCopyGroups() {
  const { copy_groups: groups } = await api("/api/copy-groups");
  copyGroups = groups;
  const nameOf = (id) => subaccounts.find((s) => s.id === id)?.label ?? `#${id}`;
  fillBody(document.querySelector("#copy-groups tbody"), groups.map((g) => {
    const drifted = g.followers.some((f) => f.out_of_step);
    return el("tr", { dataset: { groupId: g.id, outOfStep: String(drifted) } },
      el("td", {}, el("b", { className: "name-cut", title: g.name }, g.name)),
      el("td", {}, nameOf(g.leader_subaccount_id)),
      el("td", { className: "wrap" }, g.followers.length ? el("ul", { className: "plain" }, ...g.followers.map((f) => followerItem(f, nameOf))) : "none"),
      el("td", {},
        el("span", { className: `pill ${g.enabled ? "on" : "off"}` }, g.enabled ? "On" : "Off"), " ",
        el("button", { type: "button", className: "btn btn-sm btn-ghost", ariaPressed: String(g.realign), dataset: { action: "toggle-realign", id: g.id } }, g.realign ? "Realigns by itself" : "Shows drift only"), " ",
        el("button", { type: "button", className: "btn btn-sm btn-ghost", ariaPressed: String(g.follow_risk_lock), dataset: { action: "toggle-lock", id: g.id } }, g.follow_risk_lock ? "Locks with the leader" : "Ignores the leader's lock")),
      el("td", { className: "actions" },
        el("button", { type: "button", className: `btn btn-sm${drifted ? "" : " btn-ghost"}`, dataset: { action: "realign", id: g.id } }, "Realign now"),
        el("button", { type: "button", className: "btn btn-sm btn-ghost danger", dataset: { action: "delete-group", id: g.id } }, "Delete")),
    );
  }), "No copy groups. With two or more subaccounts, pick a leader and its followers below: every order on the leader is then copied.");
}

document.getElementById("copy-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  if (!f.leader.value) {
    toast("Choose the leader subaccount first.", "error");
    return;
  }
  const followers = [...document.querySelectorAll("#copy-followers .copy-follower")]
    .filter((row) => row.querySelector("input[name=follow]").checked && row.dataset.subaccountId !== f.leader.value)
    .map((row) => {
      const field = (name) => row.querySelector(`input[name=${name}]`);
      const max = field("max_contracts").value;
      return {
        subaccount_id: Number(row.dataset.subaccountId),
        multiplier: Number(field("multiplier").value || 1),
        inverted: field("inverted").checked,
        symbol_map: parseMapping(field("symbol_map").value),
        max_contracts: max === "" ? null : Number(max),
      };
    });
  const body = {
    name: f.name.value.trim() || "Copy group", leader_subaccount_id: Number(f.leader.value), followers,
    realign: f.realign.checked, follow_risk_lock: f.follow_risk_lock.checked,
  };
  clearFieldErrors(event.target);
  await api("/api/copy-groups", { method: "POST", body, quiet: true })
    .then(() => toast("Copy group created.", "success", 2500))
    .catch((e) => showFormError(event.target, e, { names: { leader_subaccount_id: "leader" } }));
  await loadCopyGroups();
});

async function toggleGroup(id, field) {
  const group = copyGroups.find((g) => g.id === id);
  if (!group) return;
  await api(`/api/copy-groups/${id}`, { method: "PUT", body: { [field]: !group[field] } });
  await loadCopyGroups();
}

// ---- dialogs ----

const paperDialog = wireDialog(document.getElementById("paper-dialog"));
document.getElementById("paper-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = event.target.elements.name.value.trim() || "Paper";
  clearFieldErrors(event.target);
  try {
    const made = await api("/api/accounts", { method: "POST", body: { broker: "paper", name }, quiet: true });
    paperDialog.close();
    toast(`Paper account ${made.name} added with subaccount ${made.subaccounts[0]?.name}.`, "success");
    await refreshAll();
  } catch (e) {
    showFormError(event.target, e);
  }
});

const tradovateDialog = wireDialog(document.getElementById("tradovate-dialog"));
const tradovateForm = document.getElementById("tradovate-form");
tradovateForm.elements.environment.addEventListener("change", (event) => {
  document.getElementById("oauth-link").href = `/oauth/tradovate/start?environment=${encodeURIComponent(event.target.value)}`;
});
tradovateForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = tradovateForm.elements;
  const error = document.getElementById("tradovate-error");
  const button = document.getElementById("tradovate-save");
  error.hidden = true;
  clearFieldErrors(tradovateForm);
  button.disabled = true;
  try {
    const body = { broker: "tradovate", environment: f.environment.value, username: f.username.value,
      password: f.password.value, app_id: f.app_id.value, cid: f.cid.value.trim(), sec: f.sec.value };
    if (f.app_version.value.trim()) body.app_version = f.app_version.value.trim();
    const made = await api("/api/accounts", { method: "POST", body, quiet: true });
    tradovateDialog.close();
    tradovateForm.reset();
    toast(`Connected ${made.name}: ${made.subaccounts.length} subaccount(s).`, "success");
    await refreshAll();
  } catch (e) {
    showFormError(tradovateForm, e, { rest: error }); // a refused login names no field: above the form
  } finally {
    button.disabled = false;
  }
});

document.getElementById("tv-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  clearFieldErrors(event.target);
  try {
    await api("/api/tradingview/session", { method: "POST", body: { sessionid: f.sessionid.value.trim(), sessionid_sign: f.sessionid_sign.value.trim() }, quiet: true });
    event.target.reset();
    toast("TradingView session saved; the feed uses it within seconds.", "success");
  } catch (e) {
    showFormError(event.target, e);
  }
  await loadSession();
});
document.getElementById("tv-forget").addEventListener("click", async () => {
  if (!await confirmDialog({ title: "Forget the feed's TradingView session?", message: "Every user's quotes fall back to delayed ones.", confirm: "Forget", danger: true })) return;
  await api("/api/tradingview/session", { method: "DELETE" }).catch(() => {});
  await loadSession();
});
document.getElementById("tv-credentials-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const f = form.elements;
  clearFieldErrors(form);
  try {
    await api("/api/tradingview/credentials", { method: "POST", body: { username: f.username.value.trim(), password: f.password.value, totp_secret: f.totp_secret.value }, quiet: true });
    form.reset(); // never left in the page once saved
    toast("TradingView sign-in saved; the feed uses it when the session needs renewing.", "success");
  } catch (e) {
    showFormError(form, e);
  }
  await loadSession();
});
document.getElementById("tv-credentials-forget").addEventListener("click", async () => {
  if (!await confirmDialog({ title: "Forget the TradingView sign-in?", message: "The feed stops renewing its session by itself; cookies it obtained keep working until they expire.", confirm: "Forget", danger: true })) return;
  await api("/api/tradingview/credentials", { method: "DELETE" }).catch(() => {});
  await loadSession();
});
document.getElementById("tv-forget-own").addEventListener("click", async () => {
  if (!await confirmDialog({ title: "Delete your old TradingView cookies?", message: "The feed does not use them: the operator sets its session.", confirm: "Delete", danger: true })) return;
  await api("/api/tradingview/session", { method: "DELETE" }).catch(() => {});
  await loadSession();
});

const ACTIONS = {
  paper: () => { document.getElementById("paper-form").reset(); paperDialog.showModal(); },
  tradovate: () => tradovateDialog.showModal(),
  view: (id) => toggleView(id),
  refresh: async (id) => {
    await api(`/api/accounts/${id}/refresh`, { method: "POST", body: {} });
    toast("Subaccounts refreshed.", "success", 2500);
    await loadAccounts();
  },
  delete: async (id) => {
    const a = accounts.find((x) => x.id === id);
    if (!await confirmDialog({ title: `Remove ${a.name}?`, message: "Its subaccounts, and every trader sending orders to them, are removed. Open broker positions stay at the broker.", confirm: "Remove account", danger: true })) return;
    await api(`/api/accounts/${id}`, { method: "DELETE" });
    await refreshAll();
  },
  realign: async (id) => {
    const { orders } = await api(`/api/copy-groups/${id}/realign`, { method: "POST", body: {} });
    toast(orders.length ? `${orders.length} order${orders.length > 1 ? "s" : ""} sent to bring the followers in step.` : "Nothing to send: the followers are in step, or their orders are on the way.", "success", 3500);
    await loadCopyGroups();
  },
  "toggle-realign": (id) => toggleGroup(id, "realign"),
  "toggle-lock": (id) => toggleGroup(id, "follow_risk_lock"),
  "delete-group": async (id) => {
    if (!await confirmDialog({ title: "Delete this copy group?", message: "Orders on the leader are no longer copied.", confirm: "Delete", danger: true })) return;
    await api(`/api/copy-groups/${id}`, { method: "DELETE" });
    await loadCopyGroups();
  },
};

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button || !(button.dataset.action in ACTIONS)) return;
  Promise.resolve(ACTIONS[button.dataset.action](Number(button.dataset.id))).catch(() => {});
});

const refreshAll = coalesced(async () => {
  await loadAccounts();
  await Promise.all([loadCopyGroups(), loadSession(), loadFeed()]);
  document.body.dataset.loaded = "true";
});
const refreshAccounts = coalesced(loadAccounts);
const refreshFeed = coalesced(async () => Promise.all([loadFeed(), loadSession()]));

const refreshGroups = coalesced(loadCopyGroups);

onEvent("account.risk_status", () => refreshAccounts());
onEvent("account.copy_drift", () => refreshGroups());
onEvent("account.locked", () => refreshAccounts());
onEvent("account.alert", (d) => toast(d.message ?? "Broker alert", "error"));
onEvent("price.status", () => refreshFeed());
onResync(() => refreshAll());
setInterval(() => { if (!document.hidden) refreshFeed(); }, 5000);
refreshAll();
if (new URLSearchParams(window.location.search).get("connected")) toast("Tradovate connected.", "success");
