// How numbers, times and PnL look on every page (the API sends USD already rounded to the cent).
const usdFormat = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const priceFormat = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const plainFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 });
const DASH = "—";

/** A value the cent rounds to zero: shown as "$0.00", with no sign and no colour. */
function roundsToZero(value) {
  return Math.abs(value) < 0.005;
}

export function usd(value) {
  if (value === null || value === undefined) return DASH;
  return usdFormat.format(roundsToZero(value) ? 0 : value);
}

/** USD with an explicit + on gains, for PnL. */
export function pnl(value) {
  if (value === null || value === undefined) return DASH;
  if (roundsToZero(value)) return usdFormat.format(0);
  return (value > 0 ? "+" : "") + usdFormat.format(value);
}

export function pnlClass(value) {
  if (value === null || value === undefined || roundsToZero(value)) return "";
  return value > 0 ? "pos" : "neg";
}

/** Prices with at least two decimals, so a column of them lines up. */
export function price(value) {
  return value === null || value === undefined ? DASH : priceFormat.format(value);
}

/** Contracts: as many decimals as they have. */
export function qty(value) {
  return value === null || value === undefined ? DASH : plainFormat.format(value);
}

export function percent(value) {
  return value === null || value === undefined ? DASH : `${value.toFixed(2)}%`;
}

export function ratio(value) {
  return value === null || value === undefined ? DASH : value.toFixed(2);
}

// ---- times: the API speaks UTC; the pages show the user's zone (Settings), named on every time ----

const DEFAULT_ZONE = "America/Chicago";

function zoneFormat(zone) {
  return new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", timeZoneName: "short",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** The user's zone, from the page's <meta name="time-zone">; UTC if this browser does not know it. */
export const TIME_ZONE = (() => {
  const wanted = document.querySelector('meta[name="time-zone"]')?.content || DEFAULT_ZONE;
  try {
    zoneFormat(wanted);
    return wanted;
  } catch {
    return "UTC";
  }
})();
const zoned = zoneFormat(TIME_ZONE);

/** The wall-clock fields of an instant in the user's zone: year, month, day, hour, minute, second, zone. */
function wallClock(date) {
  const parts = {};
  for (const { type, value } of zoned.formatToParts(date)) parts[type] = value;
  return { ...parts, hour: parts.hour === "24" ? "00" : parts.hour };
}

function parsed(iso) {
  const date = iso instanceof Date ? iso : new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "2026-11-02 08:30:05 CST": an API time in the user's zone, with the zone's short name. */
export function zonedTime(iso) {
  const date = iso ? parsed(iso) : null;
  if (!date) return DASH;
  const p = wallClock(date);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** Kept for modules written before the zone setting: the same as zonedTime (no longer UTC). */
export const utcTime = zonedTime;

/** "2026-11-02": the user's calendar date of an instant (default: now). */
export function zonedDate(iso = new Date()) {
  const p = wallClock(parsed(iso) ?? new Date());
  return `${p.year}-${p.month}-${p.day}`;
}

/** Seconds the user's zone is ahead of UTC at that instant (-21600 for CST). */
export function zoneOffsetSeconds(iso) {
  const date = parsed(iso);
  if (!date) return 0;
  const p = wallClock(date);
  const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return Math.round((wall - Math.floor(date.getTime() / 1000) * 1000) / 1000);
}

/** "2026-11-02T08:30:05-06:00": the instant in the user's zone with its UTC offset (for CSV). */
export function offsetIso(iso) {
  const date = iso ? parsed(iso) : null;
  if (!date) return "";
  const p = wallClock(date);
  const offset = zoneOffsetSeconds(date) / 60;
  const sign = offset < 0 ? "-" : "+";
  const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
  const mm = String(Math.abs(offset) % 60).padStart(2, "0");
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${sign}${hh}:${mm}`;
}

export function duration(fromIso, toIso) {
  if (!fromIso || !toIso) return DASH;
  const s = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export const EXIT_REASONS = {
  tp: "Take profit", sl: "Stop loss", breakeven: "Break-even stop", trail: "Trailing stop",
  signal: "Signal", reverse: "Reversed", flatten: "Flattened", manual: "Manual",
};
