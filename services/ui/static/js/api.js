// The JSON API from the pages: same-origin fetch with the CSRF token; errors become toasts.
const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * Call the API and return its JSON body. A failure throws ApiError after showing the API's
 * own sentence in a toast (pass quiet: true to handle it yourself). A 401 means the session
 * ended: back to the login page.
 */
export async function api(path, { method = "GET", body, params, quiet = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path, params), {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    const error = new ApiError("The server cannot be reached; check your connection.", 0, null);
    if (!quiet) toast(error.message, "error");
    throw error;
  }
  if (response.status === 401) {
    window.location.assign(url("/login", { next: window.location.pathname + window.location.search }));
    throw new ApiError("Your session has ended; log in again.", 401, null);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok || !data || data.ok === false) {
    const message = data?.error ?? `The server answered ${response.status}.`;
    if (!quiet) toast(message, "error");
    throw new ApiError(message, response.status, data);
  }
  return data;
}

/** Every page of a paginated list (e.g. trade history), in order. */
export async function fetchAll(path, key, params = {}, perPage = 500) {
  const rows = [];
  for (let page = 1; ; page += 1) {
    const data = await api(path, { params: { ...params, page, per_page: perPage } });
    rows.push(...data[key]);
    if (data[key].length < perPage || rows.length >= data.total) return rows;
  }
}

export function toast(message, kind = "info", ms = 5000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  item.textContent = message;
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? ms * 2 : ms);
}

/** A modal yes/no question; resolves true only when the user confirms. */
export function confirmDialog({ title, message, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const dialog = document.createElement("dialog");
    dialog.className = "confirm";
    const form = document.createElement("form");
    form.method = "dialog";
    const heading = document.createElement("h1");
    heading.textContent = title;
    const text = document.createElement("p");
    text.textContent = message;
    const footer = document.createElement("footer");
    const cancel = Object.assign(document.createElement("button"), {
      type: "submit", value: "cancel", className: "btn btn-ghost", textContent: "Cancel",
    });
    const ok = Object.assign(document.createElement("button"), {
      type: "submit", value: "ok", className: `btn ${danger ? "btn-danger" : "btn-primary"}`,
      textContent: confirm,
    });
    ok.dataset.confirm = "";
    footer.append(cancel, ok);
    form.append(heading, text, footer);
    dialog.append(form);
    document.body.append(dialog);
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    dialog.showModal();
    cancel.focus();
  });
}

/** Copy text, with a toast either way (the async clipboard needs https or localhost). */
export async function copyText(text, what = "Copied") {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
    } else {
      const area = Object.assign(document.createElement("textarea"), { value: text });
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      if (!done) throw new Error("copy refused");
    }
    toast(`${what} to the clipboard.`, "success", 2500);
  } catch {
    toast("The browser refused the clipboard; select the text and copy it by hand.", "error");
  }
}
