// The profit vs drawdown chart (TradingView lightweight-charts): cumulative realized PnL, its
// drawdown from the running peak, and the worst unrealized PnL of each trade, all in USD.
import {
  BaselineSeries, LineSeries, createChart,
} from "../vendor/lightweight-charts.standalone.production.mjs";
import { usd } from "./format.js";

const THEME = {
  layout: { background: { type: "solid", color: "#1e222d" }, textColor: "#868993", fontSize: 11 },
  grid: { vertLines: { color: "#262b38" }, horzLines: { color: "#262b38" } },
  rightPriceScale: { borderColor: "#2a2e39" },
  timeScale: { borderColor: "#2a2e39", timeVisible: true, secondsVisible: false },
  crosshair: { mode: 0 },
  localization: { priceFormatter: usd },
};

/** Seconds since the epoch, strictly increasing: trades closed in the same second get +1 s. */
function times(points) {
  let previous = -Infinity;
  return points.map((p) => {
    const t = Math.max(Math.floor(Date.parse(p.time) / 1000), previous + 1);
    previous = t;
    return t;
  });
}

export class ProfitChart {
  constructor(container) {
    this.chart = createChart(container, { ...THEME, autoSize: true });
    const money = { type: "price", precision: 2, minMove: 0.01 };
    // One dot per trade: how deep it went against you before it closed.
    this.worst = this.chart.addSeries(LineSeries, {
      color: "#f0b90b", lineVisible: false, pointMarkersVisible: true, pointMarkersRadius: 3,
      priceFormat: money, lastValueVisible: false, priceLineVisible: false,
      crosshairMarkerVisible: false,
    });
    // A baseline at 0 fills between zero and the (never positive) drawdown line.
    this.drawdown = this.chart.addSeries(BaselineSeries, {
      baseValue: { type: "price", price: 0 }, lineWidth: 1, priceFormat: money,
      lastValueVisible: false, priceLineVisible: false,
      topLineColor: "#ef5350", topFillColor1: "transparent", topFillColor2: "transparent",
      bottomLineColor: "#ef5350", bottomFillColor1: "rgba(239, 83, 80, 0.08)", bottomFillColor2: "rgba(239, 83, 80, 0.35)",
    });
    this.cumulative = this.chart.addSeries(BaselineSeries, {
      baseValue: { type: "price", price: 0 }, lineWidth: 2, priceFormat: money,
      topLineColor: "#2962ff", topFillColor1: "rgba(41, 98, 255, 0.28)", topFillColor2: "rgba(41, 98, 255, 0.04)",
      bottomLineColor: "#ef5350", bottomFillColor1: "rgba(239, 83, 80, 0.04)", bottomFillColor2: "rgba(239, 83, 80, 0.28)",
    });
  }

  /** points: GET /api/dashboard/chart-data's `points`, oldest first. */
  show(points) {
    const t = times(points);
    const origin = { time: t[0] - 60, value: 0 }; // the curve starts from zero, a minute before
    this.cumulative.setData([origin, ...points.map((p, i) => ({ time: t[i], value: p.cumulative_pnl }))]);
    this.drawdown.setData(points.map((p, i) => ({ time: t[i], value: p.drawdown })));
    this.worst.setData(points.map((p, i) => ({ time: t[i], value: p.worst_unrealized_pnl })));
    this.chart.timeScale().fitContent();
  }
}
