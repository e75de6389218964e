// Dashboard entry point: one WDS client, the widgets, the filters, the connection badge, the
// market clock, the symbol search and the staleness watch.

import { SparkBook } from "./bars.js";
import { BoardWidget, field } from "./boards.js";
import { FeedList, TradesWidget, alertItem, newsItem } from "./lists.js";
import { MarketClock } from "./market.js";
import { FOLLOW_KEY, QuotePanel } from "./quote.js";
import { SymbolSearch, normalSymbol } from "./search.js";
import { WdsClient } from "./wds.js";
import { WatchlistWidget } from "./watchlist.js";
import * as fmt from "./format.js";

// Market time the boards' newest bar may lag behind during a session before the data counts as
// stale (the feed or the processor is down): two minutes, well above a flush and a composition.
const FEED_LAG_MS = 120000;

const FILTER_KEY = "mdp.filters";
const DEFAULT_FILTERS = { minPrice: 0, minVolume: 0, minRvol: 0 };

function loadFilters() {
  try {
    const saved = JSON.parse(localStorage.getItem(FILTER_KEY) || "{}");
    const filters = { ...DEFAULT_FILTERS };
    for (const key of Object.keys(DEFAULT_FILTERS)) {
      const value = Number(saved[key]);
      if (Number.isFinite(value) && value >= 0) filters[key] = value;
    }
    return filters;
  } catch (error) {
    return { ...DEFAULT_FILTERS };
  }
}

function rowFilter(filters) {
  return (row) => {
    const price = field.price(row);
    const volume = field.volume(row);
    const rvol = field.rvol(row);
    if (filters.minPrice > 0 && !(price >= filters.minPrice)) return false;
    if (filters.minVolume > 0 && !(volume >= filters.minVolume)) return false;
    if (filters.minRvol > 0 && !(rvol >= filters.minRvol)) return false;
    return true;
  };
}

function showConnection(badge, state, detail) {
  badge.dataset.state = state;
  if (state === "live") {
    badge.textContent = "live";
    badge.title = "Connected to the widget data service";
  } else if (state === "offline") {
    const seconds = Math.max(1, Math.round((detail.retryInMs || 0) / 1000));
    const since = badge.dataset.since || fmt.clockEt(detail.since || Date.now());
    badge.dataset.since = since;
    badge.textContent = `offline \u00b7 retry in ${seconds}s`;
    badge.title = `Disconnected since ${since}; data shown may be stale`;
  } else {
    badge.textContent = state;
  }
  if (state === "live") delete badge.dataset.since;
  document.body.classList.toggle("disconnected", state !== "live");
}

// Dim every widget and say "as of" while the connection is down, or while a session is on and
// the boards' newest bar lags the market clock (the feed or the pipeline stopped).
function watchFreshness(market, client, boards, quote) {
  market.onTick((now, session) => {
    const trading = session !== undefined && session !== "closed";
    const newest = Math.max(...boards.map((board) => (fmt.isNumber(board.asOfMs) ? board.asOfMs : -Infinity)));
    const lagging = trading && fmt.isNumber(now) && Number.isFinite(newest) && now - newest > FEED_LAG_MS;
    const stale = client.state !== "live" || lagging;
    for (const board of boards) board.markStale(stale);
    quote.markStale(stale);
  });
}

function savedSymbol() {
  try {
    return normalSymbol(localStorage.getItem(FOLLOW_KEY));
  } catch (error) {
    return null;
  }
}

function main() {
  const badge = document.getElementById("conn");
  const userLabel = document.getElementById("user");
  const logoutCsrf = document.getElementById("logout-csrf");
  const client = new WdsClient({
    onState: (state, detail) => showConnection(badge, state, detail),
    onSession: (session) => {
      userLabel.textContent = `${session.user} (${session.role})`;
      logoutCsrf.value = session.csrf_token;
    },
  });

  const quote = new QuotePanel(document.getElementById("w-quote"), {
    client,
    onSymbol: (symbol) => quote.follow(symbol),
  });
  const follow = (symbol) => {
    quote.follow(symbol);
    watchlist.saveLayout({ follow: symbol }); // the layout kept server-side
  };

  // Each board is ranked by its feed's metric (docs/reference/wds-protocol.md, "Boards").
  const sparks = new SparkBook(client);
  const boards = [
    new BoardWidget(document.getElementById("w-gainers"), {
      feed: "scanner:top_gainers",
      rank: "pctOpen",
      onSymbol: follow,
      client,
      sparks,
    }),
    new BoardWidget(document.getElementById("w-gappers"), {
      feed: "scanner:top_gappers",
      rank: "pct",
      onSymbol: follow,
      client,
      sparks,
    }),
    new BoardWidget(document.getElementById("w-volume"), {
      feed: "scanner:top_volume",
      rank: "volume",
      onSymbol: follow,
      client,
      sparks,
    }),
  ];

  new TradesWidget(document.getElementById("w-trades"), { client, onSymbol: follow });
  new FeedList(document.getElementById("w-news"), {
    render: newsItem(follow),
    keyOf: (item) => item.link,
  }).bind(client, "news:latest");
  // Alerts are kept in event-time order (as WDC stores them), whatever order they arrive in.
  const alertList = (id) =>
    new FeedList(document.getElementById(id), { render: alertItem(follow), orderBy: "as_of_ms" });
  alertList("w-hod").bind(client, "alerts:hod");
  alertList("w-lod").bind(client, "alerts:lod");
  import("./scanner_alerts.js").then((alerts) => alerts.mountScannerAlerts(client, follow));

  const form = document.getElementById("filters");
  const filters = loadFilters();
  for (const [key, value] of Object.entries(filters)) form.elements[key].value = value || "";
  const apply = (save = true) => {
    for (const key of Object.keys(DEFAULT_FILTERS)) {
      const value = Number(form.elements[key].value);
      filters[key] = Number.isFinite(value) && value > 0 ? value : 0;
    }
    localStorage.setItem(FILTER_KEY, JSON.stringify(filters));
    if (save) watchlist.saveLayout({ filters: { ...filters } });
    const filter = rowFilter(filters);
    for (const board of boards) board.setFilter(filter);
  };
  form.addEventListener("input", () => apply());
  form.addEventListener("submit", (event) => event.preventDefault());
  apply(false);

  const watchlist = new WatchlistWidget(document.querySelector("main.grid"), {
    client,
    onSymbol: follow,
    csrf: () => client.session?.csrf_token,
  });
  // The server's layout wins over this browser's: the same dashboard on any browser.
  watchlist.load().then((layout) => {
    if (layout.filters && typeof layout.filters === "object") {
      for (const key of Object.keys(DEFAULT_FILTERS)) {
        const value = Number(layout.filters[key]);
        form.elements[key].value = Number.isFinite(value) && value > 0 ? value : "";
      }
      apply(false);
    }
    if (typeof layout.follow === "string" && layout.follow) quote.follow(layout.follow);
  });

  const market = new MarketClock(document.getElementById("market-clock"));
  watchFreshness(market, client, boards, quote);
  new SymbolSearch(document.getElementById("search"), {
    onSymbol: follow,
    known: () => boards.flatMap((board) => [...board.symbols()]),
  });
  const saved = savedSymbol();
  if (saved) follow(saved);

  market.start();
  client.start();
  window.mdpDashboard = { client, quote, watchlist, market, sparks }; // for debugging and the browser test
}

main();
