// Names the pages show for ids: the user's recorders and subaccounts, and small form helpers.
import { api } from "./api.js";
import { el } from "./dom.js";

/** Every subaccount with its account: [{id, name, label, account, risk_status, active}]. */
export async function loadSubaccounts() {
  const { accounts } = await api("/api/accounts");
  return accounts.flatMap((a) => a.subaccounts.map((s) => ({
    ...s, account: a, label: `${s.name} · ${a.name}${a.broker === "paper" ? " (paper)" : ""}`,
  })));
}

export async function loadRecorders() {
  const { recorders } = await api("/api/recorders");
  return recorders;
}

/** Fill a <select> with options, keeping the chosen value when it is still there. */
export function fillSelect(select, items, { value = (x) => x.id, label = (x) => x.name, placeholder } = {}) {
  const kept = select.value;
  select.replaceChildren(
    ...(placeholder ? [el("option", { value: "" }, placeholder)] : []),
    ...items.map((item) => el("option", { value: String(value(item)) }, label(item))),
  );
  if ([...select.options].some((o) => o.value === kept)) select.value = kept;
}

/** The dialog's [data-close] buttons close it. */
export function wireDialog(dialog) {
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close());
  }
  return dialog;
}

export function optionalNumber(text) {
  const trimmed = String(text ?? "").trim();
  return trimmed === "" ? null : Number(trimmed);
}

export const ORDER_STATUS_CLASS = {
  filled: "applied", accepted: "pending", queued: "pending", sending: "pending",
  rejected: "rejected", failed: "rejected", paused: "ignored",
};
