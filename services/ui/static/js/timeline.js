// One signal's timeline in a dialog: every hop from the gateway to the broker, with its time and
// the ms since the hop before (GET /api/signals/<id>/timeline). Opened from the signal list, a
// trade's fills, or right after a test alert, while the signal may still be pending.
import { api } from "./api.js";
import { el, fillBody } from "./dom.js";
import { price, zonedTime } from "./format.js";
import { coalesced, onEvent } from "./live.js";

const POLL_MS = 1500; // while the engine or the broker has not answered yet
const POLLS = 8;
const IN_FLIGHT = new Set(["pending", "queued", "sent"]);

const ENGINE = {
  received: "Received by the gateway",
  stream: "Written to the stream",
  pending: "Waiting for the engine",
  applied: "Applied by the engine",
  ignored: "Ignored by the engine",
  rejected: "Rejected by the engine",
};
const ORDER = {
  sent: "Sent to the broker",
  accepted: "Accepted by the broker",
  rejected: "Order rejected",
  failed: "Order failed",
  skipped: "Order skipped",
};

/** A hop in human words: "Order queued for Practice / PAPER-1", "Filled at 25,010.25". */
export function hopLabel(hop) {
  if (!hop.intent_id) return ENGINE[hop.hop] ?? hop.hop;
  if (hop.hop === "queued") return `Order queued for ${hop.account ?? "the account"}`;
  if (hop.hop === "filled") return hop.fill_price === null ? "Done at the broker" : `Filled at ${price(hop.fill_price)}`;
  return ORDER[hop.hop] ?? hop.hop;
}

/** The page's time with its milliseconds: "2026-12-03 15:21:32.946 CST". */
function hopTime(iso) {
  const text = zonedTime(iso);
  const millis = String(new Date(iso).getUTCMilliseconds()).padStart(3, "0");
  return text.replace(/(\d\d:\d\d:\d\d)/, `$1.${millis}`);
}

function msText(ms) {
  return ms === null || ms === undefined ? "" : `+${ms.toLocaleString("en-US")} ms`;
}

function signalText(s) {
  const what = [s.action ?? s.market_position, s.action ? s.qty : s.position_size, s.ticker]
    .filter((part) => part !== null && part !== undefined).join(" ");
  return what || "Signal";
}

class TimelineDialog {
  constructor() {
    this.signalId = null;
    this.token = 0;
    this.polls = 0;
    this.timer = null;
    this.title = el("h1", { id: "timeline-title" }, "Signal timeline");
    this.summary = el("p", { className: "hint", id: "timeline-summary" });
    this.body = el("tbody");
    this.refreshButton = el("button", { type: "button", className: "btn", id: "timeline-refresh" }, "Refresh");
    const close = (label, className) => el("button", { type: "button", className, dataset: { close: "" }, "aria-label": label }, label === "Close" ? "✕" : label);
    this.dialog = el("dialog", { id: "timeline-dialog", className: "wide timeline", "aria-labelledby": "timeline-title" },
      el("div", { className: "dialog-body" },
        el("header", {}, this.title, close("Close", "btn btn-ghost btn-sm")),
        this.summary,
        el("div", { className: "table-wrap" },
          el("table", { className: "data", id: "timeline-hops" },
            el("thead", {}, el("tr", {},
              el("th", {}, "Hop"), el("th", {}, "Time"), el("th", { className: "num" }, "Since previous"),
              el("th", {}, "Detail"))),
            this.body)),
        el("footer", {}, this.refreshButton, close("Done", "btn btn-primary"))));
    document.body.append(this.dialog);
    for (const button of this.dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => this.dialog.close());
    }
    this.dialog.addEventListener("close", () => { this.signalId = null; this.stopPolling(); });
    this.reload = coalesced(() => this.load());
    this.refreshButton.addEventListener("click", () => { this.polls = 0; this.reload(); });
    // The engine's outcome and each order's answers arrive as events: show them as they come.
    for (const type of ["signal.*", "order.*"]) {
      onEvent(type, (data) => { if (data?.signal_id && data.signal_id === this.signalId) this.reload(); });
    }
  }

  async open(signalId) {
    this.signalId = String(signalId);
    this.token += 1;
    this.polls = 0;
    this.stopPolling();
    this.title.textContent = "Signal timeline";
    this.summary.textContent = "Loading…";
    this.body.replaceChildren();
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  async load() {
    if (this.signalId === null) return;
    const token = this.token;
    let data;
    try {
      data = await api(`/api/signals/${encodeURIComponent(this.signalId)}/timeline`);
    } catch {
      if (token === this.token && this.dialog.open) this.summary.textContent = "The timeline could not be loaded; try Refresh.";
      return; // the API showed a toast
    }
    if (token !== this.token || !this.dialog.open) return; // another signal was opened meanwhile
    this.render(data);
    this.schedule(data);
  }

  render({ signal, hops, total_ms: total }) {
    this.dialog.dataset.signalId = signal.id;
    this.dialog.dataset.status = signal.status;
    this.title.textContent = `Signal timeline · ${signalText(signal)}`;
    const totalText = total === null ? "" : ` · ${total.toLocaleString("en-US")} ms from the first hop to the last`;
    this.summary.textContent = `${signal.status}${signal.reason ? `: ${signal.reason}` : ""}${totalText}`;
    let intent = null;
    fillBody(this.body, hops.map((hop) => {
      const first = hop.intent_id !== null && hop.intent_id !== intent;
      intent = hop.intent_id;
      return el("tr", { dataset: { hop: hop.hop }, className: `hop-${hop.hop} ${hop.intent_id ? "order-hop" : ""} ${first ? "order-start" : ""}`.trim() },
        el("td", { className: "hop-name" }, hopLabel(hop)),
        el("td", { className: "time", title: hop.at ?? "" }, hop.at ? hopTime(hop.at) : "—"),
        el("td", { className: "num ms" }, msText(hop.ms_since_previous)),
        el("td", { className: "detail" }, hop.detail),
      );
    }), "Nothing recorded for this signal.");
  }

  /** Look again a few times while the engine or an order has not answered. */
  schedule({ hops }) {
    const lastOfEach = new Map(hops.map((hop) => [hop.intent_id ?? "signal", hop.hop]));
    const waiting = [...lastOfEach.values()].some((hop) => IN_FLIGHT.has(hop));
    this.stopPolling();
    if (!waiting || this.polls >= POLLS) return;
    this.polls += 1;
    this.timer = setTimeout(() => this.reload(), POLL_MS);
  }

  stopPolling() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}

let timeline = null;

/** Open (or switch the open dialog to) the timeline of one signal. */
export async function openTimeline(signalId) {
  timeline ??= new TimelineDialog();
  await timeline.open(signalId);
}

/** A small "Timeline" button for a row; `bindTimelineButtons` opens it. */
export function timelineButton(signalId) {
  return el("button", { type: "button", className: "btn btn-sm btn-ghost", dataset: { timeline: signalId }, title: "Every hop of this signal, with times" }, "Timeline");
}

/** Open the timeline of any `[data-timeline]` button clicked inside `container`. */
export function bindTimelineButtons(container) {
  container.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-timeline]");
    if (button) openTimeline(button.dataset.timeline);
  });
}
