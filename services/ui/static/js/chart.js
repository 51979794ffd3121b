// The profit vs drawdown chart (TradingView lightweight-charts): cumulative realized PnL (solid
// blue), its drawdown from the running peak (dashed red), and the worst unrealized PnL of each
// trade (amber dots), all in USD; a tooltip follows the crosshair with the time and each value.
import {
  BaselineSeries, LineSeries, LineStyle, createChart,
} from "../vendor/lightweight-charts.standalone.production.mjs";
import { pnl, usd, zoneOffsetSeconds, zonedTime } from "./format.js";
import { el } from "./dom.js";

const THEME = {
  layout: { background: { type: "solid", color: "#1e222d" }, textColor: "#868993", fontSize: 11 },
  grid: { vertLines: { color: "#262b38" }, horzLines: { color: "#262b38" } },
  rightPriceScale: { borderColor: "#2a2e39" },
  timeScale: { borderColor: "#2a2e39", timeVisible: true, secondsVisible: false },
  crosshair: { mode: 0 },
  localization: { priceFormatter: usd },
};

/** Seconds since the epoch, strictly increasing: trades closed in the same second get +1 s.
 * Shifted by the user's zone offset, because the chart labels its axis as if times were UTC. */
function times(points) {
  let previous = -Infinity;
  return points.map((p) => {
    const t = Math.max(Math.floor(Date.parse(p.time) / 1000) + zoneOffsetSeconds(p.time), previous + 1);
    previous = t;
    return t;
  });
}

// The colours of the lines; app.css's legend swatches (.swatch-pnl, -drawdown, -worst) match them.
const PNL_BLUE = "#2962ff";
const DRAWDOWN_RED = "#ef5350";
const WORST_AMBER = "#f0b90b";
const TOOLTIP_GAP = 14; // px between the crosshair and the tooltip

export class ProfitChart {
  constructor(container) {
    this.container = container;
    this.chart = createChart(container, { ...THEME, autoSize: true });
    this.byTime = new Map(); // chart time → the API's point (its real time for the tooltip)
    const money = { type: "price", precision: 2, minMove: 0.01 };
    // One dot per trade: how deep it went against you before it closed.
    this.worst = this.chart.addSeries(LineSeries, {
      color: WORST_AMBER, lineVisible: false, pointMarkersVisible: true, pointMarkersRadius: 3,
      priceFormat: money, lastValueVisible: false, priceLineVisible: false,
      crosshairMarkerVisible: false,
    });
    // A baseline at 0 fills between zero and the (never positive) drawdown line, drawn dashed so
    // it never reads as the PnL curve when both are below zero.
    this.drawdown = this.chart.addSeries(BaselineSeries, {
      baseValue: { type: "price", price: 0 }, lineWidth: 2, lineStyle: LineStyle.Dashed, priceFormat: money,
      lastValueVisible: false, priceLineVisible: false,
      topLineColor: DRAWDOWN_RED, topFillColor1: "transparent", topFillColor2: "transparent",
      bottomLineColor: DRAWDOWN_RED, bottomFillColor1: "rgba(239, 83, 80, 0.04)", bottomFillColor2: "rgba(239, 83, 80, 0.22)",
    });
    // The PnL curve is one solid blue line whichever side of zero it is on.
    this.cumulative = this.chart.addSeries(BaselineSeries, {
      baseValue: { type: "price", price: 0 }, lineWidth: 2, priceFormat: money,
      topLineColor: PNL_BLUE, topFillColor1: "rgba(41, 98, 255, 0.28)", topFillColor2: "rgba(41, 98, 255, 0.04)",
      bottomLineColor: PNL_BLUE, bottomFillColor1: "rgba(41, 98, 255, 0.04)", bottomFillColor2: "rgba(41, 98, 255, 0.16)",
    });
    this.tooltip = el("div", { className: "chart-tooltip", role: "status", hidden: true });
    container.append(this.tooltip);
    this.chart.subscribeCrosshairMove((param) => this.follow(param));
  }

  /** The tooltip beside the crosshair: the trade's time, then each series' value there. */
  follow(param) {
    const { point, time } = param;
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    if (!point || time === undefined || point.x < 0 || point.y < 0 || point.x > width || point.y > height) {
      this.tooltip.hidden = true;
      return;
    }
    const trade = this.byTime.get(time);
    const value = (series) => param.seriesData.get(series)?.value;
    const rows = [
      ["Cumulative PnL", value(this.cumulative), "pnl"],
      ["Drawdown", value(this.drawdown), "drawdown"],
      ["Worst unrealized", value(this.worst), "worst"],
    ].filter(([, v]) => v !== undefined);
    this.tooltip.replaceChildren(
      el("div", { className: "chart-tooltip-time" }, trade ? zonedTime(trade.time) : "Start"),
      ...rows.map(([name, v, key]) => el("div", { className: "chart-tooltip-row", dataset: { series: key } },
        el("span", {}, el("i", { className: `swatch-${key}` }), name),
        el("b", { className: "num" }, pnl(v)))),
    );
    this.tooltip.hidden = false;
    // Beside the crosshair, on the side where it fits.
    const box = this.tooltip.getBoundingClientRect();
    const left = point.x + TOOLTIP_GAP + box.width > width ? point.x - TOOLTIP_GAP - box.width : point.x + TOOLTIP_GAP;
    const top = Math.min(Math.max(0, point.y + TOOLTIP_GAP), Math.max(0, height - box.height));
    this.tooltip.style.left = `${Math.max(0, left)}px`;
    this.tooltip.style.top = `${top}px`;
  }

  /** points: GET /api/dashboard/chart-data's `points`, oldest first. */
  show(points) {
    const t = times(points);
    this.byTime = new Map(points.map((p, i) => [t[i], p]));
    const origin = { time: t[0] - 60, value: 0 }; // the curve starts from zero, a minute before
    this.cumulative.setData([origin, ...points.map((p, i) => ({ time: t[i], value: p.cumulative_pnl }))]);
    this.drawdown.setData(points.map((p, i) => ({ time: t[i], value: p.drawdown })));
    this.worst.setData(points.map((p, i) => ({ time: t[i], value: p.worst_unrealized_pnl })));
    this.chart.timeScale().fitContent();
  }
}
