// How numbers, times and PnL look on every page (the API sends USD already rounded to the cent).
const usdFormat = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const priceFormat = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const plainFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 });
const DASH = "—";

export function usd(value) {
  if (value === null || value === undefined) return DASH;
  return usdFormat.format(value);
}

/** USD with an explicit + on gains, for PnL. */
export function pnl(value) {
  if (value === null || value === undefined) return DASH;
  return (value > 0 ? "+" : "") + usdFormat.format(value);
}

export function pnlClass(value) {
  if (value === null || value === undefined || value === 0) return "";
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

/** "2026-11-02 14:30:05" in UTC, the zone of the API's dates and the calendar. */
export function utcTime(iso) {
  if (!iso) return DASH;
  return iso.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "");
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
