"""Benchmark: bytes per second one dashboard tab receives from the WDS in the demo.

Starts the demo in this process (as ``mdp demo`` runs it: embedded Redis, in-process queues, the
simulator at ``--speed``), logs a headless Chromium into the dashboard, follows the first
symbol of the volume board (quote panel, chart) and then counts, in the page (a wrapper of
``WebSocket`` installed before the dashboard's scripts), every websocket message it receives for
``--seconds`` seconds. Prints messages/s and KB/s (UTF-8 payload bytes, 1 KB = 1,000 bytes),
the share of each op (``snapshot``, ``update``, ``delta``) and of the busiest feeds, and the
connection drops seen (a client too slow to read is cut by the WDS, close 4009). ``--before``
measures the page as it was before boards travelled as deltas and charts existed: the wrapper
takes ``"deltas": true``, ``"fields"`` and the ``bars:`` feeds out of what the page subscribes
to. ``--whole-rows`` measures the page as it was before boards were projected on the fields it
reads: the wrapper takes ``"fields"`` out of its subscriptions and gets (deltas kept).

Not a test: the figure depends on the simulated market (symbols, speed) and on the machine
(2 shared cores here; a loaded machine publishes less often, so it tends to read low).

Usage::

    uv run python bench/dashboard_wire.py [--symbols 300] [--speed 5] [--seconds 30]
        [--before | --whole-rows]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from datetime import time

from playwright.async_api import async_playwright

from mdp_platform.demo import Demo, DemoOptions
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS

PASSWORD = "bench-password"  # noqa: S105 - a throwaway login of a loopback demo

#: Installed before the page's scripts: every socket the page opens counts what it receives.
COUNTER = """
(() => {
  const wire = { on: false, messages: 0, closes: 0, ops: {}, feeds: {} };
  window.__wire = wire;
  const encoder = new TextEncoder();
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    send(data) {
      const mode = window.__wireMode;
      if (mode && typeof data === "string" && /"op":"(subscribe|get)"/.test(data)) {
        const message = JSON.parse(data);
        delete message.fields;
        if (mode === "before" && message.op === "subscribe") {
          delete message.deltas;
          message.feeds = message.feeds.filter((feed) => !feed.startsWith("bars:"));
          if (!message.feeds.length) return;
        }
        data = JSON.stringify(message);
      }
      super.send(data);
    }
    constructor(...args) {
      super(...args);
      this.addEventListener("close", () => { if (wire.on) wire.closes += 1; });
      this.addEventListener("message", (event) => {
        if (!wire.on || typeof event.data !== "string") return;
        const size = encoder.encode(event.data).length;
        const head = event.data.slice(0, 160);
        const op = (head.match(/"op":"([a-z_]+)"/) || [])[1] || "?";
        const feed = (head.match(/"feed":"([^"]+)"/) || [])[1] || op;
        wire.messages += 1;
        wire.ops[op] = (wire.ops[op] || 0) + size;
        wire.feeds[feed] = (wire.feeds[feed] || 0) + size;
      });
    }
  };
})();
"""


async def measure(symbols: int, speed: float, seconds: float, warmup: float, *, mode: str) -> None:
    """Run the demo, open the dashboard, count the bytes it receives; print the figures."""
    demo = Demo(
        DemoOptions(
            symbols=symbols, speed=speed, start=time(9, 45), port=0, wds_port=0,
            admin_password=PASSWORD, queue_prefix=f"mdp-wire-{os.getpid()}.",
        ),
        progress=lambda _line: None,
    )  # fmt: skip
    await demo.start()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
            )
            page = await browser.new_page(viewport={"width": 1480, "height": 1000})
            page.set_default_timeout(60_000)
            if mode != "now":
                await page.add_init_script(f"window.__wireMode = {mode!r};")
            await page.add_init_script(COUNTER)
            await page.goto(f"{demo.info.dashboard_url}/")
            await page.fill("input[name=user]", demo.info.admin_user)
            await page.fill("input[name=password]", demo.info.admin_password)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#conn[data-state=live]")
            await page.wait_for_selector("#w-volume[data-filled=true]")
            await page.locator("#w-volume tbody tr").first.click()
            await asyncio.sleep(warmup)  # snapshots of the initial subscriptions go by
            await page.evaluate("() => { window.__wire.on = true; }")
            await asyncio.sleep(seconds)
            wire = await page.evaluate("() => { window.__wire.on = false; return window.__wire; }")
            total = sum(wire["ops"].values())
            print(
                f"{mode}: {symbols} symbols at {speed:g}x for "
                f"{seconds:g} s: "
                f"{wire['messages'] / seconds:.1f} messages/s, {total / seconds / 1000:.1f} KB/s, "
                f"{wire['closes']} connection drop(s)"
            )
            for op, size in Counter(wire["ops"]).most_common():
                print(f"  op {op:<10} {size / seconds / 1000:8.1f} KB/s")
            for feed, size in Counter(wire["feeds"]).most_common(8):
                print(f"  feed {feed:<24} {size / seconds / 1000:8.1f} KB/s")
            await browser.close()
    finally:
        await demo.stop()


def main() -> None:
    """Parse the options and measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--before", action="store_true", help="whole boards, no bars feeds")
    modes.add_argument("--whole-rows", action="store_true", help="deltas of whole rows")
    args = parser.parse_args()
    mode = "before" if args.before else "whole-rows" if args.whole_rows else "now"
    asyncio.run(measure(args.symbols, args.speed, args.seconds, args.warmup, mode=mode))


if __name__ == "__main__":
    main()
