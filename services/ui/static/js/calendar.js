// The month calendar of daily realized PnL (GET /api/dashboard/calendar), green and red by day.
// Its days are the user's (format.js TIME_ZONE): the API cuts them in the same zone.
import { el } from "./dom.js";
import { pnl, pnlClass, zonedDate } from "./format.js";

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTH_NAMES = new Intl.DateTimeFormat("en-US", { month: "long", year: "numeric", timeZone: "UTC" });

/** "2026-11" moved by `delta` months. */
export function shiftMonth(month, delta) {
  const [year, m] = month.split("-").map(Number);
  const d = new Date(Date.UTC(year, m - 1 + delta, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** This month in the user's zone ("2026-11"). */
export function currentMonth() {
  return zonedDate().slice(0, 7);
}

/** Fill `grid` with one month; `data` is the calendar answer (month, days, pnl, trades). */
export function renderCalendar(grid, data) {
  const [year, month] = data.month.split("-").map(Number);
  const first = new Date(Date.UTC(year, month - 1, 1));
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const lead = (first.getUTCDay() + 6) % 7; // Monday first
  const byDate = new Map(data.days.map((d) => [d.date, d]));
  const today = zonedDate();
  const cells = WEEKDAYS.map((w) => el("div", { className: "dow" }, w));
  for (let i = 0; i < lead; i += 1) cells.push(el("div", { className: "day blank" }));
  for (let day = 1; day <= daysInMonth; day += 1) {
    const date = `${data.month}-${String(day).padStart(2, "0")}`;
    const found = byDate.get(date);
    const kind = found ? (found.pnl > 0 ? "win" : found.pnl < 0 ? "loss" : "flat") : "";
    cells.push(el("div", {
      className: `day ${kind} ${date === today ? "today" : ""}`.trim(),
      dataset: { date, pnl: found ? found.pnl : "" },
      title: found ? `${date}: ${pnl(found.pnl)} in ${found.trades} trade${found.trades === 1 ? "" : "s"}` : date,
    },
    el("span", { className: "d" }, String(day)),
    found ? el("span", { className: `p ${pnlClass(found.pnl)}` }, pnl(found.pnl)) : null,
    found ? el("span", { className: "t" }, `${found.trades} trade${found.trades === 1 ? "" : "s"}`) : null));
  }
  grid.replaceChildren(...cells);
  return MONTH_NAMES.format(first);
}
