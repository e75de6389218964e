// Today's one-minute bars of a symbol (feed bars:SYMBOL): the quote panel's intraday chart and
// the boards' sparklines.
//
// The feed is a series (docs/reference/wds-protocol.md, "Feeds"): the snapshot is every stored
// minute, newest first; an update is one new or replaced minute. Elements are merged here by
// the server's rule (mdp_cache.series): only the newest trading day (d), one bar per minute (t),
// the greater version (n) wins, so a late or repeated update never takes a bar back.
// The chart is TradingView's Lightweight Charts, vendored as a built file beside this one
// (lightweight-charts-5.2.1.js, Apache-2.0, licence in lightweight-charts-5.2.1.LICENSE),
// credited by a link under the chart.

import { CandlestickSeries, ColorType, HistogramSeries, createChart } from "./lightweight-charts-5.2.1.js";
import * as fmt from "./format.js";

export const CHART_MINUTES = 960; // 04:00-20:00 ET: the series' cap
export const SPARK_MINUTES = 120;
const SPARK_ROWS = 20; // rows per board that get a sparkline (the top of the board)
const SPARK_WIDTH = 40;
const SPARK_HEIGHT = 14;
const SVG_NS = "http://www.w3.org/2000/svg";

export class MinuteSeries {
  constructor(cap = CHART_MINUTES) {
    this.cap = cap;
    this.bars = new Map(); // t -> bar
    this.day = null;
  }

  // Replace everything with a snapshot (an array, newest first), or merge one update.
  take(kind, data) {
    if (kind === "snapshot") {
      this.bars.clear();
      this.day = null;
      for (const bar of Array.isArray(data) ? data : []) this.merge(bar);
      return true;
    }
    return this.merge(data);
  }

  merge(bar) {
    if (!bar || !fmt.isNumber(bar.t) || !fmt.isNumber(bar.d) || !fmt.isNumber(bar.n)) return false;
    if (this.day !== null && bar.d < this.day) return false;
    if (this.day === null || bar.d > this.day) {
      this.bars.clear();
      this.day = bar.d;
    }
    const old = this.bars.get(bar.t);
    if (old && old.n >= bar.n) return false;
    this.bars.set(bar.t, bar);
    if (this.bars.size > this.cap) this.bars.delete(Math.min(...this.bars.keys()));
    return true;
  }

  // Oldest first.
  sorted() {
    return [...this.bars.values()].sort((a, b) => a.t - b.t);
  }
}

// Lightweight Charts draws in UTC; shifting each bar by New York's offset at that instant makes
// the time axis read ET like every other time on the page.
function etSeconds(ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: "America/New_York",
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute")) / 1000;
}

export class IntradayChart {
  constructor(container) {
    this.container = container;
    this.series = new MinuteSeries();
    this.chart = null;
    this.offsets = new Map(); // minute -> ET-shifted seconds (cached: Intl is slow)
  }

  ensureChart() {
    if (this.chart) return;
    const style = getComputedStyle(this.container);
    this.chart = createChart(this.container, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: "transparent" },
        textColor: style.color || "#9aa4b2",
        fontSize: 11,
        // The library's logo injects a <style> element, which the page's CSP (style-src 'self')
        // refuses; the attribution is the link under the chart instead (index.html).
        attributionLogo: false,
      },
      grid: { vertLines: { visible: false }, horzLines: { color: "rgba(128,128,128,0.15)" } },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.28 } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: "#1fa971",
      downColor: "#e0524f",
      borderVisible: false,
      wickUpColor: "#1fa971",
      wickDownColor: "#e0524f",
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: "volume",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });
  }

  time(t) {
    let shifted = this.offsets.get(t);
    if (shifted === undefined) {
      shifted = etSeconds(t);
      this.offsets.set(t, shifted);
    }
    return shifted;
  }

  point(bar) {
    const up = bar.c >= bar.o;
    return [
      { time: this.time(bar.t), open: bar.o, high: bar.h, low: bar.l, close: bar.c },
      { time: this.time(bar.t), value: bar.v, color: up ? "rgba(31,169,113,0.45)" : "rgba(224,82,79,0.45)" },
    ];
  }

  // Clear for another symbol.
  reset() {
    this.series = new MinuteSeries();
    this.container.dataset.bars = "0";
    if (this.chart) {
      this.candles.setData([]);
      this.volume.setData([]);
    }
  }

  take(kind, data) {
    const newest = this.series.sorted().at(-1);
    if (!this.series.take(kind, data)) return;
    const bars = this.series.sorted();
    this.container.dataset.bars = String(bars.length);
    this.container.dataset.lastClose = bars.length ? String(bars.at(-1).c) : "";
    if (!bars.length) return;
    this.ensureChart();
    const last = bars.at(-1);
    // An update of the newest minute (or a new one) is one point; anything else redraws.
    if (kind !== "snapshot" && newest && data.t === last.t && last.t >= newest.t) {
      const [candle, volume] = this.point(last);
      this.candles.update(candle);
      this.volume.update(volume);
      return;
    }
    const points = bars.map((bar) => this.point(bar));
    this.candles.setData(points.map((p) => p[0]));
    this.volume.setData(points.map((p) => p[1]));
    if (kind === "snapshot") this.chart.timeScale().fitContent();
  }
}

// A tiny inline SVG of the closes, green when the last close is at or above the first.
export function sparkline(bars) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`);
  svg.setAttribute("width", String(SPARK_WIDTH));
  svg.setAttribute("height", String(SPARK_HEIGHT));
  svg.classList.add("spark");
  const closes = bars.map((bar) => bar.c).filter(fmt.isNumber);
  if (closes.length < 2) return svg;
  const high = Math.max(...closes);
  const low = Math.min(...closes);
  const span = high - low || 1;
  const step = SPARK_WIDTH / (closes.length - 1);
  const points = closes.map((c, i) => `${(i * step).toFixed(1)},${(SPARK_HEIGHT - 1 - ((c - low) / span) * (SPARK_HEIGHT - 2)).toFixed(1)}`);
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", `M${points.join("L")}`);
  svg.classList.add(closes.at(-1) >= closes[0] ? "up" : "down");
  svg.appendChild(path);
  svg.dataset.points = String(closes.length);
  return svg;
}

// The sparklines of every board, sharing one subscription per symbol: each board says which
// symbols it shows at the top (setSymbols), and a symbol no board shows any more is dropped.
export class SparkBook {
  constructor(client) {
    this.client = client;
    this.wanted = new Map(); // owner -> Set(symbol)
    this.entries = new Map(); // symbol -> {series, handler}
    this.listeners = new Set();
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  setSymbols(owner, symbols) {
    this.wanted.set(owner, new Set([...symbols].slice(0, SPARK_ROWS)));
    const all = new Set();
    for (const set of this.wanted.values()) for (const symbol of set) all.add(symbol);
    for (const [symbol, entry] of this.entries) {
      if (!all.has(symbol)) {
        this.client.unsubscribe(`bars:${symbol}`, entry.handler);
        this.entries.delete(symbol);
      }
    }
    for (const symbol of all) {
      if (this.entries.has(symbol)) continue;
      const entry = { series: new MinuteSeries(SPARK_MINUTES), handler: null };
      entry.handler = (kind, data) => {
        if (entry.series.take(kind, data)) for (const listener of this.listeners) listener(symbol);
      };
      this.entries.set(symbol, entry);
      this.client.subscribe(`bars:${symbol}`, entry.handler, { limit: SPARK_MINUTES });
    }
  }

  bars(symbol) {
    const entry = this.entries.get(symbol);
    return entry ? entry.series.sorted() : [];
  }
}
