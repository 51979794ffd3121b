// The Recorders page's webhook checks for one recorder: whether TradingView can reach its URL,
// a test alert sent through it (its timeline opens), and the webhooks the gateway refused.
import { api, ApiError, confirmDialog, toast } from "./api.js";
import { el, fillBody, timeCell } from "./dom.js";
import { openTimeline } from "./timeline.js";

const REFRESH_MS = 30_000; // refusals raise no live event: look again while the page is shown

const panel = document.getElementById("recorder-alerts");
const picker = document.getElementById("alerts-recorder");
const testButton = document.getElementById("send-test-alert");
const clearButton = document.getElementById("clear-refused");
const result = document.getElementById("test-alert-result");
const warning = document.getElementById("url-warning");
const refusedBody = document.querySelector("#refused-webhooks tbody");

let recorders = []; // [{id, name}] as the page last showed them
let selected = null; // the recorder id being checked

const nameOf = (id) => recorders.find((r) => r.id === id)?.name ?? `#${id}`;

function showWarning(text) {
  warning.hidden = !text;
  warning.querySelector("span").textContent = text ?? "";
}

function showResult(text, kind) {
  result.hidden = !text;
  result.className = `test-result ${kind ?? ""}`.trim();
  result.textContent = text ?? "";
}

function refusedRow(r) {
  return el("tr", { className: r.unknown_token ? "unknown-token" : "" },
    timeCell(r.at),
    el("td", {}, el("span", { className: "pill rejected" }, String(r.status))),
    el("td", { className: "reason" },
      r.unknown_token ? el("span", { className: "pill ignored", title: "Sent to a webhook URL no recorder has (an old or mistyped URL) with this recorder's name in its recorder field" }, "unknown token") : null,
      r.unknown_token ? " " : null,
      r.error,
      r.remote ? el("span", { className: "muted" }, ` (from ${r.remote})`) : null),
    el("td", { className: "hide-sm refused-body" },
      el("details", {}, el("summary", {}, "Body"), el("pre", {}, r.body))),
  );
}

async function loadRefused() {
  if (selected === null) return;
  const id = selected;
  const data = await api(`/api/recorders/${id}/refused`, { quiet: true }).catch(() => null);
  if (!data || id !== selected) return;
  document.getElementById("refused-count").textContent = data.refused.length ? `(${data.refused.length})` : "";
  document.getElementById("refused-kept").textContent = `Kept: ${data.kept}`;
  clearButton.disabled = !data.refused.length;
  fillBody(refusedBody, data.refused.map(refusedRow),
    "None refused. A webhook the gateway refuses (a field it cannot read, a placeholder TradingView did not fill in) shows here with the reason.");
}

async function loadWarning() {
  const id = selected;
  const setup = await api(`/api/recorders/${id}/webhook`, { quiet: true }).catch(() => null);
  if (setup && id === selected) showWarning(setup.url_warning);
}

function select(id) {
  if (id === selected) return;
  selected = id;
  picker.value = String(id);
  showResult(null);
  loadWarning();
  loadRefused();
}

async function sendTest() {
  const id = selected;
  testButton.disabled = true;
  showResult(`Sending a test alert to the webhook URL of ${nameOf(id)}…`);
  try {
    const sent = await api(`/api/recorders/${id}/test-alert`, { method: "POST", body: {}, quiet: true });
    showWarning(sent.url_warning);
    const said = sent.answer?.error ?? (sent.signal_id ? `accepted as signal ${sent.signal_id}` : JSON.stringify(sent.answer));
    const ok = sent.status === 202 || sent.status === 200;
    showResult(`The gateway answered ${sent.status}: ${said}${ok ? ". The engine records it as ignored and trades nothing." : ""}`, ok ? "ok" : "failed");
    if (sent.signal_id) openTimeline(sent.signal_id);
  } catch (error) {
    showResult(error instanceof ApiError ? error.message : String(error), "failed");
  } finally {
    testButton.disabled = false;
    loadRefused(); // a refused test is listed there too
  }
}

async function clearRefused() {
  const yes = await confirmDialog({
    title: `Clear the refused webhooks of ${nameOf(selected)}?`,
    message: "The list is emptied; webhooks refused from now on are listed again.",
    confirm: "Clear", danger: true,
  });
  if (!yes) return;
  await api(`/api/recorders/${selected}/refused`, { method: "DELETE" });
  toast("Refused webhooks cleared.", "success");
  await loadRefused();
}

/** Show the checks for the page's recorders (called whenever the list is drawn; cheap). */
export function showRecorderAlerts(list) {
  const next = list.map((r) => ({ id: r.id, name: r.name }));
  const changed = JSON.stringify(next) !== JSON.stringify(recorders);
  recorders = next;
  panel.hidden = !recorders.length;
  if (!changed) return;
  picker.replaceChildren(...recorders.map((r) => el("option", { value: String(r.id) }, r.name)));
  if (!recorders.length) {
    selected = null;
    return;
  }
  const keep = recorders.some((r) => r.id === selected) ? selected : recorders[0].id;
  selected = null;
  select(keep);
}

picker.addEventListener("change", () => select(Number(picker.value)));
testButton.addEventListener("click", () => sendTest());
clearButton.addEventListener("click", () => clearRefused().catch(() => {}));
// A recorder's Webhook button also brings its checks here.
document.addEventListener("click", (event) => {
  const button = event.target.closest('button[data-action="webhook"][data-id]');
  if (button && recorders.some((r) => r.id === Number(button.dataset.id))) select(Number(button.dataset.id));
});
setInterval(() => {
  if (document.visibilityState === "visible" && !panel.hidden) loadRefused();
}, REFRESH_MS);
