// List widgets (news, HOD/LOD alerts) and the top trades table.
//
// List feeds send a snapshot (newest first) and then one element per update: updates are
// prepended (or, for a list ordered by a time field such as the alerts' as_of_ms, inserted
// where their time puts them, as WDC stores them) and the list is capped, so the DOM never
// grows without bound.

import * as fmt from "./format.js";
import { KeyedTable } from "./table.js";

const MAX_ITEMS = 100;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function symbolButton(symbol, onSymbol) {
  const button = el("button", "ticker", symbol);
  button.type = "button";
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    onSymbol(symbol);
  });
  return button;
}

export class FeedList {
  // render(item) -> <li>; keyOf(item) -> dedup key (or undefined); orderBy: the numeric field
  // that orders the list newest first (undefined: arrival order)
  constructor(section, { render, keyOf, max = MAX_ITEMS, orderBy }) {
    this.section = section;
    this.list = section.querySelector("ul, ol");
    this.render = render;
    this.keyOf = keyOf || (() => undefined);
    this.max = max;
    this.orderBy = orderBy;
    this.keys = new Set();
  }

  bind(client, feed) {
    const handler = (kind, data) => (kind === "snapshot" ? this.replace(data) : this.prepend(data));
    client.subscribe(feed, handler);
    return () => client.unsubscribe(feed, handler);
  }

  replace(items) {
    this.list.textContent = "";
    this.keys.clear();
    const fragment = document.createDocumentFragment();
    for (const item of Array.isArray(items) ? items.slice(0, this.max) : []) {
      const node = this.node(item);
      if (node) fragment.appendChild(node);
    }
    this.list.appendChild(fragment);
    this.mark();
  }

  prepend(item) {
    const node = this.node(item);
    if (!node) return;
    node.classList.add("new");
    this.list.insertBefore(node, this.placeOf(node));
    while (this.list.children.length > this.max) {
      const last = this.list.lastElementChild;
      if (last.dataset.key) this.keys.delete(last.dataset.key);
      last.remove();
    }
    this.mark();
  }

  // The child the new node goes before: the first that is not newer (a late element lands
  // where its time puts it, not on top).
  placeOf(node) {
    const time = Number(node.dataset.time);
    if (this.orderBy === undefined || !Number.isFinite(time)) return this.list.firstChild;
    for (const child of this.list.children) {
      const other = Number(child.dataset.time);
      if (!Number.isFinite(other) || other <= time) return child;
    }
    return null;
  }

  node(item) {
    if (!item || typeof item !== "object") return null;
    const key = this.keyOf(item);
    if (key !== undefined) {
      if (this.keys.has(key)) return null;
      this.keys.add(key);
    }
    const node = this.render(item);
    if (key !== undefined) node.dataset.key = key;
    if (this.orderBy !== undefined && fmt.isNumber(item[this.orderBy])) {
      node.dataset.time = String(item[this.orderBy]);
    }
    return node;
  }

  mark() {
    this.section.dataset.filled = String(this.list.children.length > 0);
  }
}

// A list element's time: exchange time with its zone (machine-readable in datetime).
function timeElement(ms) {
  const node = el("time", "when", fmt.clockEt(ms));
  if (fmt.isNumber(ms)) node.dateTime = new Date(ms).toISOString();
  return node;
}

export function newsItem(onSymbol) {
  return (item) => {
    const li = el("li", "news-item");
    const time = fmt.toMs(item.published_ms ?? item.publish_date ?? item.publishDate);
    const head = el("div", "news-head");
    head.appendChild(timeElement(time));
    for (const symbol of (item.tickers || []).slice(0, 6)) head.appendChild(symbolButton(symbol, onSymbol));
    if (item.sentiment) head.appendChild(el("span", `sentiment ${item.sentiment}`, item.sentiment));
    li.appendChild(head);
    const title = el("a", "headline", item.title || "(no title)");
    if (typeof item.link === "string" && /^https?:\/\//.test(item.link)) {
      title.href = item.link;
      title.target = "_blank";
      title.rel = "noopener noreferrer";
    }
    li.appendChild(title);
    if (item.source) li.appendChild(el("span", "source", item.source));
    return li;
  };
}

export function alertItem(onSymbol) {
  return (item) => {
    const direction = item.direction || (item.kind === "lod" ? "low" : "high");
    const li = el("li", `alert ${direction === "low" ? "down" : "up"}`);
    const time = fmt.toMs(item.as_of_ms ?? item.timestamp_ms ?? item.ts_ms ?? item.timestamp);
    li.appendChild(timeElement(time));
    if (item.symbol) li.appendChild(symbolButton(item.symbol, onSymbol));
    li.appendChild(el("span", "badge", direction === "low" ? "LOD" : "HOD"));
    li.appendChild(el("span", "num", fmt.price(item.price)));
    const pct = item.pct_change ?? item.change_pct;
    if (fmt.isNumber(pct)) li.appendChild(el("span", `num ${fmt.signClass(pct)}`, fmt.percent(pct)));
    if (item.note) li.appendChild(el("span", "note", item.note));
    else if (item.session) li.appendChild(el("span", "note", String(item.session).replace(/_/g, " ")));
    return li;
  };
}

function tradeValue(trade) {
  if (fmt.isNumber(trade.value)) return trade.value;
  return fmt.isNumber(trade.price) && fmt.isNumber(trade.size) ? trade.price * trade.size : undefined;
}

// A trade's row key, as the server tells trades apart: symbol, exchange, id and time, or for
// a trade with an empty id its sequence number and time. Rows with one key show once, so a
// key shared by two trades would hide one of them.
function tradeKey(t, index) {
  const time = t.timestamp_ms ?? t.sip_timestamp ?? t.timestamp ?? "";
  const id = t.trade_id ? `i${t.trade_id}` : t.sequence != null ? `q${t.sequence}` : `#${index}`;
  return `${t.symbol}|${t.exchange ?? ""}|${id}|${time}`;
}

export class TradesWidget {
  constructor(section, { client, onSymbol, feed = "trades:top" }) {
    this.section = section;
    this.meta = section.querySelector(".meta");
    this.table = new KeyedTable(section.querySelector("table"), {
      columns: [
        { key: "symbol", label: "Symbol", value: (t) => t.symbol, text: (t) => t.symbol, cls: () => "sym", flash: false },
        { key: "price", label: "Price", numeric: true, value: (t) => t.price, text: (t) => fmt.price(t.price) },
        { key: "size", label: "Size", numeric: true, value: (t) => t.size, text: (t) => fmt.compact(t.size) },
        {
          key: "notional",
          label: "Value",
          numeric: true,
          value: tradeValue,
          text: (t) => (fmt.isNumber(tradeValue(t)) ? `$${fmt.compact(tradeValue(t))}` : "\u2013"),
        },
        {
          key: "time",
          label: "Time ET",
          title: "Trade time, New York",
          numeric: true,
          value: (t) => fmt.toMs(t.timestamp_ms ?? t.sip_timestamp ?? t.timestamp),
          text: (t) => fmt.clock(fmt.toMs(t.timestamp_ms ?? t.sip_timestamp ?? t.timestamp)),
          flash: false,
        },
      ],
      keyOf: (t) => t._key,
      sort: { key: "size", dir: -1 },
      onRowClick: (key) => onSymbol(key.split("|")[0]),
      storageKey: "mdp.sort.trades",
    });
    client.subscribe(feed, (kind, data) => this.show(data));
  }

  show(document) {
    if (!document || typeof document !== "object") return;
    const trades = Array.isArray(document) ? document : document.trades;
    const rows = (Array.isArray(trades) ? trades : [])
      .filter((t) => t && t.symbol)
      .map((t, index) => ({ ...t, _key: tradeKey(t, index) }));
    this.table.setData(rows);
    this.section.dataset.filled = String(this.table.rows.size > 0);
    if (fmt.isNumber(document.as_of_ms)) this.meta.textContent = fmt.clockEt(document.as_of_ms);
  }
}
