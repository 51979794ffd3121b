// The settings page: the time zone times are shown in; API keys made (the key shown once, with a
// copy button), listed and revoked; the password changed (errors beside their field); the
// browser sessions listed and ended.
import { ApiError, api, confirmDialog, copyText, toast } from "./api.js";
import { el, fillBody, timeCell } from "./dom.js";
import { clearFieldErrors, showFieldError, showFormError } from "./forms.js";
import { zonedTime } from "./format.js";
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

function sessionRow(s) {
  return el("tr", { dataset: { current: s.current } },
    el("td", { title: s.user_agent }, el("span", { className: "ua" }, s.user_agent || "unknown browser")),
    el("td", { className: "hide-sm mono" }, s.address),
    timeCell(s.created_at, "hide-sm"),
    timeCell(s.last_seen_at),
    el("td", {}, s.current ? el("span", { className: "pill on" }, "This browser") : null),
  );
}

async function loadSessions() {
  const { sessions } = await api("/api/sessions");
  fillBody(document.querySelector("#sessions tbody"), sessions.map(sessionRow),
    "No browser is logged in as you (you are using an API key).");
}

const load = coalesced(async () => {
  const [{ api_keys: list }, me] = await Promise.all([api("/api/api-keys"), api("/api/me"), loadSessions()]);
  if (!zoneSelect.dataset.saved) showZoneChoices(me.time_zone);
  keys.clear();
  for (const k of list) keys.set(k.id, k);
  fillBody(document.querySelector("#api-keys tbody"), list.map(keyRow),
    "No API keys yet. Name one above and press Create API key; a script then sends it as a Bearer token.");
  document.body.dataset.loaded = "true";
});

// --- time zone ------------------------------------------------------------------------------

const zoneSelect = document.getElementById("time-zone");

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    return null;
  }
}

/** The fixed choices, the browser's own zone, and a zone set through the API if it is none of them. */
function showZoneChoices(saved) {
  const browser = browserZone();
  const fixed = [...zoneSelect.options];
  const same = fixed.find((o) => o.value === browser);
  if (same) same.textContent += " (your browser's zone)";
  else if (browser) zoneSelect.insertBefore(el("option", { value: browser }, `Your browser's zone (${browser})`), fixed.at(-1));
  if (![...zoneSelect.options].some((o) => o.value === saved)) zoneSelect.append(el("option", { value: saved }, saved));
  zoneSelect.value = saved;
  zoneSelect.dataset.saved = saved;
  document.getElementById("zone-now").textContent = `Now: ${zonedTime(new Date())}`;
}

zoneSelect.addEventListener("change", async () => {
  zoneSelect.disabled = true;
  try {
    await api("/api/me", { method: "PUT", body: { time_zone: zoneSelect.value } });
    window.location.reload(); // every time on the page, in the new zone
  } catch {
    zoneSelect.value = zoneSelect.dataset.saved; // the API showed why in a toast
    zoneSelect.disabled = false;
  }
});

// --- password ---------------------------------------------------------------------------------

const passwordForm = document.getElementById("password-form");

passwordForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors(passwordForm);
  const current = passwordForm.elements.current_password.value;
  const fresh = passwordForm.elements.new_password.value;
  if (!current) return showFieldError(passwordForm, "current_password", "Enter your current password.");
  if (!fresh) return showFieldError(passwordForm, "new_password", "Enter a new password.");
  if (passwordForm.elements.repeat_password.value !== fresh) {
    return showFieldError(passwordForm, "repeat_password", "This does not match the new password.");
  }
  const button = document.getElementById("password-change");
  button.disabled = true;
  try {
    const done = await api("/api/password", {
      method: "POST", body: { current_password: current, new_password: fresh }, quiet: true,
    });
    passwordForm.reset();
    const others = done.sessions_ended === 1 ? "1 other browser was" : `${done.sessions_ended} other browsers were`;
    toast(`Password changed; ${others} logged out.`, "success", 4000);
    await loadSessions();
  } catch (error) {
    if (error instanceof ApiError && error.status === 429) {
      showFieldError(passwordForm, "current_password", error.message); // too many wrong guesses
    } else {
      showFormError(passwordForm, error); // each sentence beside its field, in the label's words
    }
  } finally {
    button.disabled = false;
  }
});

// --- log out everywhere ---------------------------------------------------------------------

document.getElementById("end-all").addEventListener("click", async () => {
  const yes = await confirmDialog({
    title: "Log out everywhere?",
    message: "Every browser logged in as you is logged out, this one too, and must log in again. API keys keep working.",
    confirm: "Log out everywhere", danger: true,
  });
  if (!yes) return;
  try {
    await api("/api/sessions/end-all", { method: "POST" });
    window.location.assign("/login");
  } catch {
    // the API showed a toast
  }
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
