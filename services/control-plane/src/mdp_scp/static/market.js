// The header's market clock: the market's time in ET and its session (pre-market, open,
// after hours, closed with the holiday's name).
//
// The SCP answers /api/market with the market's now (simulated in the demo), its speed and
// when the session next changes; between answers the clock runs on the browser's monotonic
// time, and it asks again every minute and as soon as the announced change is due.

import * as fmt from "./format.js";

const REFRESH_MS = 60000;
const RETRY_MS = 5000;

export class MarketClock {
  constructor(element, { url = "/api/market" } = {}) {
    this.element = element;
    this.url = url;
    this.status = null; // the last /api/market body
    this.fetchedAt = 0; // performance.now() when it arrived
    this.timer = null;
    this.ticker = null;
    this.listeners = new Set();
  }

  start() {
    this.refresh();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  onTick(listener) {
    this.listeners.add(listener);
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const response = await fetch(this.url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.status = await response.json();
      this.fetchedAt = performance.now();
      this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
    } catch (error) {
      this.timer = setTimeout(() => this.refresh(), RETRY_MS);
    }
    this.tick();
  }

  // The market's now in Unix ms, or undefined before the first answer.
  now() {
    if (!this.status || !fmt.isNumber(this.status.now_ms)) return undefined;
    const speed = fmt.isNumber(this.status.speed) ? this.status.speed : 1;
    return this.status.now_ms + (performance.now() - this.fetchedAt) * speed;
  }

  // "pre_market" | "regular" | "after_hours" | "closed" | undefined (not known yet).
  session() {
    return this.status ? this.status.session : undefined;
  }

  tick() {
    const now = this.now();
    const status = this.status;
    if (status && fmt.isNumber(status.next_change_ms) && now >= status.next_change_ms && !this.due) {
      this.due = true; // one refresh per announced change
      this.refresh().finally(() => {
        this.due = false;
      });
    }
    if (status) {
      this.element.dataset.session = status.session;
      this.element.textContent = `${fmt.clockEt(now)} \u00b7 ${status.label}`;
      const next = fmt.isNumber(status.next_change_ms) ? ` until ${fmt.clockEt(status.next_change_ms)}` : "";
      this.element.title = `Market time (New York); ${status.label}${next}`;
    }
    for (const listener of this.listeners) listener(now, this.session());
  }
}
