// The scanner's alert streams beyond HOD/LOD: unusual volume, news-driven movers, halts.
//
// Each is its own widget, appended to the grid and kept newest first by event time (as_of_ms),
// as WDC stores it (docs/reference/wds-protocol.md, "Feeds").

import * as fmt from "./format.js";
import { FeedList } from "./lists.js";

const STREAMS = [
  { id: "w-volume-alerts", feed: "alerts:volume", title: "Unusual volume", subtitle: "Time-of-day RVol crossing 2, 3, 5, 10x." },
  { id: "w-news-movers", feed: "alerts:news", title: "News movers", subtitle: "Price or RVol moving within 30 min of news." },
  { id: "w-halts", feed: "alerts:halts", title: "Halts & resumes", subtitle: "LULD pauses with the band; resumes with the reopening price." },
];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function badge(item) {
  if (item.kind === "halt") return ["HALT", "down"];
  if (item.kind === "resume") return ["RESUME", "up"];
  if (fmt.isNumber(item.threshold)) return [`RVOL ${item.threshold}x`, "up"];
  const move = item.pct_move;
  return ["NEWS", fmt.isNumber(move) && move < 0 ? "down" : "up"];
}

function render(onSymbol) {
  return (item) => {
    const [label, side] = badge(item);
    const li = el("li", `alert ${side}`);
    li.appendChild(el("time", "when", fmt.clock(fmt.toMs(item.as_of_ms))));
    if (item.symbol) {
      const button = el("button", "ticker", item.symbol);
      button.type = "button";
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        onSymbol(item.symbol);
      });
      li.appendChild(button);
    }
    li.appendChild(el("span", "badge", label));
    if (fmt.isNumber(item.price)) li.appendChild(el("span", "num", fmt.price(item.price)));
    if (item.note) li.appendChild(el("span", "note", item.note));
    if (item.headline) li.appendChild(el("span", "note headline", item.headline));
    return li;
  };
}

export function mountScannerAlerts(client, onSymbol) {
  const grid = document.querySelector("main.grid");
  if (!grid) return;
  for (const stream of STREAMS) {
    const section = el("section", "widget alerts");
    section.id = stream.id;
    section.dataset.filled = "false";
    section.appendChild(el("h2", undefined, stream.title));
    section.appendChild(el("p", "subtitle", stream.subtitle));
    const scroll = el("div", "scroll");
    scroll.appendChild(el("ul", "items"));
    section.appendChild(scroll);
    grid.appendChild(section);
    new FeedList(section, { render: render(onSymbol), orderBy: "as_of_ms" }).bind(client, stream.feed);
  }
}
