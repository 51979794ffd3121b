// Form errors beside their inputs: a 422 names each wrong body field (`fields`), and the form
// shows each sentence under the input of that name, in the words of the input's label.
import { ApiError, toast } from "./api.js";

const CONTROLS = "input, select, textarea";

/** The words of an input's label, without the label's own controls, units and messages. */
export function labelText(input) {
  const label = input.labels?.[0] ?? input.closest("label");
  if (!label) return input.getAttribute("aria-label");
  const copy = label.cloneNode(true);
  for (const node of copy.querySelectorAll(`${CONTROLS}, .unit, .field-error, [data-error-for]`)) node.remove();
  return copy.textContent.replace(/\s+/g, " ").trim() || input.getAttribute("aria-label");
}

const escaped = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A label in the middle of a sentence: "Most contracts in one signal" → "most contracts in one signal". */
const midSentence = (label) => (/^[A-Z][a-z]/.test(label) ? label[0].toLowerCase() + label.slice(1) : label);

function visible(input) {
  return !input.disabled && input.type !== "hidden" && !input.closest("[hidden]");
}

function errorBox(scope, input, name) {
  let box = scope.querySelector(`[data-error-for="${name}"]`);
  if (!box) {
    box = document.createElement("span");
    box.className = "field-error";
    box.dataset.errorFor = name;
    box.setAttribute("role", "alert");
    (input.closest(".unit-input") ?? input).after(box);
  }
  box.id ||= `error-${scope.id || "form"}-${name}`;
  return box;
}

function describe(input, id, on) {
  const ids = new Set((input.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean));
  if (on) ids.add(id);
  else ids.delete(id);
  if (ids.size) input.setAttribute("aria-describedby", [...ids].join(" "));
  else input.removeAttribute("aria-describedby");
}

function clearOne(scope, input) {
  const box = scope.querySelector(`[data-error-for="${input.name}"]`);
  input.removeAttribute("aria-invalid");
  if (!box) return;
  box.textContent = "";
  box.hidden = true;
  describe(input, box.id, false);
}

/** Show `message` beside the input named `name` in `scope` (a form or any element holding inputs). */
export function showFieldError(scope, name, message) {
  const input = scope.querySelector(`[name="${name}"]`);
  if (!input) return;
  const box = errorBox(scope, input, name);
  box.textContent = message;
  box.hidden = false;
  input.setAttribute("aria-invalid", "true");
  describe(input, box.id, true);
  // The message goes as soon as the user changes the value it is about.
  const clear = () => clearOne(scope, input);
  input.addEventListener("input", clear, { once: true });
  input.addEventListener("change", clear, { once: true });
}

/** Remove every message shown beside an input of `scope`. */
export function clearFieldErrors(scope) {
  for (const input of scope.querySelectorAll("[aria-invalid=true]")) clearOne(scope, input);
  for (const box of scope.querySelectorAll(".field-error")) box.hidden = true;
}

/**
 * Show an API error on a form: each sentence of its `fields` beside the input of that name
 * (`names` maps an API field to an input of another name), every API field name in it replaced
 * by the input's label. What matches no shown input (or the whole message when the API named no
 * field) goes to `rest` (an element, e.g. the dialog's error line) or else to a toast; it is also
 * returned. The first input in error gets the focus unless `focus` is false.
 */
export function showFormError(scope, error, { names = {}, rest = null, focus = true } = {}) {
  clearFieldErrors(scope);
  if (error instanceof ApiError && error.status === 401) return ""; // api() is off to the login page
  const fields = error instanceof ApiError ? error.body?.fields ?? {} : {};
  const inputOf = (field) => {
    const input = scope.querySelector(`[name="${names[field] ?? field}"]`);
    return input && visible(input) && labelText(input) ? input : null;
  };
  const words = (sentence, field) => {
    const label = labelText(inputOf(field));
    let text = sentence.replace(new RegExp(`^${escaped(field)}\\b`), () => label);
    for (const other of Object.keys({ ...fields, ...names })) {
      // Snake-case names only: "name" or "price" in a sentence may be plain English.
      const input = other.includes("_") ? inputOf(other) : null;
      if (input) text = text.replace(new RegExp(`\\b${escaped(other)}\\b`, "g"), () => midSentence(labelText(input)));
    }
    return text.replace(/\bnull\b/g, "empty"); // an empty input is what the API calls null
  };
  const left = [];
  let first = null;
  for (const [field, sentence] of Object.entries(fields)) {
    const input = inputOf(field);
    if (!input) {
      left.push(sentence);
      continue;
    }
    showFieldError(scope, input.name, words(sentence, field));
    first ??= input;
  }
  const named = Object.keys(fields).length > 0;
  const text = named ? left.join(" ") : error instanceof ApiError ? error.message : String(error);
  if (rest) {
    rest.textContent = text;
    rest.hidden = !text;
  } else if (text) {
    toast(text, "error");
  }
  if (focus) first?.focus();
  return text;
}
