// The settings page's notifications: destinations added (a webhook's secret shown once), tested,
// paused, removed, each with its last delivery and its error.
import { api, confirmDialog, copyText, toast } from "./api.js";
import { el, fillBody, timeCell } from "./dom.js";
import { coalesced, onResync } from "./live.js";

const form = document.getElementById("notify-form");
const destinations = new Map();
const EVENT_LABELS = {
  fill: "Fills", rejection: "Rejections", risk_lock: "Risk locks", risk_breach: "Broker risk status",
  broker_lockout: "Broker lockouts", broker_penalty: "Broker penalties", feed_delayed: "Feed delayed",
  feed_down: "Feed down", feed_signin_failed: "Feed sign-in failed", reconcile_difference: "Reconciliation differences",
  daily_summary: "Daily summary (after 17:00 New York)",
};
const KIND_LABELS = { webhook: "Webhook", discord: "Discord", telegram: "Telegram", email: "E-mail" };

function eventBoxes() {
  const box = document.getElementById("notify-events");
  for (const [value, label] of Object.entries(EVENT_LABELS)) {
    box.append(el("label", { className: "check" },
      el("input", { type: "checkbox", name: "events", value, checked: value !== "daily_summary" }), ` ${label}`));
  }
}

const URL_HINTS = {
  discord: "https://discord.com/api/webhooks/…", webhook: "https://your-server.example/hook",
};

function showKindFields() {
  const kind = form.elements.kind.value;
  form.elements.url.placeholder = URL_HINTS[kind] ?? "";
  for (const label of form.querySelectorAll("label[data-kind]")) {
    label.hidden = !label.dataset.kind.split(" ").includes(kind);
  }
}

function eventsText(events) {
  const all = Object.keys(EVENT_LABELS);
  if (events.length === all.length) return "All events";
  if (events.length >= all.length - 2) {
    const left = all.filter((e) => !events.includes(e))
      .map((e) => EVENT_LABELS[e].replace(/ \(.*\)$/, "").toLowerCase());
    return `All but ${left.join(" and ")}`;
  }
  return events.map((e) => EVENT_LABELS[e] ?? e).join(", ");
}

function lastDelivery(d) {
  const last = d.last_delivery;
  if (!last) return el("td", { className: "muted" }, "none yet");
  const what = last.ok ? el("span", { className: "pill on" }, "Delivered")
    : el("span", { className: "pill off", title: last.error ?? "" }, "Failed");
  return el("td", { className: "wrap" }, el("span", { className: "muted" }, `${last.event} · `),
    timeCell(last.at).textContent, " ", what,
    last.ok ? null : el("div", { className: "muted small delivery-error" }, last.error));
}

function destinationRow(d) {
  const button = (action, text, extra = "") => el("button", {
    type: "button", className: `btn btn-sm btn-ghost ${extra}`.trim(), dataset: { notifyAction: action, id: d.id },
  }, text);
  return el("tr", { dataset: { destinationId: d.id } },
    el("td", {}, el("b", {}, KIND_LABELS[d.kind] ?? d.kind), el("div", { className: "mono muted" }, d.target)),
    el("td", { className: "hide-sm wrap small" }, eventsText(d.events)),
    lastDelivery(d),
    el("td", {}, el("span", { className: `pill ${d.enabled ? "on" : "off"}` }, d.enabled ? "On" : "Paused")),
    el("td", { className: "actions" }, button("test", "Send test"),
      button("toggle", d.enabled ? "Pause" : "Resume"), button("remove", "Remove", "danger")),
  );
}

const load = coalesced(async () => {
  const { destinations: list } = await api("/api/notifications");
  destinations.clear();
  for (const d of list) destinations.set(d.id, d);
  fillBody(document.querySelector("#notifications tbody"), list.map(destinationRow),
    "No destinations yet. Choose where to send, tick the events you want, and press Add destination.");
  document.getElementById("notifications-panel").dataset.loaded = "true";
});

function target(kind) {
  const f = form.elements;
  if (kind === "telegram") return { bot_token: f.bot_token.value.trim(), chat_id: f.chat_id.value.trim() };
  if (kind === "email") return { to: f.to.value.trim() };
  return f.url.value.trim();
}

form.addEventListener("change", (event) => { if (event.target.name === "kind") showKindFields(); });
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("notify-create");
  button.disabled = true;
  try {
    const kind = form.elements.kind.value;
    const events = [...form.querySelectorAll("input[name=events]:checked")].map((i) => i.value);
    const made = await api("/api/notifications", { method: "POST", body: { kind, target: target(kind), events } });
    if (made.secret) {
      document.getElementById("new-secret-value").value = made.secret;
      document.getElementById("new-secret").hidden = false;
    }
    for (const name of ["url", "bot_token", "chat_id", "to"]) form.elements[name].value = "";
    toast(`${KIND_LABELS[kind]} destination added. Press Send test to try it.`, "success", 3000);
    await load();
  } catch {
    // the API showed a toast
  } finally {
    button.disabled = false;
  }
});

document.getElementById("copy-secret").addEventListener("click", () => {
  copyText(document.getElementById("new-secret-value").value, "Signing secret copied");
});
document.getElementById("hide-secret").addEventListener("click", () => {
  document.getElementById("new-secret-value").value = "";
  document.getElementById("new-secret").hidden = true;
});

async function act(action, d) {
  if (action === "test") {
    const answer = await api(`/api/notifications/${d.id}/test`, { method: "POST" });
    if (answer.delivered) toast("Test message delivered.", "success", 2500);
    else toast(`Test message failed: ${answer.error}`, "error");
  } else if (action === "toggle") {
    await api(`/api/notifications/${d.id}`, { method: "PUT", body: { enabled: !d.enabled } });
  } else if (action === "remove") {
    const yes = await confirmDialog({
      title: `Remove this ${KIND_LABELS[d.kind] ?? d.kind} destination?`,
      message: "Nothing more is sent there. Add it again to get it back.",
      confirm: "Remove", danger: true,
    });
    if (!yes) return;
    await api(`/api/notifications/${d.id}`, { method: "DELETE" });
    toast("Destination removed.", "success", 2500);
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-notify-action]");
  if (!button) return;
  const d = destinations.get(Number(button.dataset.id));
  button.disabled = true;
  try {
    await act(button.dataset.notifyAction, d);
  } catch {
    // the API showed a toast
  } finally {
    button.disabled = false;
    await load();
  }
});

eventBoxes();
showKindFields();
onResync(() => load());
load();
