// Building table rows and small pieces of DOM without innerHTML (API text is never parsed as HTML).
import { zonedTime } from "./format.js";

/** el("td", {className: "num"}, "1.25") → <td class="num">1.25</td>; children may be nodes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** A numeric cell: right-aligned tabular figures, optionally green/red. */
export function numCell(text, className = "") {
  return el("td", { className: `num ${className}`.trim() }, text);
}

/** A time cell in the user's zone (UTC on hover); phones drop the year ("11-24 10:38:25 CST"). */
export function timeCell(iso, className = "") {
  const text = zonedTime(iso);
  const year = /^\d{4}-/.test(text) ? text.slice(0, 5) : "";
  return el("td", { className: `time ${className}`.trim(), title: iso ?? "" },
    year ? el("span", { className: "year" }, year) : null, text.slice(year.length));
}

/** Replace a tbody's rows; with none, one full-width row that says what to do next. */
export function fillBody(tbody, rows, emptyContent) {
  if (rows.length) {
    tbody.replaceChildren(...rows);
    return;
  }
  const columns = tbody.closest("table")?.querySelectorAll("thead th").length || 1;
  const message = el("div", { className: "empty-message" }, emptyContent);
  tbody.replaceChildren(el("tr", { className: "empty-row" }, el("td", { colSpan: columns }, message)));
}

export function flash(row) {
  row.classList.remove("flash");
  void row.offsetWidth; // restart the animation
  row.classList.add("flash");
}
