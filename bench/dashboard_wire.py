"""Benchmark: bytes per second one dashboard tab receives from the WDS in the demo.

Starts the demo in this process (as ``mdp demo`` runs it: embedded Redis, in-process queues, the
simulator at ``--speed``), logs a headless Chromium into the dashboard, follows the first
symbol of the volume board (quote panel, chart) and then counts, through the DevTools protocol,
every websocket frame the page receives for ``--seconds`` seconds. Prints frames/s and KB/s
(payload bytes, 1 KB = 1,000 bytes), the share of each op (``snapshot``, ``update``,
``delta``) and of the busiest feeds.

Not a test: the figure depends on the simulated market (symbols, speed) and on the machine
(2 shared cores here; a loaded machine publishes less often, so it tends to read low).

Usage::

    uv run python bench/dashboard_wire.py [--symbols 300] [--speed 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import Counter
from datetime import time
from typing import Any

from mdp_platform.demo import Demo, DemoOptions
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS


async def measure(symbols: int, speed: float, seconds: float, warmup: float) -> None:
    demo = Demo(
        DemoOptions(
            symbols=symbols, speed=speed, start=time(9, 45), port=0, wds_port=0,
            admin_password="bench-password", queue_prefix=f"mdp-wire-{os.getpid()}.",
        ),
        progress=lambda _line: None,
    )  # fmt: skip
    await demo.start()
    try:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
            )
            page = await browser.new_page(viewport={"width": 1480, "height": 1000})
            page.set_default_timeout(60_000)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Network.enable")
            counting = False
            by_op: Counter[str] = Counter()
            by_feed: Counter[str] = Counter()
            frames = 0

            def received(event: dict[str, Any]) -> None:
                nonlocal frames
                if not counting:
                    return
                text = event["response"]["payloadData"]
                size = len(text.encode())
                frames += 1
                try:
                    message = json.loads(text)
                except ValueError:
                    return
                by_op[str(message.get("op"))] += size
                by_feed[str(message.get("feed", message.get("op")))] += size

            cdp.on("Network.webSocketFrameReceived", received)
            await page.goto(f"{demo.info.dashboard_url}/")
            await page.fill("input[name=user]", demo.info.admin_user)
            await page.fill("input[name=password]", demo.info.admin_password)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#conn[data-state=live]")
            await page.wait_for_selector("#w-volume[data-filled=true]")
            await page.locator("#w-volume tbody tr").first.click()
            await asyncio.sleep(warmup)  # snapshots of the initial subscriptions go by
            counting = True
            await asyncio.sleep(seconds)
            counting = False
            total = sum(by_op.values())
            print(
                f"{symbols} symbols at {speed:g}x for {seconds:g} s: {frames / seconds:.1f} "
                f"frames/s, {total / seconds / 1000:.1f} KB/s"
            )
            for op, size in by_op.most_common():
                print(f"  op {op:<10} {size / seconds / 1000:8.1f} KB/s")
            for feed, size in by_feed.most_common(8):
                print(f"  feed {feed:<24} {size / seconds / 1000:8.1f} KB/s")
            await browser.close()
    finally:
        await demo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(measure(args.symbols, args.speed, args.seconds, args.warmup))


if __name__ == "__main__":
    main()
