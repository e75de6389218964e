// One WebSocket to the widget data service (WDS) shared by every widget on the page.
//
// Widgets call subscribe(feed, handler); the client keeps the wanted set, so after a
// reconnect it authenticates again and re-subscribes with snapshots, and every widget simply
// repaints from the snapshot. The token comes from the SCP (/api/session) and is refreshed
// on the open socket before it expires. Reconnects back off exponentially with jitter so a
// restarted WDS is not hit by every browser at the same instant.
//
// Boards are followed with deltas (docs/reference/wds-protocol.md, "Boards as deltas"): the
// client keeps each board and the number of its publication, applies a delta only to the
// publication it follows, and on a gap asks for the board again; widgets always receive the
// whole document. A board subscribed with ``fields`` (the row fields its widget reads) gets
// each row with only those: snapshots, updates, deltas and the gets that repair a gap alike.

const MAX_BACKOFF_MS = 30000;
const BASE_BACKOFF_MS = 500;
const PING_EVERY_MS = 15000;
const SILENCE_LIMIT_MS = 40000;

export class WdsClient {
  constructor({ sessionUrl = "/api/session", onState = () => {}, onSession = () => {} } = {}) {
    this.sessionUrl = sessionUrl;
    this.onState = onState;
    this.onSession = onSession;
    this.handlers = new Map(); // feed -> Set(handler)
    this.options = new Map(); // feed -> {limit, deltas, fields}
    this.boards = new Map(); // feed followed with deltas -> {doc, seq}
    this.gaps = 0; // deltas that did not follow the board held (each answered with a get)
    this.socket = null;
    this.session = null;
    this.attempt = 0;
    this.nextId = 1;
    this.authed = false;
    this.lastMessageAt = 0;
    this.refreshTimer = null;
    this.retryTimer = null;
    this.pingTimer = null;
    this.stopped = false;
    this.state = "idle";
  }

  setState(state, detail = {}) {
    this.state = state;
    this.onState(state, detail);
  }

  async fetchSession() {
    const response = await fetch(this.sessionUrl, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) {
      window.location.assign("/login");
      throw new Error("logged out");
    }
    if (!response.ok) throw new Error(`session request failed: HTTP ${response.status}`);
    this.session = await response.json();
    this.onSession(this.session);
    this.scheduleRefresh();
    return this.session;
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    const seconds = Math.max(5, Number(this.session?.refresh_after_seconds) || 60);
    this.refreshTimer = setTimeout(() => this.refreshToken(), seconds * 1000);
  }

  async refreshToken() {
    try {
      await this.fetchSession();
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.send({ op: "auth", token: this.session.wds_token });
      }
    } catch (error) {
      // Try again soon; the socket keeps working until the old token actually expires.
      this.refreshTimer = setTimeout(() => this.refreshToken(), 5000);
    }
  }

  async start() {
    this.stopped = false;
    await this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.socket) this.socket.close(1000, "page closed");
  }

  async connect() {
    clearTimeout(this.retryTimer);
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    try {
      if (!this.session || this.tokenExpiresSoon()) await this.fetchSession();
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    let socket;
    try {
      socket = new WebSocket(this.session.wds_url);
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.authed = false;
    socket.addEventListener("open", () => {
      this.lastMessageAt = Date.now();
      this.send({ op: "auth", token: this.session.wds_token });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
    socket.addEventListener("error", () => {}); // "close" follows and handles it
  }

  tokenExpiresSoon() {
    const expires = Number(this.session?.wds_token_expires_at) || 0;
    return expires * 1000 - Date.now() < 15000;
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.authed = false;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    if (event.code === 4001) this.session = null; // token refused or expired: get a new one
    this.scheduleReconnect(event.code);
  }

  scheduleReconnect(code) {
    if (this.stopped) return;
    const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.setState("offline", { retryInMs: delay, code, since: Date.now() });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  receive(text) {
    this.lastMessageAt = Date.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      return;
    }
    switch (message.op) {
      case "auth_ok":
        if (!this.authed) {
          this.authed = true;
          this.attempt = 0;
          this.setState("live", {});
          this.resubscribe();
          this.startPing();
        }
        break;
      case "snapshot":
      case "update":
        if (this.boards.has(message.feed)) {
          this.boards.set(message.feed, { doc: message.data, seq: message.seq ?? null });
        }
        this.dispatch(message.feed, message.op, message.data);
        break;
      case "delta":
        this.applyDelta(message);
        break;
      case "error":
        console.warn("WDS error", message.code, message.message);
        break;
      default:
        break;
    }
  }

  startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS && this.socket) {
        this.socket.close(4000, "silent");
        return;
      }
      this.send({ op: "ping", id: this.nextId++ });
    }, PING_EVERY_MS);
  }

  dispatch(feed, kind, data) {
    const handlers = this.handlers.get(feed);
    if (!handlers) return;
    for (const handler of handlers) {
      try {
        handler(kind, data, feed);
      } catch (error) {
        console.error("widget failed on", feed, error);
      }
    }
  }

  applyDelta(message) {
    const board = this.boards.get(message.feed);
    if (!board) return;
    if (board.seq === null || message.base !== board.seq || !board.doc) {
      if (board.seq !== null) {
        // A gap: ask for the whole board, and ignore deltas until it (or an update) comes.
        this.gaps += 1;
        board.seq = null;
        this.send(this.getMessage(message.feed));
      }
      return;
    }
    board.doc = applyDelta(board.doc, message.data, "symbol");
    board.seq = message.seq;
    this.dispatch(message.feed, "update", board.doc);
  }

  optionsOf(feed) {
    return this.options.get(feed) || { limit: 50, deltas: false, fields: null };
  }

  subscribeMessage(feeds, { limit, deltas, fields }) {
    const message = { op: "subscribe", id: this.nextId++, feeds, snapshot: true, limit };
    if (deltas) message.deltas = true;
    if (fields) message.fields = fields;
    return message;
  }

  // A feed's current content, read as it is followed (the same row fields).
  getMessage(feed) {
    const { limit, fields } = this.optionsOf(feed);
    const message = { op: "get", id: this.nextId++, feed, limit };
    if (fields) message.fields = fields;
    return message;
  }

  resubscribe() {
    const groups = new Map(); // "limit|deltas|fields" -> feeds
    for (const feed of this.handlers.keys()) {
      const options = this.optionsOf(feed);
      if (options.deltas) this.boards.set(feed, { doc: null, seq: null });
      const key = `${options.limit}|${options.deltas}|${JSON.stringify(options.fields)}`;
      if (!groups.has(key)) groups.set(key, { options, feeds: [] });
      groups.get(key).feeds.push(feed);
    }
    for (const { options, feeds } of groups.values()) this.send(this.subscribeMessage(feeds, options));
  }

  // options: {limit} (list elements in the snapshot, 50 by default), {deltas: true} for boards,
  // {fields: [name...]} for a board whose rows are read only in part (the row key always comes).
  subscribe(feed, handler, { limit = 50, deltas = false, fields = null } = {}) {
    let handlers = this.handlers.get(feed);
    const fresh = !handlers;
    if (fresh) {
      handlers = new Set();
      this.handlers.set(feed, handlers);
      this.options.set(feed, { limit, deltas, fields });
      if (deltas) this.boards.set(feed, { doc: null, seq: null });
    }
    handlers.add(handler);
    if (this.authed) {
      if (fresh) {
        this.send(this.subscribeMessage([feed], { limit, deltas, fields }));
      } else {
        this.send(this.getMessage(feed));
      }
    }
  }

  unsubscribe(feed, handler) {
    const handlers = this.handlers.get(feed);
    if (!handlers) return;
    handlers.delete(handler);
    if (handlers.size === 0) {
      this.handlers.delete(feed);
      this.options.delete(feed);
      this.boards.delete(feed);
      if (this.authed) this.send({ op: "unsubscribe", id: this.nextId++, feeds: [feed] });
    }
  }
}

// The board a delta turns ``doc`` into (the rule of mdp_wds.deltas.apply_delta): top-level
// fields set or dropped; rows in the delta's order (or the old order), each either new and
// whole (rows), or the old row with its changed fields (patch) and without its gone ones (unset).
export function applyDelta(doc, delta, key) {
  const result = {};
  const dropped = new Set(delta.drop || []);
  for (const [name, value] of Object.entries(doc)) if (!dropped.has(name)) result[name] = value;
  Object.assign(result, delta.set || {});
  const rows = Array.isArray(doc.rows) ? doc.rows : [];
  const old = new Map(rows.map((row) => [row[key], row]));
  const order = delta.order || rows.map((row) => row[key]);
  const fresh = delta.rows || {};
  const patches = delta.patch || {};
  const unsets = delta.unset || {};
  result.rows = order.map((name) => {
    if (Object.hasOwn(fresh, name)) return fresh[name];
    const gone = new Set(unsets[name] || []);
    const row = {};
    for (const [field, value] of Object.entries(old.get(name))) if (!gone.has(field)) row[field] = value;
    return Object.assign(row, patches[name] || {});
  });
  return result;
}
