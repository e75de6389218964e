// The three leaderboards (gainers, gappers, volume) sharing one column set and one filter.

import { sparkline } from "./bars.js";
import * as fmt from "./format.js";
import { KeyedTable } from "./table.js";

const num = (value) => (fmt.isNumber(value) ? value : undefined);

// Field names follow mdp_analyzers.board.Row; the fallbacks keep older or partial rows usable.
export const field = {
  price: (r) => num(r.price ?? r.close),
  change: (r) => num(r.change),
  pct: (r) => num(r.pct_change ?? r.change_pct),
  pctOpen: (r) => num(r.pct_change_since_open),
  volume: (r) => num(r.accumulated_volume ?? r.volume),
  // Time-of-day RVol (volume so far over the usual volume by this time); null without history.
  rvol: (r) => num(r.rvol_tod),
  float: (r) => num(r.free_float),
  news: (r) => Boolean(r.news ?? r.has_news),
  halted: (r) => Boolean(r.halted),
};

// Every row field a board reads: the accessors above as its columns, row classes, sort keys
// and the page's filter use them, the row key, and ``end_ms`` (the freshness of the board, for
// stale dimming). The boards subscribe with exactly these (``fields``: the WDS sends nothing
// else of each row), so a new column reading a field missing here would show nothing:
// tests/browser/test_charts_and_deltas.py checks that every row field the columns read is here.
export const BOARD_FIELDS = [
  "symbol",
  "price",
  "close",
  "pct_change",
  "change_pct",
  "pct_change_since_open",
  "accumulated_volume",
  "volume",
  "rvol_tod",
  "free_float",
  "news",
  "has_news",
  "halted",
  "end_ms",
];

function rvolClass(value) {
  if (!fmt.isNumber(value)) return "";
  if (value >= 5) return "rvol-extreme";
  if (value >= 3) return "rvol-high";
  if (value >= 2) return "rvol-medium";
  return "";
}

// The board's columns; the ranked one (``rank``: the board's metric) follows the price and is
// never hidden on small screens, so the figure the board is ordered by is always in view.
export function columns(rank) {
  const change = [
    {
      key: "pct",
      label: "Chg %",
      title: "Change since the previous close",
      numeric: true,
      value: field.pct,
      text: (r) => fmt.percent(field.pct(r)),
      cls: (r) => fmt.signClass(field.pct(r)),
      opt: rank !== "pct",
    },
    {
      key: "pctOpen",
      label: "Open %",
      title: "Change since the regular-session open (09:30 ET)",
      numeric: true,
      value: field.pctOpen,
      text: (r) => fmt.percent(field.pctOpen(r)),
      cls: (r) => fmt.signClass(field.pctOpen(r)),
      opt: rank !== "pctOpen",
    },
  ];
  if (rank === "pctOpen") change.reverse();
  return [
    {
      key: "symbol",
      label: "Symbol",
      value: (r) => r.symbol,
      text: (r) => r.symbol,
      // The halted badge and the news dot are drawn by CSS from these classes.
      cls: (r) => ["sym", field.halted(r) ? "halted-mark" : "", field.news(r) ? "has-news" : ""].filter(Boolean).join(" "),
      flash: false,
    },
    { key: "price", label: "Price", numeric: true, value: field.price, text: (r) => fmt.price(field.price(r)) },
    {
      // Drawn by the board from the symbol's minute bars (bars.js); the text stays empty.
      key: "spark",
      label: "Today",
      title: "Closes of today's last two hours of one-minute bars (the top 20 rows)",
      value: field.pct,
      text: () => "",
      flash: false,
      opt: true,
    },
    ...change,
    {
      key: "volume",
      label: "Volume",
      title: "Shares traded today since 04:00 ET",
      numeric: true,
      value: field.volume,
      text: (r) => fmt.compact(field.volume(r)),
    },
    {
      key: "rvol",
      label: "RVol",
      title: "Relative volume by time of day: today's volume over the average volume traded by the same time over the last 20 days",
      numeric: true,
      value: field.rvol,
      text: (r) => fmt.ratio(field.rvol(r)),
      cls: (r) => rvolClass(field.rvol(r)),
    },
    {
      key: "float",
      label: "Float",
      title: "Free float (shares available to trade)",
      numeric: true,
      value: field.float,
      text: (r) => fmt.compact(field.float(r)),
      opt: true,
    },
  ];
}

export function rowClass(row) {
  const pct = field.pct(row);
  const classes = [];
  if (field.halted(row)) classes.push("halted");
  if (fmt.isNumber(pct)) {
    if (pct >= 100) classes.push("band-100");
    else if (pct >= 50) classes.push("band-50");
    else if (pct >= 20) classes.push("band-20");
    else if (pct >= 10) classes.push("band-10");
  }
  return classes.join(" ");
}

export class BoardWidget {
  // rank: the column key of the board's metric (its default sort, marked on screen)
  // sparks: the page's SparkBook (bars.js), shared by the boards.
  constructor(section, { feed, rank, onSymbol, client, sparks }) {
    this.section = section;
    this.feed = feed;
    this.meta = section.querySelector(".meta");
    this.notice = section.querySelector(".notice");
    this.asOfMs = undefined; // the newest bar end on the board: how fresh its data is
    this.table = new KeyedTable(section.querySelector("table"), {
      columns: columns(rank),
      rank,
      keyOf: (r) => r.symbol,
      sort: { key: rank, dir: -1 },
      onRowClick: onSymbol,
      rowClass,
      storageKey: `mdp.sort.${feed}`,
    });
    this.sparks = sparks;
    this.sparkColumn = this.table.columns.findIndex((column) => column.key === "spark");
    if (sparks) sparks.onChange((symbol) => this.drawSpark(symbol));
    // Boards travel as deltas after their snapshot, with only the row fields the board reads;
    // the client hands over whole (projected) documents.
    client.subscribe(feed, (kind, data) => this.show(data), { deltas: true, fields: BOARD_FIELDS });
  }

  drawSpark(symbol) {
    const entry = this.table.rows.get(symbol);
    if (!entry || !this.sparks) return;
    entry.cells[this.sparkColumn].replaceChildren(sparkline(this.sparks.bars(symbol)));
  }

  setFilter(filter) {
    this.table.setFilter(filter);
  }

  show(document) {
    if (!document || typeof document !== "object") return;
    const rows = Array.isArray(document) ? document : document.rows;
    const list = Array.isArray(rows) ? rows : [];
    this.table.setData(list);
    this.section.dataset.filled = String(this.table.rows.size > 0);
    if (this.sparks) {
      this.sparks.setSymbols(this.feed, list.map((row) => row && row.symbol).filter(Boolean));
      for (const [symbol, entry] of this.table.rows) {
        if (!entry.cells[this.sparkColumn].firstChild) this.drawSpark(symbol);
      }
    }
    const ends = list.map((row) => (row ? row.end_ms : undefined)).filter(fmt.isNumber);
    this.asOfMs = ends.length ? Math.max(...ends) : document.as_of_ms;
    const parts = [];
    if (document.session) parts.push(String(document.session).replace(/_/g, " "));
    if (fmt.isNumber(document.as_of_ms)) parts.push(fmt.clockEt(document.as_of_ms));
    this.fresh = parts.join(" \u00b7 ");
    this.renderMeta();
    if (this.notice) {
      this.notice.textContent = document.status === "pre_open" ? "Opens at 09:30 ET" : "";
    }
  }

  symbols() {
    return this.table.rows.keys();
  }

  // Dim the rows and say how old they are while the data cannot be current.
  markStale(wanted) {
    const stale = wanted && fmt.isNumber(this.asOfMs); // nothing shown yet: nothing to dim
    if (stale === this.section.classList.contains("stale")) return;
    this.section.classList.toggle("stale", stale);
    this.renderMeta();
  }

  renderMeta() {
    const stale = this.section.classList.contains("stale");
    this.meta.textContent =
      stale && fmt.isNumber(this.asOfMs) ? `stale \u00b7 as of ${fmt.clockEt(this.asOfMs)}` : this.fresh || "";
  }
}
