"""A Massive REST stub on loopback, answering from the same synthetic market as the stream.

Only the endpoints the platform calls are served (snapshots, previous close, daily and minute
aggregates, grouped daily bars, ticker list and details, last trade and quote, free float,
market status and holidays), with the wire shapes the official ``massive.RESTClient`` decodes.
``Authorization: Bearer <key>`` is checked; unknown query parameters are ignored as the real
API does. Fault modes answer 429 with ``Retry-After``, 500, or respond slowly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from mdp_core.clock import ET
from mdp_sim.faults import Faults
from mdp_sim.market import Market

__all__ = ["MassiveRestConfig", "MassiveRestMetrics", "MassiveRestServer"]

_encode = msgspec.json.Encoder().encode
_NS_PER_MS = 1_000_000
_MOVERS: Final = 20
_DEFAULT_PAGE: Final = 100
_MAX_PAGE: Final = 5_000
_SNAPSHOT_BASE: Final = "/v2/snapshot/locale/us/markets/stocks"
_TICKER_FIELDS: Final = frozenset(
    {"active", "cik", "currency_name", "locale", "market", "name", "primary_exchange", "ticker"}
    | {"type", "composite_figi", "share_class_figi", "last_updated_utc", "delisted_utc"}
)
"""Keys ``massive``'s ``Ticker`` model accepts (it is built with ``Ticker(**row)``)."""
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadParameter(ValueError):
    """A path or query value the stub cannot interpret (answered 400)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MassiveRestConfig:
    """How the REST stub listens.

    Attributes:
        keys: accepted bearer tokens.
        host: interface to bind (loopback).
        port: TCP port, 0 for an ephemeral one.
    """

    keys: frozenset[str]
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(slots=True)
class MassiveRestMetrics:
    """Counters kept by the stub."""

    requests: int = 0
    unauthorized: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    not_found: int = 0


class MassiveRestServer:
    """The Massive REST API stub.

    Client side: ``RESTClient(api_key=key, base=server.base_url)`` (call it from a thread).

    Args:
        config: listening and auth settings.
        market: the synthetic market whose views are served.
        faults: fault switches shared with the rest of the simulator.
        now_ns: the simulated "now" for market status and holidays (default: the market's).
    """

    def __init__(
        self,
        config: MassiveRestConfig,
        market: Market,
        faults: Faults | None = None,
        now_ns: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.market = market
        self.faults = faults if faults is not None else Faults()
        self.metrics = MassiveRestMetrics()
        self._now_ns = now_ns if now_ns is not None else (lambda: market.now_ns)
        self._request_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        """Bind and start answering."""
        app = web.Application(middlewares=[self._middleware])
        snap = _SNAPSHOT_BASE
        app.router.add_get(f"{snap}/tickers/{{ticker}}", self._snapshot_ticker)
        app.router.add_get(f"{snap}/tickers", self._snapshot_all)
        app.router.add_get(f"{snap}/{{direction}}", self._snapshot_direction)
        app.router.add_get("/v2/aggs/ticker/{ticker}/prev", self._previous_close)
        app.router.add_get(
            "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}", self._aggs
        )
        app.router.add_get("/v2/aggs/grouped/locale/us/market/stocks/{day}", self._grouped)
        app.router.add_get("/v3/reference/tickers/{ticker}", self._ticker_details)
        app.router.add_get("/v3/reference/tickers", self._tickers)
        app.router.add_get("/v2/last/trade/{ticker}", self._last_trade)
        app.router.add_get("/v2/last/nbbo/{ticker}", self._last_quote)
        app.router.add_get("/stocks/vX/float", self._floats)
        app.router.add_get("/v1/marketstatus/now", self._market_status)
        app.router.add_get("/v1/marketstatus/upcoming", self._holidays)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        address = self._runner.addresses[0]
        self._port = int(address[1])

    async def stop(self) -> None:
        """Stop answering and release the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MassiveRestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._port

    @property
    def base_url(self) -> str:
        """The ``base=`` to give ``RESTClient``."""
        return f"http://{self.config.host}:{self._port}"

    # ----------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.metrics.requests += 1
        faults = self.faults.rest
        if faults.delay > 0:
            await asyncio.sleep(faults.delay)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if not auth.startswith("Bearer ") or token not in self.config.keys:
            self.metrics.unauthorized += 1
            return self._error(403, "NOT_AUTHORIZED", "Unknown API Key")
        if faults.rate_limited > 0:
            faults.rate_limited -= 1
            self.metrics.rate_limited += 1
            response = self._error(429, "ERROR", "You've exceeded the maximum requests per minute.")
            response.headers["Retry-After"] = str(faults.retry_after)
            return response
        if faults.server_errors > 0:
            faults.server_errors -= 1
            self.metrics.server_errors += 1
            return self._error(500, "ERROR", "Internal server error (simulated).")
        try:
            return await handler(request)
        except _BadParameter as exc:
            return self._error(400, "ERROR", str(exc))

    def _json(self, body: object, status: int = 200) -> web.Response:
        return web.Response(body=_encode(body), status=status, content_type="application/json")

    def _ok(self, **fields: object) -> web.Response:
        return self._json({"status": "OK", "request_id": self._request_id(), **fields})

    def _error(self, status: int, code: str, message: str) -> web.Response:
        body = {"status": code, "request_id": self._request_id(), "message": message}
        if status == 404:
            self.metrics.not_found += 1
        return self._json(body, status)

    def _request_id(self) -> str:
        return f"sim{next(self._request_ids):012x}"

    # ----------------------------------------------------------------- snapshots

    async def _snapshot_ticker(self, request: web.Request) -> web.Response:
        row = self.market.snapshot(request.match_info["ticker"])
        if row is None:
            return self._error(404, "NOT_FOUND", "Ticker not found.")
        return self._ok(ticker=row)

    async def _snapshot_all(self, request: web.Request) -> web.Response:
        wanted = request.query.get("tickers")
        symbols = [s for s in wanted.split(",") if s] if wanted else None
        rows = self.market.snapshot_all(symbols)
        return self._ok(count=len(rows), tickers=rows)

    async def _snapshot_direction(self, request: web.Request) -> web.Response:
        direction = request.match_info["direction"]
        if direction not in {"gainers", "losers"}:
            return self._error(404, "NOT_FOUND", f"Unknown direction {direction}.")
        rows = self.market.snapshot_all()
        rows.sort(key=_change_percent, reverse=direction == "gainers")
        return self._ok(tickers=rows[:_MOVERS])

    # ----------------------------------------------------------------- aggregates

    async def _previous_close(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        row = self.market.previous_close(ticker)
        rows = [] if row is None else [row]
        return self._ok(
            ticker=ticker, queryCount=len(rows), resultsCount=len(rows), adjusted=True, results=rows
        )

    async def _aggs(self, request: web.Request) -> web.Response:
        info = request.match_info
        ticker = info["ticker"]
        rows: list[dict[str, object]] = []
        if info["timespan"] == "day" and info["multiplier"] == "1":
            start, end = _day_param(info["start"]), _day_param(info["end"])
            rows = self.market.daily_bars(ticker, start, end)
        elif info["timespan"] == "minute" and info["multiplier"] in {"1", "5", "15", "30", "60"}:
            start, end = _day_param(info["start"]), _day_param(info["end"])
            # Generating weeks of minutes takes a while: off the loop that serves the stream.
            rows = await asyncio.to_thread(
                self.market.minute_bars, ticker, start, end, int(info["multiplier"])
            )
        if request.query.get("sort") == "desc":
            rows.reverse()
        limit = _int_param(request.query.get("limit"), 50_000)
        rows = rows[:limit]
        return self._ok(
            ticker=ticker,
            queryCount=len(rows),
            resultsCount=len(rows),
            adjusted=True,
            results=rows,
            count=len(rows),
        )

    async def _grouped(self, request: web.Request) -> web.Response:
        rows = self.market.grouped_daily(_day_param(request.match_info["day"]))
        return self._ok(queryCount=len(rows), resultsCount=len(rows), adjusted=True, results=rows)

    # ----------------------------------------------------------------- reference

    async def _ticker_details(self, request: web.Request) -> web.Response:
        details = self.market.ticker_details(request.match_info["ticker"])
        if details is None:
            return self._error(404, "NOT_FOUND", "Ticker not found.")
        return self._ok(results=details)

    async def _tickers(self, request: web.Request) -> web.Response:
        query = request.query
        ticker = query.get("ticker")
        symbols = [ticker] if ticker else sorted(self.market.profiles)
        limit = min(_int_param(query.get("limit"), _DEFAULT_PAGE), 1_000)
        offset = _int_param(query.get("cursor"), 0)
        rows: list[dict[str, object]] = []
        for symbol in symbols[offset : offset + limit]:
            details = self.market.ticker_details(symbol)
            if details is not None:
                rows.append({k: v for k, v in details.items() if k in _TICKER_FIELDS})
        body: dict[str, object] = {"results": rows, "count": len(rows)}
        if offset + limit < len(symbols):
            params = {"cursor": str(offset + limit), "limit": str(limit)}
            body["next_url"] = f"{self.base_url}/v3/reference/tickers?{urlencode(params)}"
        return self._ok(**body)

    async def _last_trade(self, request: web.Request) -> web.Response:
        return self._last(request, "lastTrade", ("c", "i", "p", "s", "t", "x"))

    async def _last_quote(self, request: web.Request) -> web.Response:
        return self._last(request, "lastQuote", ("P", "S", "p", "s", "t"))

    def _last(self, request: web.Request, part: str, keys: tuple[str, ...]) -> web.Response:
        """``/v2/last/...``: the snapshot's last trade or quote, keyed as that endpoint keys it."""
        ticker = request.match_info["ticker"]
        row = self.market.snapshot(ticker)
        last = None if row is None else row.get(part)
        if not isinstance(last, dict):
            return self._error(404, "NOT_FOUND", "No data for this ticker.")
        return self._ok(results={"T": ticker, **{k: last[k] for k in keys if k in last}})

    async def _floats(self, request: web.Request) -> web.Response:
        query = request.query
        ticker = query.get("ticker")
        symbols = [ticker] if ticker else sorted(self.market.profiles)
        limit = min(_int_param(query.get("limit"), _DEFAULT_PAGE), _MAX_PAGE)
        offset = _int_param(query.get("cursor"), 0)
        page = symbols[offset : offset + limit]
        rows = [row for s in page if (row := self.market.free_float(s)) is not None]
        body: dict[str, object] = {"results": rows}
        if offset + limit < len(symbols):
            params = {"cursor": str(offset + limit), "limit": str(limit)}
            body["next_url"] = f"{self.base_url}/stocks/vX/float?{urlencode(params)}"
        return self._ok(**body)

    async def _market_status(self, request: web.Request) -> web.Response:
        del request
        return self._json(self.market.market_status(self._now_ns()))

    async def _holidays(self, request: web.Request) -> web.Response:
        del request
        return self._json(self.market.upcoming_holidays(self._now_ns()))


def _change_percent(row: Mapping[str, object]) -> float:
    value = row.get("todaysChangePerc")
    return float(value) if isinstance(value, int | float) else 0.0


def _int_param(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        msg = f"not an integer: {raw!r}"
        raise _BadParameter(msg) from exc
    if value < 0:
        msg = f"must not be negative: {raw!r}"
        raise _BadParameter(msg)
    return value


def _day_param(raw: str) -> date:
    """A ``YYYY-MM-DD`` date or Unix milliseconds, read as an ET calendar day."""
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, tz=ET).date()
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        msg = f"not a date or Unix milliseconds: {raw!r}"
        raise _BadParameter(msg) from exc
