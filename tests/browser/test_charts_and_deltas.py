"""Charts, sparklines and delta boards in a real headless Chromium, through the real WDS and Redis.

The minute bars are written by the real WDC writer (its series script), the boards are stored
and published as the processor does, and the page talks to the real WDS: the quote panel's
chart renders the followed symbol's candles and takes a new minute live, each top board row
draws a sparkline from the same series, and the boards the page holds (snapshot + deltas) equal
the server's board after every publication.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mdp_analyzers.minute_bars import MinuteBar
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import FEED_MINUTE_BARS
from mdp_cache.widgets import WidgetWriter
from mdp_core.ports import free_port as _free_port  # below the ephemeral range
from mdp_core.settings import Secret, load
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from mdp_wds.deltas import project

from .test_dashboard import (
    AS_OF_MS,
    MARKET_AT_AS_OF,
    PASSWORD,
    TIMEOUT_MS,
    TOKEN_SECRET,
    WIDGETS,
    _Heartbeats,
    market,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# The row fields boards.js subscribes with, and every row field its columns (value, text, class:
# what they show, sort and colour by) and row classes read from a row that has none of them (so
# every fallback is read too), for every ranking a board is built with.
READS = """async () => {
  const boards = await import('/static/boards.js');
  const read = new Set();
  const row = new Proxy({}, {
    get: (target, name) => { read.add(String(name)); return undefined; },
  });
  for (const rank of ['pct', 'pctOpen', 'volume']) {
    for (const column of boards.columns(rank)) {
      for (const part of [column.value, column.text, column.cls]) if (part) part(row);
    }
  }
  boards.rowClass(row);
  // the page's filter (app.js rowFilter)
  for (const pick of [boards.field.price, boards.field.volume, boards.field.rvol]) pick(row);
  return [boards.BOARD_FIELDS, [...read]];
}"""

MINUTE_MS = 60_000
FIRST_MINUTE = AS_OF_MS - AS_OF_MS % MINUTE_MS - 12 * MINUTE_MS  # 10:00 ET
BOARD = "scanner:top_volume"


def bar(symbol: str, minute: int, close: float, version: int = 1) -> WidgetWrite:
    t = FIRST_MINUTE + minute * MINUTE_MS
    payload = MinuteBar(
        t=t, d=20261123, n=version, o=close - 0.05, h=close + 0.1, l=close - 0.1, c=close,
        v=1_000.0 + 100 * minute,
    )  # fmt: skip
    import msgspec

    return WidgetWrite(
        FEED_MINUTE_BARS, FEED_MINUTE_BARS.name(symbol=symbol), msgspec.json.encode(payload)
    )


@pytest.fixture
async def stack(redis_db_url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """Redis with the synthetic market and 12 minutes of bars per symbol, the WDS, the SCP."""
    import redis.asyncio as aioredis

    from mdp_wds import WdsSettings, WidgetServer

    redis = aioredis.Redis.from_url(redis_db_url)
    for feed, value in market().items():
        if isinstance(value, list):
            for element in reversed(value):
                await redis.lpush(feed, json.dumps(element))
        else:
            await redis.set(feed, json.dumps(value))
    symbols = [row["symbol"] for row in market()[BOARD]["rows"]]
    await WidgetWriter(redis).write(
        [bar(s, m, 10.0 + (m if s == "ACME" else -m) / 10) for s in symbols for m in range(12)]
    )
    scp_port = _free_port()
    wds = WidgetServer(
        load(
            WdsSettings, environ={}, host="127.0.0.1", port=0, wdc_redis_url=redis_db_url,
            token_secret=Secret(TOKEN_SECRET), allowed_origins=(f"http://127.0.0.1:{scp_port}",),
        )
    )  # fmt: skip
    await wds.start()
    settings = load(
        ScpSettings, environ={}, host="127.0.0.1", port=scp_port, wds_url=wds.url,
        wds_token_secret=Secret(TOKEN_SECRET), database_url=Secret("sqlite:///:memory:"),
        wdc_redis_url=redis_db_url,
    )  # fmt: skip
    users = UserStore(
        [User("trader", "viewer", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))]
    )
    plane = ControlPlane(settings, users=users, redis=_Heartbeats(), **MARKET_AT_AS_OF)
    await plane.start()
    try:
        assert await wds.hub.wait_connected(TIMEOUT_MS / 1000)
        yield redis, wds, plane
    finally:
        await plane.stop()
        await wds.stop()
        await redis.aclose()


async def test_chart_sparklines_and_delta_boards(stack: tuple[Any, Any, Any], shots: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    redis, wds, plane = stack
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1480, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            await page.goto(f"{plane.url}/login")
            await page.fill("input[name=user]", "trader")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#conn[data-state=live]")
            for widget in WIDGETS:
                await page.wait_for_selector(f"#{widget}[data-filled=true]")

            # The chart: the followed symbol's twelve minutes as candles, drawn on a canvas.
            await page.click('#w-volume tr[data-key="ACME"]')
            chart = '#w-quote[data-symbol="ACME"] .chart'
            await page.wait_for_selector(f'{chart}[data-bars="12"] canvas')
            assert await page.get_attribute(chart, "data-last-close") == "11.1"
            # Sparklines: every row of the board, from the same series.
            spark = '#w-volume tr[data-key="{}"] td.col-spark svg[data-points="{}"]'
            await page.wait_for_selector(spark.format("ACME", 12) + ".up")
            await page.wait_for_selector(spark.format("BOLT", 12) + ".down")

            # Live: a new minute, then the same minute revised; a stale revision changes nothing.
            writer = WidgetWriter(redis)
            await writer.write([bar("ACME", 12, 11.4)])
            await page.wait_for_selector(f'{chart}[data-bars="13"][data-last-close="11.4"]')
            await page.wait_for_selector(spark.format("ACME", 13))
            await writer.write([bar("ACME", 12, 11.6, version=2), bar("ACME", 12, 9.0)])
            await page.wait_for_selector(f'{chart}[data-bars="13"][data-last-close="11.6"]')
            await page.screenshot(path=str(shots / "dashboard-chart.png"))

            # The boards subscribe with the row fields they read, and read no other.
            fields, read = await page.evaluate(READS)
            assert set(read) <= set(fields), (
                f"boards read unlisted fields {set(read) - set(fields)}"
            )
            assert {"symbol", "end_ms", "price", "pct_change_since_open"} <= set(fields)

            # Delta boards: after each publication the page's board equals the server's board
            # projected on those fields (and no field beyond them travelled).
            board = market()[BOARD]
            for step in range(1, 6):
                rows = [dict(r) for r in board["rows"]]
                rows[step % len(rows)]["price"] = round(rows[step % len(rows)]["price"] + 0.5, 2)
                if step % 2 == 0:
                    rows.reverse()
                if step == 4:
                    rows = rows[:-1]  # a row leaves the board
                board = dict(board, as_of_ms=AS_OF_MS + step * 1000, rows=rows)
                payload = json.dumps(board)
                await redis.set(BOARD, payload)
                await redis.publish(BOARD, payload)
                await page.wait_for_function(
                    "(expected) => {"
                    " const held = window.mdpDashboard.client.boards.get('scanner:top_volume');"
                    " return held && held.doc && held.doc.as_of_ms === expected; }",
                    arg=board["as_of_ms"],
                )
                held = await page.evaluate(
                    "() => window.mdpDashboard.client.boards.get('scanner:top_volume').doc"
                )
                stored = json.loads(await redis.get(BOARD))
                assert held == project(stored, "symbol", frozenset(fields))
                assert any(set(row) - set(fields) for row in stored["rows"])
            assert await page.evaluate("() => window.mdpDashboard.client.gaps") == 0
            assert wds.stats.deltas_out >= 4  # the first publication may go whole
            assert errors == []
        finally:
            await browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    import os

    directory = Path(os.environ.get("MDP_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
