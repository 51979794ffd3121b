// Live updates over Socket.IO: one socket per page, events routed to the page's handlers.
// The server joins the socket to the user's room; nothing is queued for a browser that is away,
// so each (re)connect asks the page to reload its state from the API.
import { io } from "../vendor/socket.io.esm.min.js";

const handlers = new Map(); // event type ("position.opened") or prefix ("position.*") → [fn]
const resyncs = [];
const LABELS = { connected: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

function setState(state) {
  document.body.dataset.live = state;
  const label = document.querySelector("#live-status .label");
  if (label) label.textContent = LABELS[state] ?? state;
  const box = document.getElementById("live-status");
  if (box) box.title = state === "connected" ? `Live updates (${socket.io.engine?.transport?.name})` : LABELS[state];
}

// WebSocket first; long-polling only where a proxy does not pass WebSockets.
const socket = io({ transports: ["websocket", "polling"], withCredentials: true });

socket.on("connect", () => {
  setState("connected");
  document.body.dataset.transport = socket.io.engine.transport.name;
  for (const fn of resyncs) fn();
});
socket.on("disconnect", () => setState(socket.active ? "reconnecting" : "offline"));
socket.on("connect_error", () => {
  if (socket.active) {
    setState("reconnecting");
    return;
  }
  // The server refused the socket: the session has ended.
  setState("offline");
  window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
});
socket.on("jt_event", ({ type, data }) => {
  const prefix = `${type.split(".")[0]}.*`;
  for (const key of [type, prefix, "*"]) {
    for (const fn of handlers.get(key) ?? []) {
      try {
        fn(data, type);
      } catch (error) {
        console.error("live handler failed", type, error);
      }
    }
  }
});

/** Call `fn(data, type)` for each event of `type` ("position.marked", "signal.*" or "*"). */
export function onEvent(type, fn) {
  if (!handlers.has(type)) handlers.set(type, []);
  handlers.get(type).push(fn);
}

/** Call `fn()` whenever the socket (re)connects: events may have been missed meanwhile. */
export function onResync(fn) {
  resyncs.push(fn);
}

export { socket };

/** `fn` wrapped so that calls while it runs collapse into one more run afterwards. */
export function coalesced(fn) {
  let running = null;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await fn();
        } catch (error) {
          console.error(error); // the API call already showed a toast
        }
      } while (again);
    })();
    try {
      await running;
    } finally {
      running = null;
    }
  };
  return run;
}
