"""The one-command demo: every widget feed fills from the simulator, and the dashboard shows it.

The demo runs in this process exactly as ``mdp demo`` runs it (embedded Redis, in-process
queues), on free ports. The browser test drives Debian's Chromium through Playwright: log in
with the printed credentials, see each widget fill with simulated data, click a row, lose and
regain the WDS connection. Every wait is on an event or a page condition, with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from datetime import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from mdp_platform.demo import Demo, DemoOptions
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

#: Feed patterns a dashboard needs; each must receive a message soon after the start.
FEEDS = (
    "scanner:top_volume",
    "scanner:top_gappers",
    "scanner:top_gainers",
    "quote:*",
    "trades:top",
    "range:*",
    "bars:*",
    "alerts:hod",
    "news:latest",
)
WIDGETS = ("w-gainers", "w-gappers", "w-volume", "w-trades", "w-hod", "w-news")


def _options(*, fakeredis: bool = False) -> DemoOptions:
    # 09:29:30 at 20x: pre-market data at once, the 09:30 open within about 1.5 s.
    return DemoOptions(
        symbols=80, speed=20.0, start=time(9, 29, 30), port=0, wds_port=0,
        news_per_hour=3_000.0, admin_password="demo-test-password", queue_prefix="mdp-e2e.",
        fakeredis=fakeredis,
    )  # fmt: skip


@pytest.fixture(params=["redis-server", "fakeredis"])
async def demo(request: pytest.FixtureRequest) -> AsyncIterator[Demo]:
    """The demo on each embedded store: a fresh machine without redis-server gets fakeredis."""
    if request.param == "redis-server" and shutil.which("redis-server") is None:
        # Without the binary the demo would quietly run fakeredis again under this name.
        reason = "redis-server is not installed here; the fakeredis case covers the fallback"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"{reason}; CI=true installs it (.ci/run)", pytrace=False)
        pytest.skip(reason)
    running = Demo(_options(fakeredis=request.param == "fakeredis"), progress=lambda _line: None)
    await running.start()
    try:
        assert running.info.redis_kind == f"embedded {request.param}"  # the store that ran
        yield running
    finally:
        await running.stop()


async def _first_messages(redis: Redis, patterns: tuple[str, ...]) -> dict[str, bytes]:
    """Wait for one non-empty message on each pattern (published by the running pipeline)."""
    pubsub = redis.pubsub()
    await pubsub.psubscribe(*patterns)
    seen: dict[str, bytes] = {}
    try:
        async with asyncio.timeout(60):
            while len(seen) < len(patterns):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                if message is None:
                    continue
                pattern = message["pattern"].decode()
                document = json.loads(message["data"])
                rows = document.get("rows") if pattern.startswith("scanner:") else None
                if rows is not None and not (rows and rows[0].get("prev_close")):
                    continue  # a board before its first rows, or before reference data came
                seen.setdefault(pattern, message["data"])
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    return seen


async def test_every_widget_feed_fills_from_the_simulator(demo: Demo) -> None:
    assert demo.wdc is not None
    seen = await _first_messages(demo.wdc, FEEDS)

    assert set(seen) == set(FEEDS)
    gainers = json.loads(seen["scanner:top_gainers"])
    assert gainers["session"] == "regular"  # the board opened at 09:30 simulated
    row = json.loads(seen["scanner:top_volume"])["rows"][0]
    assert row["prev_close"] > 0
    assert row["accumulated_volume"] > 0
    assert json.loads(seen["news:latest"])["tickers"]
    # The snapshots are there for a dashboard that connects now.
    assert await demo.wdc.get("scanner:top_volume") is not None
    assert await demo.wdc.llen("news:latest") >= 1
    # Components report their health to the control plane through heartbeats in MDC.
    assert demo.mdc is not None
    beats = {key.decode() async for key in demo.mdc.scan_iter(match="mdp:heartbeat:*")}
    assert {"listener", "news-listener", "processor", "scanner", "news-processor"} <= {
        key.split(":")[2] for key in beats
    }


@pytest.fixture
async def demo_default() -> AsyncIterator[Demo]:
    """The demo on the store ``mdp demo`` picks here (redis-server when installed)."""
    running = Demo(_options(), progress=lambda _line: None)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.browser
async def test_the_dashboard_shows_the_simulated_market(demo_default: Demo, tmp_path: Path) -> None:
    demo = demo_default
    require_browser()
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("MDP_SCREENSHOT_DIR") or tmp_path)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1480, "height": 1000})
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            await page.goto(f"{demo.info.dashboard_url}/")
            await page.fill("input[name=user]", demo.info.admin_user)
            await page.fill("input[name=password]", demo.info.admin_password)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#conn[data-state=live]")
            for widget in WIDGETS:
                await page.wait_for_selector(f"#{widget}[data-filled=true]")

            first = page.locator("#w-volume tbody tr").first
            symbol = await first.get_attribute("data-key")
            assert symbol
            await first.click()
            await page.wait_for_selector(f'#w-quote[data-symbol="{symbol}"][data-filled=true]')
            # The header clock follows the simulated market (09:29:30 at 20x), not this
            # machine's time: it reaches the regular session within seconds.
            await page.wait_for_selector("#market-clock[data-session=regular]")
            assert "ET \u00b7 Market open" in await page.locator("#market-clock").inner_text()
            await page.screenshot(path=str(shots / "dashboard.png"))

            async def noticed() -> None:
                await page.wait_for_selector("#conn[data-state=offline]")

            await demo.restart_wds(down=noticed)
            await page.wait_for_selector("#conn[data-state=live]")
            await page.wait_for_selector("#w-volume[data-filled=true]")
            # Refused reconnects while the WDS is down are the browser reporting the outage.
            assert [e for e in errors if "ERR_CONNECTION_REFUSED" not in e] == []
        finally:
            await browser.close()
