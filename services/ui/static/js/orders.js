// An order (intent) as a table row, shared by the traders, manual trader and control pages.
import { el, numCell, timeCell } from "./dom.js";
import { ORDER_STATUS_CLASS } from "./directory.js";
import { price, qty } from "./format.js";

export function orderWhat(o) {
  if (o.kind === "flatten") return "flatten all";
  return `${o.side} ${o.symbol}${o.kind === "close" ? " (close)" : ""}`;
}

/** who(order) → text of the second column (trader, source or subaccount). */
export function orderRow(o, who) {
  return el("tr", { dataset: { orderId: o.id, status: o.status } },
    timeCell(o.created_at),
    el("td", { className: "hide-sm" }, who(o)),
    el("td", {}, el("span", { className: `side ${o.side === "buy" ? "long" : "short"}` }, orderWhat(o))),
    numCell(o.kind === "flatten" || o.kind === "close" ? "all" : qty(o.quantity)),
    numCell(price(o.fill_price), "hide-sm"),
    el("td", {}, el("span", { className: `pill status ${ORDER_STATUS_CLASS[o.status] ?? ""}` }, o.status)),
    el("td", { className: "hide-sm error-text", title: o.error ?? "" }, o.error ?? ""),
  );
}
