"""What a trader reads at a glance, in a real headless Chromium (issue 17).

The SCP runs with a market clock the test sets (speed 0: the page's clock stands still between
answers, so every figure is exact), against the stand-in WDS of ``test_dashboard``: the header's
session clock (holidays included), symbol search and the followed symbol across reloads, the
quote panel's day high/low from the exact session figures (not the latest bar's), alert lists
in event-time order whatever the arrival order, stale dimming with "as of" when the feed lags
or the connection drops, boards that say what they rank, and a layout that fits 900 px and a
phone without clipping a table.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mdp_core.clock import ET, ManualClock
from mdp_core.settings import Secret, load
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

from .test_dashboard import (
    AS_OF_MS,
    PASSWORD,
    SCREENSHOT_DIR_VARIABLE,
    TIMEOUT_MS,
    TOKEN_SECRET,
    StandInWds,
    _alert,
    _Heartbeats,
    market,
)

pytestmark = pytest.mark.browser

#: AS_OF_MS is Monday 2026-11-23 10:12:30 ET: the regular session.
REGULAR = datetime(2026, 11, 23, 10, 12, 30, tzinfo=ET)
THANKSGIVING = datetime(2026, 11, 26, 12, 0, tzinfo=ET)
PRE_MARKET = datetime(2026, 11, 24, 7, 5, tzinfo=ET)


@pytest.fixture
async def wds() -> AsyncIterator[StandInWds]:
    server = StandInWds()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(REGULAR)


@pytest.fixture
async def scp(wds: StandInWds, clock: ManualClock) -> AsyncIterator[ControlPlane]:
    settings = load(
        ScpSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wds_url=wds.url,
        wds_token_secret=Secret(TOKEN_SECRET),
        session_secret=Secret("browser-test-session-secret"),
        # In memory: the default is a file in the working directory, the checkout.
        database_url=Secret("sqlite:///:memory:"),
    )
    users = UserStore(
        [User("trader", "admin", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))]
    )
    plane = ControlPlane(
        settings, users=users, redis=_Heartbeats(), market_clock=clock, market_speed=0.0
    )
    await plane.start()
    yield plane
    await plane.stop()


@pytest.fixture
async def page(scp: ControlPlane) -> AsyncIterator[Any]:
    """A logged-in dashboard at 1480 px with every widget live; fails on any page error."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1480, "height": 1000})
            tab = await context.new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            await tab.goto(f"{scp.url}/login")
            await tab.fill("input[name=user]", "trader")
            await tab.fill("input[name=password]", PASSWORD)
            await tab.click("button[type=submit]")
            await tab.wait_for_url(f"{scp.url}/")
            await tab.wait_for_selector("#conn[data-state=live]")
            await tab.wait_for_selector("#w-gainers[data-filled=true]")
            yield tab
            assert errors == []
        finally:
            await browser.close()


async def _refresh_clock(page: Any) -> None:
    await page.evaluate("() => window.mdpDashboard.market.refresh()")


async def test_the_header_clock_shows_market_time_in_et_and_the_session(
    page: Any, clock: ManualClock
) -> None:
    badge = page.locator("#market-clock")
    await page.wait_for_selector("#market-clock[data-session=regular]")
    assert await badge.inner_text() == "10:12:30 ET \u00b7 Market open"

    clock.set(THANKSGIVING)
    await _refresh_clock(page)
    await page.wait_for_selector("#market-clock[data-session=closed]")
    assert await badge.inner_text() == "12:00:00 ET \u00b7 Closed \u00b7 Thanksgiving Day"

    clock.set(PRE_MARKET)
    await _refresh_clock(page)
    await page.wait_for_selector("#market-clock[data-session=pre_market]")
    assert await badge.inner_text() == "07:05:00 ET \u00b7 Pre-market"


async def test_search_opens_the_quote_panel_and_the_symbol_survives_a_reload(page: Any) -> None:
    search = page.locator("#search input[name=symbol]")
    # Another test of this module may have followed a symbol already (the layout is saved on
    # the server): search for one that is not followed yet.
    before = await page.locator("#w-quote").get_attribute("data-symbol")
    target = "HALO" if before == "BOLT" else "BOLT"
    await search.fill("$$")
    await search.press("Enter")
    assert await page.locator("#w-quote").get_attribute("data-symbol") == before

    await search.fill(target.lower())
    await search.press("Enter")
    await page.wait_for_selector(f'#w-quote[data-symbol="{target}"][data-filled=true]')
    assert await page.locator("#w-quote .quote-symbol").inner_text() == target
    # The suggestions are the symbols on the boards.
    await search.focus()
    options = await page.eval_on_selector_all("#symbol-list option", "os => os.map(o => o.value)")
    assert {"ACME", "BOLT", "HALO"} <= set(options)

    await page.reload()
    await page.wait_for_selector(f'#w-quote[data-symbol="{target}"][data-filled=true]')


async def test_the_quote_panel_shows_the_days_high_and_low_not_the_last_bars(
    page: Any, wds: StandInWds
) -> None:
    # The record of ZR as the processor writes it: its latest bar spans 3.10-3.10, the day
    # went from 2.78 (pre-market) to 3.22 (regular session).
    zr = dict(market()["quote:ACME"], symbol="ZR", price=3.10, high=3.10, low=3.10)
    zr.update(
        day_high=3.22,
        day_low=2.78,
        pre_market={"first_ms": 1, "high": 3.05, "high_ms": 2, "low": 2.78, "low_ms": 3},
        regular={"first_ms": 4, "high": 3.22, "high_ms": 5, "low": 2.95, "low_ms": 6},
        after_hours=None,
    )
    wds.feeds["quote:ZR"] = zr
    search = page.locator("#search input[name=symbol]")
    await search.fill("ZR")
    await search.press("Enter")
    await page.wait_for_selector('#w-quote[data-symbol="ZR"][data-filled=true]')
    figures = page.locator("#w-quote .figures")
    day_high = figures.locator("dt:text-is('Day high') + dd")
    day_low = figures.locator("dt:text-is('Day low') + dd")
    assert await day_high.inner_text() == "3.22"
    assert await day_low.inner_text() == "2.78"
    ranges = page.locator("#w-quote .range-row")
    assert await ranges.count() == 3
    assert await page.locator(
        '#w-quote .range-row[data-session="pre_market"] .num'
    ).inner_text() == ("H 3.05 \u00b7 L 2.78")
    assert await page.locator('#w-quote .range-row[data-session="regular"] .num').inner_text() == (
        "H 3.22 \u00b7 L 2.95"
    )
    assert await page.locator('#w-quote .range-row[data-session="day"] .num').inner_text() == (
        "H 3.22 \u00b7 L 2.78"
    )

    # A new extreme arrives with the next record.
    await wds.publish("quote:ZR", dict(zr, price=3.30, high=3.30, day_high=3.30))
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#w-quote .figures dt')]"
        ".find(dt => dt.textContent === 'Day high')?.nextElementSibling.textContent === '3.30'"
    )


async def test_alerts_stay_newest_first_by_event_time_whatever_the_arrival_order(
    page: Any, wds: StandInWds
) -> None:
    await page.wait_for_selector("#w-hod[data-filled=true]")
    # Late arrivals: an alert from 3.5 minutes ago, then one from 30 s ago, then a fresh one.
    for minutes in (3.5, 0.5, -1.0):
        await wds.publish("alerts:hod", _alert("ZR", "high", 3.2, minutes))  # type: ignore[arg-type]
    await page.wait_for_function("() => document.querySelectorAll('#w-hod li').length === 8")
    times = await page.eval_on_selector_all(
        "#w-hod li time", "ts => ts.map(t => [Date.parse(t.dateTime), t.textContent])"
    )
    stamps = [stamp for stamp, _ in times]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == AS_OF_MS + 60_000
    assert all(text.endswith(" ET") for _, text in times)
    assert times[0][1] == "10:13:30 ET"


async def test_stale_rows_are_dimmed_with_as_of_when_the_feed_lags_or_the_link_drops(
    page: Any, wds: StandInWds, clock: ManualClock
) -> None:
    await page.click('#w-gappers tr[data-key="BOLT"]')
    await page.wait_for_selector('#w-quote[data-symbol="BOLT"][data-filled=true]')
    assert await page.locator(".widget.stale").count() == 0

    # The market moved on ten minutes and no bar came: the feed is down.
    clock.set(REGULAR + timedelta(minutes=10))
    await _refresh_clock(page)
    await page.wait_for_selector("#w-gainers.stale")
    assert (
        await page.locator("#w-gainers h2 .meta").inner_text() == "stale \u00b7 as of 10:12:30 ET"
    )
    assert "as of 10:12:30 ET" in await page.locator("#w-quote .quote-status").inner_text()
    opacity = await page.eval_on_selector(
        "#w-gainers tbody tr", "tr => Number(getComputedStyle(tr).opacity)"
    )
    assert opacity < 1

    # Bars catch up: bright again.
    clock.set(REGULAR)
    await _refresh_clock(page)
    await page.wait_for_function("() => !document.querySelector('.widget.stale')")
    assert await page.locator("#w-gainers h2 .meta").inner_text() == "regular \u00b7 10:12:30 ET"

    # Outside the sessions no bar is due, so an old board is not stale.
    clock.set(THANKSGIVING)
    await _refresh_clock(page)
    await page.wait_for_selector("#market-clock[data-session=closed]")
    assert await page.locator(".widget.stale").count() == 0

    # The connection drops: everything shown is as of its newest data.
    await wds.stop()
    await page.wait_for_selector("#conn[data-state=offline]")
    await page.wait_for_selector("#w-volume.stale")
    assert "as of 10:12:30 ET" in await page.locator("#w-volume h2 .meta").inner_text()


async def test_every_board_says_what_it_ranks(page: Any) -> None:
    expected = {"w-gainers": "pctOpen", "w-gappers": "pct", "w-volume": "volume"}
    for widget, key in expected.items():
        ranked = page.locator(f"#{widget} th.ranked")
        assert await ranked.count() == 1
        assert await ranked.get_attribute("data-key") == key
        assert await ranked.get_attribute("aria-sort") == "descending"
        assert await page.locator(f"#{widget} .subtitle").inner_text()
    assert "Open %" in await page.locator("#w-gainers .subtitle").inner_text()
    assert "since open" in (await page.locator("#w-gainers h2").inner_text()).lower()
    assert "previous close" in await page.locator("#w-gappers .subtitle").inner_text()
    # The ranked figure sits next to the price, in order (the sparkline is no figure).
    headers = await page.eval_on_selector_all("#w-gainers th", "ths => ths.map(t => t.dataset.key)")
    assert [h for h in headers if h != "spark"][:3] == ["symbol", "price", "pctOpen"]
    values = await page.eval_on_selector_all(
        "#w-gainers td.col-pctOpen", "tds => tds.map(t => parseFloat(t.textContent))"
    )
    assert values == sorted(values, reverse=True)
    help_text = await page.locator("#help").inner_text()
    assert "Ranked by Open %" in help_text
    assert "Ranked by Chg %" in help_text


@pytest.mark.parametrize("width", [900, 390])
async def test_the_layout_fits_without_clipping_a_table(
    page: Any, width: int, tmp_path: Path
) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    await page.wait_for_selector("#w-trades[data-filled=true]")
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    clipped = await page.evaluate(
        """() => [...document.querySelectorAll('.widget .scroll')]
            .filter(box => box.querySelector('table'))
            .filter(box => box.scrollWidth > box.clientWidth + 1)
            .map(box => box.closest('.widget').id)"""
    )
    assert clipped == []
    for widget in ("w-gainers", "w-gappers", "w-volume"):
        assert await page.locator(f"#{widget} th.ranked").is_visible()
    # The header (clock, connection, search, filters, account) wraps instead of overflowing.
    header = await page.eval_on_selector(".topbar", "bar => bar.scrollWidth - bar.clientWidth")
    assert header <= 0
    if width == 900:  # (the phone picture is test_dashboard's dashboard-phone.png)
        shots = Path(os.environ.get(SCREENSHOT_DIR_VARIABLE) or tmp_path)
        await page.screenshot(path=str(shots / "dashboard-900.png"))
