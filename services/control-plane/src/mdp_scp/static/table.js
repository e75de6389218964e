// A sortable table whose rows are keyed by symbol and updated in place.
//
// Each update touches only the cells whose text changed (and flashes them), moves rows only
// when the order changed, and removes rows that left the list, so a 50-row board updating
// every second costs a handful of DOM writes rather than a full repaint.

// Class names from a space-separated string; empty parts (double spaces) are not tokens.
const tokens = (text) => text.split(/\s+/).filter(Boolean);

export class KeyedTable {
  // columns: [{key, label, value(row) -> comparable, text(row) -> string, cls(row) -> string,
  //            title, numeric, opt (hidden on narrow screens)}]; rank: the key of the column
  //            the feed is ranked by (marked in the header)
  constructor(table, { columns, keyOf, sort, onRowClick, rowClass, storageKey, rank }) {
    this.table = table;
    this.columns = columns;
    this.rank = rank;
    this.keyOf = keyOf;
    this.onRowClick = onRowClick;
    this.rowClass = rowClass || (() => "");
    this.storageKey = storageKey;
    this.sort = this.loadSort() || sort || { key: columns[0].key, dir: -1 };
    this.rows = new Map(); // key -> {tr, cells: [td], texts: [string]}
    this.data = [];
    this.filter = () => true;
    this.body = table.tBodies[0] || table.createTBody();
    this.renderHead();
    this.body.addEventListener("click", (event) => {
      const tr = event.target.closest("tr");
      if (tr && tr.dataset.key && this.onRowClick) this.onRowClick(tr.dataset.key);
    });
  }

  loadSort() {
    if (!this.storageKey) return null;
    try {
      const saved = JSON.parse(localStorage.getItem(this.storageKey) || "null");
      if (saved && this.columns.some((c) => c.key === saved.key) && (saved.dir === 1 || saved.dir === -1)) {
        return saved;
      }
    } catch (error) {
      /* ignore a corrupt preference */
    }
    return null;
  }

  renderHead() {
    const head = this.table.tHead || this.table.createTHead();
    head.textContent = "";
    const tr = head.insertRow();
    for (const column of this.columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = column.label;
      th.dataset.key = column.key;
      if (column.title) th.title = column.title;
      if (column.key === this.rank) {
        th.classList.add("ranked");
        th.title = `${column.title || column.label} \u2013 the board is ranked by this`;
      }
      if (column.numeric) th.classList.add("num");
      if (column.opt) th.classList.add("opt");
      th.classList.add(`col-${column.key}`);
      th.tabIndex = 0;
      th.addEventListener("click", () => this.sortBy(column.key));
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.sortBy(column.key);
        }
      });
      tr.appendChild(th);
    }
    this.markSort();
  }

  markSort() {
    for (const th of this.table.tHead.rows[0].cells) {
      const active = th.dataset.key === this.sort.key;
      th.setAttribute("aria-sort", active ? (this.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  sortBy(key) {
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: -1 };
    if (this.storageKey) localStorage.setItem(this.storageKey, JSON.stringify(this.sort));
    this.markSort();
    this.render();
  }

  setFilter(filter) {
    this.filter = filter;
    this.render();
  }

  setData(rows) {
    this.data = Array.isArray(rows) ? rows : [];
    this.render();
  }

  sorted() {
    const column = this.columns.find((c) => c.key === this.sort.key) || this.columns[0];
    const dir = this.sort.dir;
    const value = column.value;
    return this.data
      .filter((row) => row && this.keyOf(row) && this.filter(row))
      .sort((a, b) => {
        const x = value(a);
        const y = value(b);
        const xMissing = x === undefined || x === null || Number.isNaN(x);
        const yMissing = y === undefined || y === null || Number.isNaN(y);
        if (xMissing || yMissing) return xMissing === yMissing ? 0 : xMissing ? 1 : -1;
        if (x < y) return -dir;
        if (x > y) return dir;
        return 0;
      });
  }

  render() {
    const rows = this.sorted();
    const seen = new Set();
    let previous = null;
    for (const row of rows) {
      const key = String(this.keyOf(row));
      if (seen.has(key)) continue;
      seen.add(key);
      let entry = this.rows.get(key);
      const fresh = !entry;
      if (fresh) entry = this.createRow(key);
      this.fill(entry, row, !fresh);
      const expected = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== entry.tr) this.body.insertBefore(entry.tr, expected);
      previous = entry.tr;
    }
    for (const [key, entry] of this.rows) {
      if (!seen.has(key)) {
        entry.tr.remove();
        this.rows.delete(key);
      }
    }
    this.table.classList.toggle("empty", rows.length === 0);
  }

  createRow(key) {
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    tr.tabIndex = 0;
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && this.onRowClick) this.onRowClick(key);
    });
    const cells = this.columns.map((column) => {
      const td = tr.insertCell();
      if (column.numeric) td.classList.add("num");
      if (column.opt) td.classList.add("opt");
      if (column.key === this.rank) td.classList.add("ranked");
      td.classList.add(`col-${column.key}`);
      return td;
    });
    const entry = { tr, cells, texts: new Array(this.columns.length).fill(null), classes: [], rowCls: "" };
    this.rows.set(key, entry);
    return entry;
  }

  fill(entry, row, flash) {
    this.columns.forEach((column, index) => {
      const text = column.text(row);
      const td = entry.cells[index];
      if (entry.texts[index] !== text) {
        const before = column.value(row);
        const old = entry.values ? entry.values[index] : undefined;
        td.textContent = text;
        entry.texts[index] = text;
        if (flash && column.flash !== false) {
          const direction = typeof before === "number" && typeof old === "number" && before < old ? "down" : "up";
          // Alternate two identical animations so a second change restarts the flash.
          const toggle = td.dataset.flash === `${direction}-a` ? `${direction}-b` : `${direction}-a`;
          td.dataset.flash = toggle;
        }
      }
      const cls = column.cls ? column.cls(row) : "";
      if (entry.classes[index] !== cls) {
        if (entry.classes[index]) td.classList.remove(...tokens(entry.classes[index]));
        if (cls) td.classList.add(...tokens(cls));
        entry.classes[index] = cls;
      }
    });
    entry.values = this.columns.map((column) => column.value(row));
    const rowCls = this.rowClass(row);
    if (entry.rowCls !== rowCls) {
      if (entry.rowCls) entry.tr.classList.remove(...tokens(entry.rowCls));
      if (rowCls) entry.tr.classList.add(...tokens(rowCls));
      entry.rowCls = rowCls;
    }
  }
}
