// The watchlist widget: several named lists of symbols, saved on the server (/api/watchlists),
// each row live from the WDS (quote:<SYMBOL>). Switching lists swaps the quote subscriptions,
// so the socket only carries the symbols on screen. It also keeps the user's dashboard layout
// on the server (/api/layout: the chosen list, the filters, the followed symbol), so any
// browser opens the same dashboard; saves are merged and debounced.

import * as fmt from "./format.js";
import { field } from "./boards.js";

const SYMBOL = /^[A-Z][A-Z0-9.\-]{0,14}$/;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

export class WatchlistWidget {
  constructor(grid, { client, onSymbol, csrf }) {
    this.client = client;
    this.onSymbol = onSymbol;
    this.csrf = csrf;
    this.lists = [];
    this.current = null;
    this.quotes = new Map(); // symbol -> latest quote
    this.handlers = new Map(); // symbol -> subscription handler
    this.layout = {};
    this.loaded = false;
    this.pending = {};
    this.saveTimer = null;
    this.section = el("section", { class: "widget watchlist", id: "w-watchlist", "data-filled": "false" });
    this.section.innerHTML = `
      <h2>Watchlist <span class="meta"></span><span class="notice" role="status"></span></h2>
      <div class="watchlist-bar">
        <select name="list" aria-label="Watchlist"></select>
        <button type="button" data-act="delete-list" title="Delete this list">Delete list</button>
        <form class="watchlist-new" autocomplete="off">
          <input name="name" maxlength="60" placeholder="New list" aria-label="New list name">
          <button type="submit">Create</button>
        </form>
      </div>
      <form class="watchlist-add" autocomplete="off">
        <input name="symbol" maxlength="15" placeholder="Add symbol" aria-label="Symbol to add">
        <button type="submit">Add</button>
      </form>
      <div class="scroll"><table><thead><tr><th>Symbol</th><th>Price</th><th>Chg %</th><th>Volume</th><th></th></tr></thead><tbody></tbody></table></div>`;
    grid.append(this.section);
    this.select = this.section.querySelector("select");
    this.tbody = this.section.querySelector("tbody");
    this.notice = this.section.querySelector(".notice");
    this.meta = this.section.querySelector(".meta");
    this.select.addEventListener("change", () => this.show(this.select.value, true));
    this.section.querySelector("[data-act=delete-list]").addEventListener("click", () => this.deleteList());
    this.section.querySelector(".watchlist-new").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = event.target.elements.name;
      this.createList(input.value.trim()).then((ok) => { if (ok) input.value = ""; });
    });
    this.section.querySelector(".watchlist-add").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = event.target.elements.symbol;
      this.addSymbol(input.value.trim().toUpperCase()).then((ok) => { if (ok) input.value = ""; });
    });
  }

  async api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = this.csrf() || "";
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  say(message) {
    this.notice.textContent = message;
  }

  async load() {
    try {
      const [lists, layout] = await Promise.all([this.api("GET", "/api/watchlists"), this.api("GET", "/api/layout")]);
      this.lists = lists.watchlists;
      this.limits = { lists: lists.max_lists, symbols: lists.max_symbols };
      this.layout = { ...(layout.layout || {}), ...this.pending };
      this.loaded = true;
      if (Object.keys(this.pending).length) this.flushLayout();
      const wanted = this.layout.watchlist;
      const name = this.lists.some((w) => w.name === wanted) ? wanted : this.lists[0]?.name ?? null;
      this.renderSelect();
      this.show(name, false);
    } catch (error) {
      this.say(`cannot load watchlists: ${error.message}`);
    }
    return this.layout;
  }

  // Merge ``patch`` into the saved layout; written to the server shortly after the last change.
  saveLayout(patch) {
    this.pending = { ...this.pending, ...patch };
    if (!this.loaded) return; // merged into what the server has once it is loaded
    this.layout = { ...this.layout, ...patch };
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.flushLayout(), 300);
  }

  flushLayout() {
    this.pending = {};
    this.api("PUT", "/api/layout", { layout: this.layout }).catch((error) => this.say(error.message));
  }

  renderSelect() {
    this.select.replaceChildren(...this.lists.map((w) => el("option", { value: w.name }, w.name)));
    this.select.disabled = this.lists.length === 0;
  }

  list() {
    return this.lists.find((w) => w.name === this.current) || null;
  }

  show(name, remember) {
    this.current = name;
    if (name !== null) this.select.value = name;
    this.resubscribe();
    this.render();
    if (remember && name !== null) this.saveLayout({ watchlist: name });
  }

  resubscribe() {
    const wanted = new Set(this.list()?.symbols || []);
    for (const [symbol, handler] of this.handlers) {
      if (!wanted.has(symbol)) {
        this.client.unsubscribe(`quote:${symbol}`, handler);
        this.handlers.delete(symbol);
      }
    }
    for (const symbol of wanted) {
      if (this.handlers.has(symbol)) continue;
      const handler = (kind, data) => {
        if (data && typeof data === "object") {
          this.quotes.set(symbol, data);
          this.renderRow(symbol);
        }
      };
      this.handlers.set(symbol, handler);
      this.client.subscribe(`quote:${symbol}`, handler);
    }
  }

  render() {
    const symbols = this.list()?.symbols || [];
    this.meta.textContent = this.current ? `${this.current} \u00b7 ${symbols.length}` : "no list yet";
    this.tbody.replaceChildren(...symbols.map((symbol) => this.row(symbol)));
    this.section.dataset.filled = String(symbols.length > 0);
  }

  row(symbol) {
    const tr = el("tr", { "data-symbol": symbol });
    const name = el("td");
    const link = el("button", { type: "button", class: "symbol" }, symbol);
    link.addEventListener("click", () => this.onSymbol(symbol));
    name.append(link);
    const remove = el("button", { type: "button", class: "remove", "aria-label": `Remove ${symbol}` }, "\u00d7");
    remove.addEventListener("click", () => this.removeSymbol(symbol));
    const cells = [name, el("td", { class: "num price" }), el("td", { class: "num pct" }), el("td", { class: "num volume" })];
    const last = el("td");
    last.append(remove);
    tr.append(...cells, last);
    this.fill(tr, this.quotes.get(symbol));
    return tr;
  }

  renderRow(symbol) {
    const tr = this.tbody.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`);
    if (tr) this.fill(tr, this.quotes.get(symbol));
  }

  fill(tr, quote) {
    const price = tr.querySelector(".price");
    const pct = tr.querySelector(".pct");
    const volume = tr.querySelector(".volume");
    if (!quote) {
      price.textContent = "\u2014";
      pct.textContent = "";
      volume.textContent = "";
      return;
    }
    price.textContent = fmt.price(field.price(quote));
    pct.textContent = fmt.percent(field.pct(quote));
    pct.className = `num pct ${fmt.signClass(field.pct(quote))}`;
    volume.textContent = fmt.compact(field.volume(quote));
  }

  async save(name, symbols) {
    const saved = await this.api("PUT", `/api/watchlists/${encodeURIComponent(name)}`, { symbols });
    const index = this.lists.findIndex((w) => w.name === saved.name);
    if (index >= 0) this.lists[index] = saved;
    else this.lists.push(saved);
    return saved;
  }

  async createList(name) {
    if (!name) return false;
    try {
      await this.save(name, []);
      this.renderSelect();
      this.show(name, true);
      this.say("");
      return true;
    } catch (error) {
      this.say(error.message);
      return false;
    }
  }

  async deleteList() {
    if (this.current === null) return;
    try {
      await this.api("DELETE", `/api/watchlists/${encodeURIComponent(this.current)}`);
      this.lists = this.lists.filter((w) => w.name !== this.current);
      this.renderSelect();
      this.show(this.lists[0]?.name ?? null, true);
    } catch (error) {
      this.say(error.message);
    }
  }

  async addSymbol(symbol) {
    if (!SYMBOL.test(symbol)) {
      this.say(`${symbol || "empty"} is not a symbol`);
      return false;
    }
    try {
      if (this.current === null) await this.createList("My list").then(() => {});
      const list = this.list();
      if (list.symbols.includes(symbol)) return true;
      await this.save(list.name, [...list.symbols, symbol]);
      this.resubscribe();
      this.render();
      this.say("");
      return true;
    } catch (error) {
      this.say(error.message);
      return false;
    }
  }

  async removeSymbol(symbol) {
    const list = this.list();
    if (!list) return;
    try {
      await this.save(list.name, list.symbols.filter((s) => s !== symbol));
      this.resubscribe();
      this.render();
    } catch (error) {
      this.say(error.message);
    }
  }
}
