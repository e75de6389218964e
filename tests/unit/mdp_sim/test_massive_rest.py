"""The Massive REST stub against the real ``massive.RESTClient`` (run in a thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import time, timedelta
from typing import Any

import pytest
from massive import RESTClient
from massive.exceptions import BadResponse
from urllib3.exceptions import MaxRetryError

from mdp_cache.reference import daily_bar_from_agg
from mdp_processor.massive_reference import MassiveReferenceSource
from mdp_sim.market import Market
from mdp_sim.massive_rest import MassiveRestConfig, MassiveRestServer
from mdp_sim.scenario import ScenarioConfig

KEY = "rest-test-key"
SYMBOLS = 12


@pytest.fixture(scope="module")
def market() -> Market:
    built = Market(ScenarioConfig(seed=11, symbols=SYMBOLS, start=time(9, 30)))
    built.advance(built.now_ns + 30 * 1_000_000_000)  # half a minute of trading
    return built


@pytest.fixture
async def stub(market: Market) -> AsyncIterator[MassiveRestServer]:
    async with MassiveRestServer(MassiveRestConfig(keys=frozenset({KEY})), market) as server:
        yield server


def client(stub: MassiveRestServer, key: str = KEY, **options: Any) -> RESTClient:
    return RESTClient(api_key=key, base=stub.base_url, **options)


async def call(rest: RESTClient, method: str, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(getattr(rest, method), *args, **kwargs)


async def test_ticker_snapshot_matches_the_market(stub: MassiveRestServer, market: Market) -> None:
    symbol = sorted(market.profiles)[0]
    snap = await call(client(stub), "get_snapshot_ticker", "stocks", symbol)
    profile = market.profiles[symbol]
    assert snap.ticker == symbol
    assert snap.prev_day.close == profile.prev_close
    assert snap.prev_day.volume == profile.prev_volume


async def test_snapshot_of_some_tickers_and_unknown_ticker(
    stub: MassiveRestServer, market: Market
) -> None:
    wanted = sorted(market.profiles)[:3]
    rows = await call(client(stub), "get_snapshot_all", "stocks", tickers=[*wanted, "NOPE"])
    assert sorted(r.ticker for r in rows) == wanted
    with pytest.raises(BadResponse, match="NOT_FOUND"):
        await call(client(stub), "get_snapshot_ticker", "stocks", "NOPE")


async def test_gainers_and_losers_are_ordered(stub: MassiveRestServer) -> None:
    gainers = await call(client(stub), "get_snapshot_direction", "stocks", "gainers")
    losers = await call(client(stub), "get_snapshot_direction", "stocks", "losers")
    up = [g.todays_change_percent for g in gainers]
    down = [loser.todays_change_percent for loser in losers]
    assert up == sorted(up, reverse=True)
    assert down == sorted(down)
    assert len(up) == min(SYMBOLS, 20)


async def test_previous_close_and_daily_bars_agree(stub: MassiveRestServer, market: Market) -> None:
    symbol = sorted(market.profiles)[1]
    rest = client(stub)
    prev = await call(rest, "get_previous_close_agg", symbol)
    assert len(prev) == 1
    assert prev[0].close == market.profiles[symbol].prev_close
    start = market.trading_day - timedelta(days=45)
    end = market.trading_day - timedelta(days=1)
    bars = await call(rest, "get_aggs", symbol, 1, "day", start.isoformat(), end.isoformat())
    assert len(bars) >= 20
    assert bars[-1].close == prev[0].close
    assert [b.timestamp for b in bars] == sorted(b.timestamp for b in bars)
    start_ms = bars[0].timestamp
    by_ms = await call(rest, "get_aggs", symbol, 1, "day", start_ms, end.isoformat())
    assert [b.timestamp for b in by_ms] == [b.timestamp for b in bars]


async def test_grouped_daily_has_every_symbol(stub: MassiveRestServer, market: Market) -> None:
    rest = client(stub)
    prev = await call(rest, "get_previous_close_agg", sorted(market.profiles)[0])
    day = market.calendar.previous_trading_day(market.trading_day)
    rows = await call(rest, "get_grouped_daily_aggs", day.isoformat())
    assert {r.ticker for r in rows} == set(market.profiles)
    assert prev[0].timestamp == rows[0].timestamp


async def test_grouped_daily_source_reads_the_same_bars_as_the_sdk_models(
    stub: MassiveRestServer, market: Market
) -> None:
    """The processor decodes the grouped-daily body itself (speed); the SDK's models agree."""
    day = market.calendar.previous_trading_day(market.trading_day)
    rows = await call(client(stub), "get_grouped_daily_aggs", day.isoformat())
    expected = {
        row.ticker: daily_bar_from_agg(
            {
                "o": row.open,
                "h": row.high,
                "l": row.low,
                "c": row.close,
                "v": row.volume,
                "vw": row.vwap,
                "t": row.timestamp,
            }
        )
        for row in rows
    }
    bars = await MassiveReferenceSource(KEY, stub.base_url).grouped_daily(day)
    assert bars == expected
    assert len(bars) == SYMBOLS
    assert all(bar.day == day for bar in bars.values())


async def test_ticker_details_and_paginated_floats(stub: MassiveRestServer, market: Market) -> None:
    symbol = sorted(market.profiles)[2]
    rest = client(stub)
    details = await call(rest, "get_ticker_details", symbol)
    assert details.share_class_shares_outstanding == market.profiles[symbol].shares_outstanding
    floats = await asyncio.to_thread(lambda: list(rest.list_stocks_floats(limit=5)))
    assert sorted(f.ticker for f in floats) == sorted(market.profiles)
    one = await asyncio.to_thread(lambda: list(rest.list_stocks_floats(ticker=symbol)))
    assert [f.free_float for f in one] == [market.profiles[symbol].free_float]


async def test_market_status_and_holidays(stub: MassiveRestServer) -> None:
    rest = client(stub)
    status = await call(rest, "get_market_status")
    assert status.market == "open"  # the market fixture is at 09:30:30 ET on a trading day
    holidays = await call(rest, "get_market_holidays")
    assert all(h.status in {"closed", "early-close"} for h in holidays)


async def test_bad_key_is_not_authorized(stub: MassiveRestServer) -> None:
    with pytest.raises(BadResponse, match="NOT_AUTHORIZED"):
        await call(client(stub, key="wrong"), "get_market_status")
    assert stub.metrics.unauthorized == 1


async def test_rate_limit_and_server_errors_are_retried(stub: MassiveRestServer) -> None:
    stub.faults.rest.retry_after = 0
    stub.faults.rest.rate_limited = 1
    stub.faults.rest.server_errors = 1
    status = await call(client(stub, retries=3), "get_market_status")
    assert status.market == "open"
    assert stub.metrics.rate_limited == 1
    assert stub.metrics.server_errors == 1


async def test_persistent_rate_limit_exhausts_the_retries(stub: MassiveRestServer) -> None:
    stub.faults.rest.retry_after = 0
    stub.faults.rest.rate_limited = 100
    with pytest.raises(MaxRetryError):
        await call(client(stub, retries=2), "get_market_status")
    assert stub.metrics.rate_limited == 3


async def test_slow_responses_trip_the_read_timeout(stub: MassiveRestServer) -> None:
    stub.faults.rest.delay = 1.0
    with pytest.raises(MaxRetryError):
        await call(client(stub, retries=0, read_timeout=0.05), "get_market_status")


async def test_ticker_list_pages_and_last_trade_and_quote(
    stub: MassiveRestServer, market: Market
) -> None:
    rest = client(stub)
    tickers = await asyncio.to_thread(lambda: list(rest.list_tickers(market="stocks", limit=5)))
    assert sorted(t.ticker for t in tickers) == sorted(market.profiles)
    symbol, last_trade, last_quote = next(
        (s, snap["lastTrade"], snap["lastQuote"])
        for s in sorted(market.profiles)
        if (snap := market.snapshot(s)) is not None
        and isinstance(snap.get("lastTrade"), dict)
        and isinstance(snap.get("lastQuote"), dict)
    )
    assert isinstance(last_trade, dict)
    assert isinstance(last_quote, dict)
    trade = await call(rest, "get_last_trade", symbol)
    assert trade.price == last_trade["p"]
    quote = await call(rest, "get_last_quote", symbol)
    assert quote.bid_price == last_quote["p"]
    assert quote.ask_price == last_quote["P"]


async def test_minute_and_five_minute_aggregates_feed_the_volume_profile_source(
    stub: MassiveRestServer, market: Market
) -> None:
    symbol = sorted(market.profiles)[2]
    end = market.trading_day - timedelta(days=1)
    start = end - timedelta(days=6)
    rest = client(stub)
    rows = await call(rest, "get_aggs", symbol, 1, "minute", start.isoformat(), end.isoformat())
    expected = market.minute_bars(symbol, start, end)
    assert [(r.timestamp, r.volume) for r in rows] == [(e["t"], e["v"]) for e in expected]
    # The profile source asks for 5-minute bars: each the sum of its five minutes.
    source = MassiveReferenceSource(KEY, stub.base_url)
    volumes = await source.slot_volumes(symbol, start, end)
    fives = market.minute_bars(symbol, start, end, 5)
    assert volumes == [(e["t"], e["v"]) for e in fives]
    assert sum(v for _, v in volumes) == sum(int(e["v"]) for e in expected)  # type: ignore[call-overload]
    assert len(volumes) * 4 < len(expected)
