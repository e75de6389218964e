"""The dashboard in a real headless Chromium, against the SCP and a stand-in WDS.

The stand-in WDS speaks protocol v1 (auth with a token the SCP issued and the WDS verifies,
subscribe with snapshots, get, unsubscribe, ping, live updates) over synthetic leaderboard,
quote, range, trades, news and alert documents, so the test exercises exactly what the
browser sees: login, every widget filling, a row click retargeting the quote panel, sorting and
filters, and the connection badge through a WDS outage and recovery.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; without it the test skips,
except under ``CI=true`` where it fails. Every wait is on a page condition with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mdp_core.clock import ManualClock
from mdp_core.ports import free_port as _free_port  # below the ephemeral range
from mdp_core.settings import Secret, load
from mdp_core.token import TokenError, verify_token
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

pytestmark = pytest.mark.browser

# Screenshots go to MDP_SCREENSHOT_DIR when set (docs/screenshots refreshes the documentation's
# pictures), else to the test's temporary directory, so a plain test run leaves the tree alone.
SCREENSHOT_DIR_VARIABLE = "MDP_SCREENSHOT_DIR"
TOKEN_SECRET = "browser-test-wds-secret"
PASSWORD = "browser-test-password"
TIMEOUT_MS = 30_000  # generous: CI machines and shared 2-core boxes are slow
AS_OF_MS = int(datetime(2026, 11, 23, 15, 12, 30, tzinfo=UTC).timestamp() * 1000)
#: The market's clock stands at AS_OF (speed 0): the synthetic data is current whatever the
#: hour the test runs, so nothing is dimmed as stale and the header clock is the same.
MARKET_AT_AS_OF: dict[str, Any] = {
    "market_clock": ManualClock(AS_OF_MS * 1_000_000),
    "market_speed": 0.0,
}


# --------------------------------------------------------------------------------------------
# synthetic market


def _row(
    rank: int, symbol: str, price: float, prev_close: float, open_: float, **extra: Any
) -> dict[str, Any]:
    change = round(price - prev_close, 4)
    row: dict[str, Any] = {
        "rank": rank,
        "symbol": symbol,
        "trading_day": "2026-11-23",
        "price": price,
        "open": open_,
        "high": round(price * 1.04, 2),
        "low": round(open_ * 0.97, 2),
        "volume": 12_000,
        "vwap": price,
        "accumulated_volume": extra.pop("volume", 1_000_000),
        "day_vwap": round((price + open_) / 2, 4),
        "official_open": open_,
        "avg_volume": 400_000.0,
        "relative_volume": 0.4,  # whole-day ratio; the dashboard shows the time-of-day one
        "rvol_tod": extra.pop("rvol", 2.5),
        "free_float": extra.pop("free_float", 12_500_000),
        "prev_close": prev_close,
        "prev_volume": 380_000,
        "change": change,
        "pct_change": round(100 * change / prev_close, 2),
        "change_since_open": round(price - open_, 4),
        "pct_change_since_open": round(100 * (price - open_) / open_, 2),
        "halted": extra.pop("halted", False),
        "news": extra.pop("news", False),
        "start_ms": AS_OF_MS - 1000,
        "end_ms": AS_OF_MS,
    }
    # The exact session figures of the record (the latest bar's high/low above are narrower).
    pre = {"first_ms": AS_OF_MS - 3_600_000, "high": round(open_ * 1.02, 2),
           "high_ms": AS_OF_MS - 3_000_000, "low": round(open_ * 0.95, 2),
           "low_ms": AS_OF_MS - 3_500_000}  # fmt: skip
    regular = {"first_ms": AS_OF_MS - 2_500_000, "high": round(price * 1.05, 2),
               "high_ms": AS_OF_MS - 60_000, "low": round(open_ * 0.97, 2),
               "low_ms": AS_OF_MS - 2_400_000}  # fmt: skip
    day_high, day_low = max(pre["high"], regular["high"]), min(pre["low"], regular["low"])
    row.update(pre_market=pre, regular=regular, after_hours=None, day_high=day_high,
               day_low=day_low)  # fmt: skip
    row.update(extra)
    return row


def _board(name: str, rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    return {
        "board": name,
        "status": "live",
        "session": "regular",
        "trading_day": "2026-11-23",
        "as_of_ms": AS_OF_MS,
        "metric": metric,
        "rows": rows,
    }


ROWS = [
    _row(1, "ACME", 14.20, 9.80, 10.10, volume=8_400_000, rvol=9.4, news=True),
    _row(2, "BOLT", 6.85, 5.10, 5.30, volume=3_100_000, rvol=5.2, free_float=4_200_000),
    _row(3, "CRUX", 3.12, 2.60, 2.71, volume=2_250_000, rvol=3.1, halted=True),
    _row(4, "DYNE", 22.40, 19.90, 20.15, volume=1_900_000, rvol=1.8, news=True),
    _row(5, "EVOX", 1.87, 1.62, 1.66, volume=5_600_000, rvol=7.7),
    _row(6, "FLUX", 41.05, 37.50, 38.20, volume=950_000, rvol=1.3),
    _row(7, "GRIT", 8.64, 7.80, 8.02, volume=1_400_000, rvol=2.2),
    _row(8, "HALO", 12.33, 11.40, 11.55, volume=720_000, rvol=1.1),
]


def _news(index: int, symbol: str, title: str) -> dict[str, Any]:
    return {
        "link": f"https://news.example.test/{index}",
        "title": title,
        "source": "example wire",
        "published_ms": AS_OF_MS - index * 60_000,
        "tickers": [symbol],
        "sentiment": "positive" if index % 2 == 0 else "neutral",
    }


def _alert(symbol: str, direction: str, price: float, minutes_ago: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "direction": direction,
        "session": "regular",
        "price": price,
        "previous": price * (0.99 if direction == "high" else 1.01),
        "last": price,
        "as_of_ms": AS_OF_MS - minutes_ago * 60_000,
        "note": f"new {'high' if direction == 'high' else 'low'} of day",
    }


def market() -> dict[str, Any]:
    """Every feed's current value: board documents, quotes, ranges, trades, news, alerts."""
    by_gain = sorted(ROWS, key=lambda r: -r["pct_change_since_open"])
    by_gap = sorted(ROWS, key=lambda r: -r["pct_change"])
    by_volume = sorted(ROWS, key=lambda r: -r["accumulated_volume"])
    feeds: dict[str, Any] = {
        "scanner:top_gainers": _board("top_gainers", by_gain, "pct_change_since_open"),
        "scanner:top_gappers": _board("top_gappers", by_gap, "pct_change"),
        "scanner:top_volume": _board("top_volume", by_volume, "accumulated_volume"),
        "trades:top": {
            "as_of_ms": AS_OF_MS,
            "window_s": 300,
            "trades": [
                {
                    "symbol": r["symbol"],
                    "price": r["price"],
                    "size": 50_000 - i * 4_000,
                    "value": round(r["price"] * (50_000 - i * 4_000), 2),
                    "timestamp_ms": AS_OF_MS - i * 7_000,
                    "exchange": 4,
                    "trade_id": f"t{i}",
                }
                for i, r in enumerate(ROWS[:6])
            ],
        },
        "news:latest": [
            _news(i, r["symbol"], f"{r['symbol']} announces a material development #{i}")
            for i, r in enumerate(ROWS[:6])
        ],
        "alerts:hod": [_alert(r["symbol"], "high", r["high"], i) for i, r in enumerate(ROWS[:5])],
        "alerts:lod": [_alert(r["symbol"], "low", r["low"], i + 2) for i, r in enumerate(ROWS[5:])],
    }
    for r in ROWS:
        quote = {k: v for k, v in r.items() if k != "rank"}
        feeds[f"quote:{r['symbol']}"] = quote
        feeds[f"range:{r['symbol']}"] = {
            "symbol": r["symbol"],
            "pre_market_high": round(r["open"] * 1.02, 2),
            "pre_market_low": round(r["open"] * 0.95, 2),
            "regular_high": r["high"],
            "regular_low": r["low"],
            "day_high": r["high"],
            "day_low": round(r["open"] * 0.95, 2),
        }
        feeds[f"news:ticker:{r['symbol']}"] = [
            _news(100 + i, r["symbol"], f"{r['symbol']} headline {i}") for i in range(3)
        ]
    return feeds


# --------------------------------------------------------------------------------------------
# stand-in WDS


@dataclass
class StandInWds:
    """A protocol-v1 WDS over an in-memory feed store, restartable on the same port.

    Port 0 (the default) lets the first start bind any free port and keeps it for restarts:
    a port picked beforehand by bind-then-close could be taken meanwhile by another xdist
    worker's server.
    """

    port: int = 0
    feeds: dict[str, Any] = field(default_factory=market)
    clients: dict[Any, set[str]] = field(default_factory=dict)
    auth_count: int = 0
    server: Any = None
    authed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self.server = await serve(self._session, "127.0.0.1", self.port)
        if self.port == 0:
            self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()
        self.clients.clear()

    def _snapshots(self, feed: str, limit: int) -> list[dict[str, Any]]:
        if feed not in self.feeds:
            return []
        data = self.feeds[feed]
        return [
            {
                "op": "snapshot",
                "feed": feed,
                "data": data[:limit] if isinstance(data, list) else data,
            }
        ]

    async def wait_auths(self, count: int) -> None:
        """Return once ``count`` auth messages have been accepted in total."""
        async with self.authed:
            await self.authed.wait_for(lambda: self.auth_count >= count)

    async def publish(self, feed: str, data: Any) -> None:
        """Store and send an update (list feeds: ``data`` is one new element)."""
        current = self.feeds.get(feed)
        if isinstance(current, list):
            self.feeds[feed] = [data, *current]
        else:
            self.feeds[feed] = data
        message = json.dumps({"op": "update", "feed": feed, "data": data})
        for websocket, subscribed in list(self.clients.items()):
            if feed in subscribed:
                with contextlib.suppress(Exception):
                    await websocket.send(message)

    async def _session(self, websocket: Any) -> None:
        subscribed: set[str] = set()
        authed = False
        async for raw in websocket:
            message = json.loads(raw)
            if message.get("op") == "auth":
                try:
                    claims = verify_token(
                        TOKEN_SECRET, message.get("token") or "", datetime.now(UTC).timestamp()
                    )
                except TokenError:
                    await websocket.close(4001, "token invalid")
                    return
                authed = True
                async with self.authed:
                    self.auth_count += 1
                    self.authed.notify_all()
                self.clients[websocket] = subscribed
                reply = {
                    "op": "auth_ok",
                    "expires_at": claims.expires_at,
                    "feeds": list(claims.feeds),
                    "server": "stand-in",
                }
                await websocket.send(json.dumps(reply))
            elif not authed:
                await websocket.close(4001, "unauthenticated")
                return
            else:
                await self._handle(websocket, message, subscribed)
        self.clients.pop(websocket, None)

    async def _handle(self, websocket: Any, message: dict[str, Any], subscribed: set[str]) -> None:
        op, ident = message.get("op"), message.get("id")
        limit = int(message.get("limit") or 100)
        feeds = [f for f in message.get("feeds", []) if isinstance(f, str)]
        if op == "subscribe":
            subscribed.update(feeds)
            await websocket.send(json.dumps({"op": "subscribed", "id": ident, "feeds": feeds}))
            for feed in feeds if message.get("snapshot") else []:
                for snap in self._snapshots(feed, limit):
                    await websocket.send(json.dumps(snap))
        elif op == "unsubscribe":
            subscribed.difference_update(feeds)
            await websocket.send(json.dumps({"op": "unsubscribed", "id": ident, "feeds": feeds}))
        elif op == "get":
            for snap in self._snapshots(str(message.get("feed")), limit):
                await websocket.send(json.dumps({**snap, "id": ident}))
        elif op == "ping":
            await websocket.send(json.dumps({"op": "pong", "id": ident}))


@pytest.fixture
async def wds() -> AsyncIterator[StandInWds]:
    server = StandInWds()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def scp(wds: StandInWds) -> AsyncIterator[ControlPlane]:
    settings = load(
        ScpSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wds_url=wds.url,
        wds_token_secret=Secret(TOKEN_SECRET),
        session_secret=Secret("browser-test-session-secret"),
        database_url=Secret("sqlite:///:memory:"),
    )
    users = UserStore(
        [User("trader", "admin", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))]
    )
    plane = ControlPlane(
        settings, users=users, redis=_Heartbeats(), revocations=_Revocations(), **MARKET_AT_AS_OF
    )
    await plane.start()
    yield plane
    await plane.stop()


class _Revocations:
    """The revoked-session set of the WDC, in memory (the stand-in WDS does not read it)."""

    def __init__(self) -> None:
        self.members: dict[str, float] = {}

    async def zadd(self, name: str, mapping: dict[str, float]) -> int:
        del name
        self.members.update(mapping)
        return len(mapping)

    async def zremrangebyscore(self, name: str, min: float, max: float) -> int:
        del name, min, max
        return 0


class _Heartbeats:
    """One listener heartbeat, written now, for the health page."""

    def __init__(self) -> None:
        document = {
            "service": "listener",
            "instance": "demo-1",
            "version": "0.1.0",
            "status": "running",
            "ts_ms": int(datetime.now(UTC).timestamp() * 1000),
            "figures": {"messages": 1234, "reconnects": 0},
        }
        self.values = {"mdp:heartbeat:listener:demo-1": json.dumps(document)}

    async def _keys(self) -> AsyncIterator[Any]:
        for key in list(self.values):
            yield key.encode()

    def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[Any]:
        del match, count
        return self._keys()

    async def mget(self, keys: Any, *args: Any) -> list[Any]:
        del args
        return [self.values.get(k.decode() if isinstance(k, bytes) else k) for k in keys]


# --------------------------------------------------------------------------------------------
# the test

WIDGETS = ("w-gainers", "w-gappers", "w-volume", "w-trades", "w-hod", "w-lod", "w-news")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get(SCREENSHOT_DIR_VARIABLE) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _png_size(path: Path) -> int:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path.stat().st_size


async def test_dashboard_end_to_end(scp: ControlPlane, wds: StandInWds, shots: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1480, "height": 1000})
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))

            # Anonymous: the dashboard redirects to the login form.
            await page.goto(f"{scp.url}/")
            assert page.url.endswith("/login")
            await page.fill("input[name=user]", "trader")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{scp.url}/")

            # One connection, authenticated with the SCP's token; every widget fills.
            await page.wait_for_selector("#conn[data-state=live]")
            for widget in WIDGETS:
                await page.wait_for_selector(f"#{widget}[data-filled=true]")
            assert wds.auth_count == 1
            assert await page.locator("#w-gainers tbody tr").count() == len(ROWS)
            first = page.locator("#w-gainers tbody tr").first
            assert await first.get_attribute("data-key") == "ACME"  # sorted by % since open
            assert "halted" in (
                await page.locator('#w-gainers tr[data-key="CRUX"]').get_attribute("class") or ""
            )
            assert await page.locator('#w-volume tr[data-key="ACME"] td.has-news').count() == 1

            # A live update changes one cell in place and flashes it.
            acme = dict(market()["quote:ACME"], price=15.55)
            doc = dict(wds.feeds["scanner:top_gainers"])
            doc["rows"] = [acme if r["symbol"] == "ACME" else r for r in doc["rows"]]
            await wds.publish("scanner:top_gainers", doc)
            price_cell = page.locator('#w-gainers tr[data-key="ACME"] td.col-price')
            await page.wait_for_function(
                "() => document.querySelector('#w-gainers tr[data-key=\"ACME\"] td.col-price')"
                "?.textContent === '15.55'"
            )
            assert (await price_cell.get_attribute("data-flash") or "").startswith("up")

            # A list feed update prepends one element.
            await wds.publish("news:latest", _news(99, "BOLT", "BOLT wins a large contract"))
            await page.wait_for_function(
                "() => document.querySelector('#w-news li')?.textContent.includes('large contract')"
            )

            # Every trade its own row: two without an id told apart by their sequence number,
            # and one id on two exchanges (the server counts all four).
            def _print(exchange: int, trade_id: str, sequence: int) -> dict[str, Any]:
                return {
                    "symbol": "ACME",
                    "price": 15.0,
                    "size": 1_000,
                    "value": 15_000.0,
                    "exchange": exchange,
                    "timestamp_ms": AS_OF_MS,
                    "trade_id": trade_id,
                    **({} if trade_id else {"sequence": sequence}),
                }

            trades = [_print(4, "", 7), _print(4, "", 8), _print(4, "9", 1), _print(11, "9", 2)]
            await wds.publish(
                "trades:top", {"as_of_ms": AS_OF_MS, "window_s": 300, "trades": trades}
            )
            await page.wait_for_function(
                "() => document.querySelectorAll('#w-trades tbody tr').length === 4"
            )
            keys = await page.locator("#w-trades tbody tr").evaluate_all(
                "rows => rows.map(row => row.dataset.key)"
            )
            assert sorted(keys) == sorted(
                f"ACME|{x}|{i}|{AS_OF_MS}" for x, i in ((4, "q7"), (4, "q8"), (4, "i9"), (11, "i9"))
            )

            # Clicking a row retargets the quote panel (quote, range and the symbol's news).
            await page.click('#w-gappers tr[data-key="BOLT"]')
            await page.wait_for_selector('#w-quote[data-symbol="BOLT"][data-filled=true]')
            await page.wait_for_selector("#w-quote .quote-news[data-filled=true]")
            await page.wait_for_selector("#w-quote .range-row")
            ranges = await page.locator("#w-quote .range").inner_text()
            assert "Regular" in ranges
            assert "Day" in ranges
            assert "6.85" in await page.locator("#w-quote .figures").inner_text()
            await page.click('#w-news button.ticker:text("ACME")')
            await page.wait_for_selector('#w-quote[data-symbol="ACME"][data-filled=true]')

            # Sorting by a header click, then the threshold filters (persisted).
            await page.click("#w-volume th[data-key=price]")
            await page.wait_for_function(
                "() => document.querySelector('#w-volume tbody tr')?.dataset.key === 'FLUX'"
            )
            await page.fill("#filters input[name=minPrice]", "5")
            await page.wait_for_function(
                "() => !document.querySelector('#w-gainers tr[data-key=\"EVOX\"]')"
                " && !document.querySelector('#w-gainers tr[data-key=\"CRUX\"]')"
            )
            saved = await page.evaluate("() => JSON.parse(localStorage.getItem('mdp.filters'))")
            assert saved["minPrice"] == 5
            await page.fill("#filters input[name=minPrice]", "")
            await page.wait_for_function(
                "() => document.querySelectorAll('#w-gainers tbody tr').length === 8"
            )

            await page.click("#w-volume th[data-key=volume]")
            await page.wait_for_function(
                "() => document.querySelector('#w-volume tbody tr')?.dataset.key === 'ACME'"
            )
            await page.screenshot(path=str(shots / "dashboard.png"))
            assert _png_size(shots / "dashboard.png") > 10_000

            # Token refresh: a fresh token is fetched and sent on the open socket.
            before = wds.auth_count
            await page.evaluate("() => window.mdpDashboard.client.refreshToken()")
            await page.wait_for_function(
                "() => document.querySelector('#conn').dataset.state === 'live'"
            )
            await asyncio.wait_for(wds.wait_auths(before + 1), timeout=TIMEOUT_MS / 1000)
            assert wds.auth_count == before + 1

            # A phone-sized screen: one column, nothing wider than the screen.
            await page.set_viewport_size({"width": 390, "height": 844})
            overflow = await page.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0
            await page.screenshot(path=str(shots / "dashboard-phone.png"))
            await page.set_viewport_size({"width": 1480, "height": 1000})

            # The WDS goes away: the badge says so.
            await wds.stop()
            await page.wait_for_selector("#conn[data-state=offline]")
            assert "offline" in await page.locator("#conn").inner_text()

            # It comes back with new data: the page re-authenticates, re-subscribes, repaints.
            wds.feeds["scanner:top_gainers"] = _board(
                "top_gainers",
                [_row(1, "ZETA", 9.99, 5.00, 5.50, rvol=12.0)],
                "pct_change_since_open",
            )
            await wds.start()
            await page.wait_for_selector("#conn[data-state=live]", timeout=45_000)
            await page.wait_for_selector('#w-gainers tr[data-key="ZETA"]')
            assert await page.locator("#w-gainers tbody tr").count() == 1
            assert wds.auth_count >= 2

            # The quote panel's subscriptions came back too.
            await wds.publish("quote:ACME", dict(market()["quote:ACME"], price=16.25))
            await page.wait_for_function(
                "() => document.querySelector('#w-quote .figures')?.textContent.includes('16.25')"
            )
            assert errors == []
            assert not [m for m in console if "Content Security Policy" in m]

            # The health page lists the component from its heartbeat; an admin sees controls.
            health = await context.new_page()
            await health.goto(f"{scp.url}/admin")
            await health.wait_for_selector("#components tbody tr.status-running")
            assert "listener" in await health.locator("#components tbody").inner_text()
            await health.wait_for_selector("#controls:not([hidden])")
            await health.screenshot(path=str(shots / "health.png"))
        finally:
            await browser.close()


# --------------------------------------------------------------------------------------------
# the same dashboard against the real WDS (and the real Redis behind it)


@pytest.mark.integration
async def test_dashboard_with_the_real_wds(redis_db_url: str) -> None:
    require_browser()
    import redis.asyncio as aioredis
    from playwright.async_api import async_playwright

    from mdp_wds import WdsSettings, WidgetServer

    redis = aioredis.Redis.from_url(redis_db_url)
    for feed, value in market().items():
        if isinstance(value, list):
            # List feeds are newest first: push the oldest first.
            for element in reversed(value):
                await redis.lpush(feed, json.dumps(element))
        else:
            await redis.set(feed, json.dumps(value))
    scp_port = _free_port()
    wds_server = WidgetServer(
        load(
            WdsSettings,
            environ={},
            host="127.0.0.1",
            port=0,
            wdc_redis_url=redis_db_url,
            token_secret=Secret(TOKEN_SECRET),
            allowed_origins=(f"http://127.0.0.1:{scp_port}",),
        )
    )
    await wds_server.start()
    settings = load(
        ScpSettings,
        environ={},
        host="127.0.0.1",
        port=scp_port,
        wds_url=wds_server.url,
        wds_token_secret=Secret(TOKEN_SECRET),
        database_url=Secret("sqlite:///:memory:"),
        wdc_redis_url=redis_db_url,
    )
    users = UserStore(
        [User("trader", "viewer", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))]
    )
    plane = ControlPlane(settings, users=users, redis=_Heartbeats(), **MARKET_AT_AS_OF)
    await plane.start()
    try:
        assert await wds_server.hub.wait_connected(TIMEOUT_MS / 1000)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
            )
            try:
                page = await browser.new_page(viewport={"width": 1480, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                await page.goto(f"{plane.url}/login")
                await page.fill("input[name=user]", "trader")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#conn[data-state=live]")
                for widget in WIDGETS:
                    await page.wait_for_selector(f"#{widget}[data-filled=true]")

                # A value published on the channel reaches the table through the real WDS.
                doc = dict(market()["scanner:top_gainers"])
                doc["rows"] = [
                    dict(r, price=15.55) if r["symbol"] == "ACME" else r for r in doc["rows"]
                ]
                doc["as_of_ms"] = AS_OF_MS + 1000
                await redis.publish("scanner:top_gainers", json.dumps(doc))
                await page.wait_for_function(
                    "() => document.querySelector('#w-gainers tr[data-key=\"ACME\"] td.col-price')"
                    "?.textContent === '15.55'"
                )
                await page.click('#w-volume tr[data-key="DYNE"]')
                await page.wait_for_selector('#w-quote[data-symbol="DYNE"][data-filled=true]')
                await page.wait_for_selector("#w-quote .quote-news[data-filled=true]")
                await redis.publish(
                    "news:ticker:DYNE", json.dumps(_news(500, "DYNE", "DYNE live headline"))
                )
                await page.wait_for_function(
                    "() => document.querySelector('#w-quote .quote-news li')"
                    ".textContent.includes('DYNE live headline')"
                )
            finally:
                await browser.close()
    finally:
        await plane.stop()
        await wds_server.stop()
        await redis.aclose()
