// The quote panel: follows the symbol last clicked (or searched) anywhere on the page, and
// remembers it across reloads.
//
// Following a symbol swaps four subscriptions (quote, per-ticker news, daily range, today's
// minute bars for the intraday chart); the
// previous symbol's are dropped first so the socket never accumulates stale feeds. The day's
// high and low and the session ranges come from the quote record's exact session figures
// (folded by the processor from every bar), never from the latest bar's own high and low; the
// scanner's range document is only the fallback for records that carry no figures.

import { CHART_MINUTES, IntradayChart } from "./bars.js";
import * as fmt from "./format.js";
import { field } from "./boards.js";
import { FeedList, newsItem } from "./lists.js";

const FIGURES = [
  ["Price", (q) => fmt.price(field.price(q))],
  ["Change", (q) => fmt.signed(field.change(q))],
  ["Chg %", (q) => fmt.percent(field.pct(q)), (q) => fmt.signClass(field.pct(q))],
  ["Open %", (q) => fmt.percent(field.pctOpen(q)), (q) => fmt.signClass(field.pctOpen(q))],
  ["Volume", (q) => fmt.compact(field.volume(q))],
  ["Rel. vol", (q) => fmt.ratio(field.rvol(q))],
  ["Avg vol", (q) => fmt.compact(q.avg_volume)],
  ["Float", (q) => fmt.compact(field.float(q))],
  ["VWAP", (q) => fmt.price(q.day_vwap ?? q.aggregate_vwap ?? q.vwap)],
  ["Open", (q) => fmt.price(q.official_open ?? q.official_open_price ?? q.session_open)],
  ["Day high", (q) => fmt.price(q.day_high)],
  ["Day low", (q) => fmt.price(q.day_low)],
  ["Prev close", (q) => fmt.price(q.prev_close ?? q.prev_day_close)],
  ["Prev vol", (q) => fmt.compact(q.prev_volume ?? q.prev_day_volume)],
];

const SESSION_LABELS = { pre_market: "Pre-market", regular: "Regular", after_hours: "After hours", day: "Day" };
const SESSIONS = ["pre_market", "regular", "after_hours"];
export const FOLLOW_KEY = "mdp.quote.symbol";

export class QuotePanel {
  constructor(section, { client, onSymbol }) {
    this.section = section;
    this.client = client;
    this.title = section.querySelector(".quote-symbol");
    this.status = section.querySelector(".quote-status");
    this.grid = section.querySelector(".figures");
    this.range = section.querySelector(".range");
    this.chart = new IntradayChart(section.querySelector(".chart"));
    this.news = new FeedList(section.querySelector(".quote-news"), {
      render: newsItem(onSymbol),
      keyOf: (item) => item.link,
      max: 30,
    });
    this.symbol = null;
    this.cells = new Map();
    this.unbind = [];
    for (const [label] of FIGURES) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = "\u2013";
      this.grid.append(dt, dd);
      this.cells.set(label, dd);
    }
    this.onQuote = (kind, data) => this.showQuote(data);
    this.onRange = (kind, data) => this.showRange(data);
    this.onBars = (kind, data) => this.chart.take(kind, data);
  }

  follow(symbol) {
    if (!symbol || symbol === this.symbol) return;
    if (this.symbol) {
      this.client.unsubscribe(`quote:${this.symbol}`, this.onQuote);
      this.client.unsubscribe(`range:${this.symbol}`, this.onRange);
      this.client.unsubscribe(`bars:${this.symbol}`, this.onBars);
    }
    for (const undo of this.unbind) undo();
    this.symbol = symbol;
    this.quote = null;
    this.rangeDoc = null;
    try {
      localStorage.setItem(FOLLOW_KEY, symbol);
    } catch (error) {
      /* private mode: following still works, it is just not remembered */
    }
    this.section.dataset.symbol = symbol;
    this.section.dataset.filled = "false";
    this.title.textContent = symbol;
    this.status.textContent = "";
    for (const dd of this.cells.values()) dd.textContent = "\u2013";
    this.range.textContent = "";
    this.news.replace([]);
    this.client.subscribe(`quote:${symbol}`, this.onQuote);
    this.client.subscribe(`range:${symbol}`, this.onRange);
    this.chart.reset();
    this.client.subscribe(`bars:${symbol}`, this.onBars, { limit: CHART_MINUTES });
    this.unbind = [this.news.bind(this.client, `news:ticker:${symbol}`)];
  }

  showQuote(quote) {
    if (!quote || typeof quote !== "object" || (quote.symbol && quote.symbol !== this.symbol)) return;
    for (const [label, text, cls] of FIGURES) {
      const dd = this.cells.get(label);
      const value = text(quote);
      if (dd.textContent !== value) {
        const first = dd.textContent === "\u2013";
        dd.textContent = value;
        if (!first) dd.dataset.flash = dd.dataset.flash === "up-a" ? "up-b" : "up-a";
      }
      dd.className = cls ? cls(quote) : "";
    }
    this.quote = quote;
    this.renderStatus();
    this.section.classList.toggle("halted", field.halted(quote));
    this.section.dataset.filled = "true";
    this.renderRanges();
  }

  // The bar end of the followed symbol's record: how fresh the panel is.
  asOfMs() {
    return this.quote && fmt.isNumber(this.quote.end_ms) ? this.quote.end_ms : undefined;
  }

  markStale(wanted) {
    const stale = wanted && fmt.isNumber(this.asOfMs());
    if (stale === this.section.classList.contains("stale")) return;
    this.section.classList.toggle("stale", stale);
    this.renderStatus();
  }

  renderStatus() {
    const parts = [];
    if (this.quote && field.halted(this.quote)) parts.push("HALTED");
    if (this.section.classList.contains("stale") && fmt.isNumber(this.asOfMs())) {
      parts.push(`as of ${fmt.clockEt(this.asOfMs())}`);
    }
    this.status.textContent = parts.join(" \u00b7 ");
  }

  showRange(doc) {
    if (!doc || typeof doc !== "object") return;
    this.rangeDoc = doc;
    this.renderRanges();
  }

  // Session ranges from the quote record's figures, else from the scanner's range document.
  renderRanges() {
    const quote = this.quote;
    const entries = [];
    if (quote && SESSIONS.some((name) => quote[name] && typeof quote[name] === "object")) {
      for (const name of SESSIONS) {
        const figures = quote[name];
        if (figures && typeof figures === "object") entries.push([name, figures.high, figures.low]);
      }
      if (fmt.isNumber(quote.day_high) || fmt.isNumber(quote.day_low)) {
        entries.push(["day", quote.day_high, quote.day_low]);
      }
    } else if (this.rangeDoc) {
      entries.push(...rangeEntries(this.rangeDoc));
    }
    this.range.textContent = "";
    for (const [name, high, low] of entries) {
      const row = document.createElement("div");
      row.className = "range-row";
      row.dataset.session = name;
      const label = document.createElement("span");
      label.textContent = SESSION_LABELS[name] || name;
      const values = document.createElement("span");
      values.className = "num";
      values.textContent = `H ${fmt.price(high)} \u00b7 L ${fmt.price(low)}`;
      row.append(label, values);
      this.range.appendChild(row);
    }
  }
}

// The session ranges of a daily range document (the scanner's, by session name).
function rangeEntries(doc) {
  const sessions = doc.sessions && typeof doc.sessions === "object" ? doc.sessions : null;
  const entries = [];
  if (sessions) {
    for (const [name, value] of Object.entries(sessions)) {
      if (value && typeof value === "object") entries.push([name, value.high, value.low]);
    }
  } else {
    // Field names of mdp_analyzers.daily_range.RangeDoc (older documents said "regular_session").
    for (const name of Object.keys(SESSION_LABELS)) {
      const high = doc[`${name}_high`] ?? (name === "regular" ? doc.regular_session_high : undefined);
      const low = doc[`${name}_low`] ?? (name === "regular" ? doc.regular_session_low : undefined);
      if (fmt.isNumber(high) || fmt.isNumber(low)) entries.push([name, high, low]);
    }
  }
  return entries;
}
