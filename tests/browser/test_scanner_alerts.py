"""The scanner's alert streams on the dashboard, in a real headless Chromium.

Unusual volume, news-driven movers and halts each get their own widget, filled from the
snapshot, newest first by event time, and a live alert lands where its time puts it.
"""

from __future__ import annotations

from typing import Any

import pytest

from mdp_scp import ControlPlane
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

from .test_dashboard import AS_OF_MS, PASSWORD, TIMEOUT_MS, StandInWds, scp, wds

pytestmark = pytest.mark.browser

__all__ = ["scp", "wds"]  # the fixtures, imported for pytest

MINUTE = 60_000


def _volume(symbol: str, threshold: float, minutes_ago: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "trading_day": "2026-11-23",
        "threshold": threshold,
        "rvol_tod": threshold + 0.4,
        "volume": 900_000,
        "price": 4.2,
        "pct_change": 12.0,
        "note": f"RVol {threshold + 0.4:.1f}x crossed {threshold:g}x",
        "as_of_ms": AS_OF_MS - minutes_ago * MINUTE,
    }


def _news_mover(symbol: str, minutes_ago: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "trading_day": "2026-11-23",
        "reason": "price",
        "headline": f"{symbol} wins a contract",
        "source": "wire",
        "link": f"https://n/{symbol}",
        "published_ms": AS_OF_MS - (minutes_ago + 3) * MINUTE,
        "base_price": 10.0,
        "price": 10.7,
        "pct_move": 7.0,
        "rvol_tod": 2.0,
        "minutes_since_news": 3.0,
        "note": "+7.0% since the news, 3 min after it",
        "as_of_ms": AS_OF_MS - minutes_ago * MINUTE,
    }


def _halt(symbol: str, kind: str, minutes_ago: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "trading_day": "2026-11-23",
        "kind": kind,
        "high_limit": 5.5,
        "low_limit": 4.5,
        "price": 5.5 if kind == "halt" else 5.62,
        "halted_ms": None,
        "note": "LULD pause; band $4.50-$5.50" if kind == "halt" else "resumed at $5.62",
        "as_of_ms": AS_OF_MS - minutes_ago * MINUTE,
    }


async def test_alert_streams_fill_in_event_time_order(scp: ControlPlane, wds: StandInWds) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    wds.feeds["alerts:volume"] = [_volume("ACME", 5, 1), _volume("BOLT", 2, 4)]
    wds.feeds["alerts:news"] = [_news_mover("CRUX", 2)]
    wds.feeds["alerts:halts"] = [_halt("DYNE", "resume", 1), _halt("DYNE", "halt", 6)]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1480, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{scp.url}/login")
            await page.fill("input[name=user]", "trader")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{scp.url}/")
            for widget in ("w-volume-alerts", "w-news-movers", "w-halts"):
                await page.wait_for_selector(f"#{widget}[data-filled=true]")

            volume = page.locator("#w-volume-alerts li")
            assert await volume.count() == 2
            assert "RVOL 5x" in await volume.first.inner_text()
            news = await page.locator("#w-news-movers li").first.inner_text()
            assert "CRUX wins a contract" in news
            halts = page.locator("#w-halts li")
            assert "RESUME" in await halts.first.inner_text()
            assert "band $4.50-$5.50" in await halts.nth(1).inner_text()

            # A late alert (older than the newest) is inserted where its time puts it.
            await wds.publish("alerts:volume", _volume("EVOX", 3, 2))
            await page.wait_for_function(
                "() => document.querySelectorAll('#w-volume-alerts li').length === 3"
            )
            texts = await volume.all_inner_texts()
            assert [t.split()[1] for t in texts] == ["ACME", "EVOX", "BOLT"]
            # The time-of-day RVol is what the boards show.
            cell = page.locator('#w-volume tr[data-key="ACME"] td.col-rvol')
            assert (await cell.inner_text()).startswith("9.4")
            assert errors == []
        finally:
            await browser.close()
