// The settings page: API keys made (the key shown once, with a copy button), listed and revoked.
import { api, confirmDialog, copyText, toast } from "./api.js";
import { el, fillBody, timeCell } from "./dom.js";
import { coalesced, onResync } from "./live.js";

const form = document.getElementById("key-form");
const keys = new Map();

function keyRow(k) {
  const revoked = k.revoked_at !== null;
  return el("tr", { dataset: { keyId: k.id } },
    el("td", {}, el("b", {}, k.name)),
    el("td", { className: "mono" }, `${k.prefix}…`),
    timeCell(k.created_at, "hide-sm"),
    k.last_used_at ? timeCell(k.last_used_at) : el("td", { className: "muted" }, "never"),
    el("td", {}, el("span", { className: `pill ${revoked ? "off" : "on"}` }, revoked ? "Revoked" : "Active")),
    el("td", { className: "actions" }, revoked ? null : el("button", {
      type: "button", className: "btn btn-sm btn-ghost danger", dataset: { action: "revoke", id: k.id },
    }, "Revoke")),
  );
}

const load = coalesced(async () => {
  const { api_keys: list } = await api("/api/api-keys");
  keys.clear();
  for (const k of list) keys.set(k.id, k);
  fillBody(document.querySelector("#api-keys tbody"), list.map(keyRow),
    "No API keys yet. Name one above and press Create API key; a script then sends it as a Bearer token.");
  document.body.dataset.loaded = "true";
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("key-create");
  button.disabled = true;
  try {
    const name = form.elements.name.value.trim() || "API key";
    const made = await api("/api/api-keys", { method: "POST", body: { name } });
    document.getElementById("new-key-value").value = made.key;
    document.getElementById("new-key").hidden = false;
    form.reset();
    toast(`API key ${made.name} created.`, "success", 2500);
    await load();
  } catch {
    // the API showed a toast
  } finally {
    button.disabled = false;
  }
});

document.getElementById("copy-key").addEventListener("click", () => {
  copyText(document.getElementById("new-key-value").value, "API key copied");
});
document.getElementById("hide-key").addEventListener("click", () => {
  document.getElementById("new-key-value").value = "";
  document.getElementById("new-key").hidden = true;
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action=revoke]");
  if (!button) return;
  const k = keys.get(Number(button.dataset.id));
  const yes = await confirmDialog({
    title: `Revoke ${k.name}?`,
    message: "Every script using this key gets 401 from its next request. This cannot be undone.",
    confirm: "Revoke key", danger: true,
  });
  if (!yes) return;
  try {
    await api(`/api/api-keys/${k.id}`, { method: "DELETE" });
    toast(`API key ${k.name} revoked.`, "success", 2500);
  } finally {
    await load();
  }
});

onResync(() => load());
load();
