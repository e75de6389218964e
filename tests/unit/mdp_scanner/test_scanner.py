"""Scanner construction and configuration (the loop itself runs against the real Redis in
tests/integration/test_scanner_daily_range.py: fakeredis pub/sub timing differs too much)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import date
from typing import cast

import fakeredis
import pytest
from redis.asyncio.client import PubSub

from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_analyzers.typing import FeedMessage
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ManualClock
from mdp_runtime import ConfigError
from mdp_scanner import Scanner, ScannerSettings
from mdp_scanner.__main__ import build_analyzers

DAY = date(2026, 3, 4)


def test_needs_an_analyzer_and_known_names() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Scanner(fakeredis.FakeAsyncRedis(), [], clock=ManualClock(0))
    with pytest.raises(ConfigError, match="no_such"):
        build_analyzers(("no_such",), MarketCalendar())
    assert isinstance(build_analyzers(("daily_range",), MarketCalendar())[0], DailyRangeAnalyzer)
    # The leaderboard consumes market events, which never reach the scanner: refused at start.
    with pytest.raises(ConfigError, match="not feed messages"):
        build_analyzers(("daily_range", "leaderboard"), MarketCalendar())


def test_settings_defaults() -> None:
    from mdp_core.settings import load

    settings = load(ScannerSettings, environ={"MDP_SCANNER_ANALYZERS": "daily_range,other"})
    assert settings.analyzers == ("daily_range", "other")
    assert settings.dedup_alerts is True


def test_thresholds_reach_the_analyzers_from_the_settings() -> None:
    from mdp_analyzers.halt_alerts import HaltAlertsAnalyzer
    from mdp_analyzers.news_movers import NewsMoversAnalyzer
    from mdp_analyzers.unusual_volume import UnusualVolumeAnalyzer
    from mdp_core.settings import load

    settings = load(
        ScannerSettings,
        environ={
            "MDP_SCANNER_RVOL_THRESHOLDS": "1.5,4",
            "MDP_SCANNER_RVOL_MIN_VOLUME": "500",
            "MDP_SCANNER_NEWS_WINDOW_SECONDS": "600",
            "MDP_SCANNER_NEWS_MOVE_PCT": "3",
            "MDP_SCANNER_NEWS_RVOL": "2.5",
        },
    )
    assert settings.analyzers == ("daily_range", "unusual_volume", "news_movers", "halt_alerts")
    built = build_analyzers(settings.analyzers, settings.calendar, settings.analyzer_options())
    daily, volume, news, halts = built
    assert isinstance(daily, DailyRangeAnalyzer)
    assert isinstance(volume, UnusualVolumeAnalyzer)
    assert (volume.thresholds, volume.min_volume) == ((1.5, 4.0), 500)
    assert isinstance(news, NewsMoversAnalyzer)
    assert (news.window_ms, news.move_pct, news.rvol) == (600_000, 3.0, 2.5)
    assert isinstance(halts, HaltAlertsAnalyzer)
    bad = load(ScannerSettings, environ={"MDP_SCANNER_RVOL_THRESHOLDS": "0,2"})
    with pytest.raises(ConfigError, match="above 0"):
        build_analyzers(bad.analyzers, bad.calendar, bad.analyzer_options())


def paused_scanner() -> Scanner:
    return Scanner(
        fakeredis.FakeAsyncRedis(),
        build_analyzers(("daily_range",), MarketCalendar()),
        clock=ManualClock(0),
    )


BATCH = [FeedMessage("quote:AAA", b"{}")]


async def pause_during_read(
    scanner: Scanner, read: Callable[[], Awaitable[list[FeedMessage]]]
) -> list[FeedMessage] | None:
    """Run the scanner's read-unless-paused with ``read`` as the read, a pause asked meanwhile."""
    reading = asyncio.Event()

    async def next_batch(pubsub: object) -> list[FeedMessage]:
        reading.set()
        return await read()

    scanner._next_batch = next_batch  # type: ignore[method-assign]  # the read, replaced
    call = asyncio.ensure_future(scanner._next_batch_unless_paused(cast("PubSub", None)))
    async with asyncio.timeout(5):
        await reading.wait()
        scanner._pause_asked.set()
        return await call


async def test_a_pause_during_a_read_cancels_the_read() -> None:
    cancelled = asyncio.Event()

    async def read() -> list[FeedMessage]:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    assert await pause_during_read(paused_scanner(), read) is None
    assert cancelled.is_set()


async def test_a_batch_read_despite_the_cancel_is_handled_not_dropped() -> None:
    async def read() -> list[FeedMessage]:
        # What redis-py's wait_for does on Python 3.11 when the reply lands in the same
        # turn as the cancel: the cancel is lost and the read returns its result.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return BATCH

    assert await pause_during_read(paused_scanner(), read) == BATCH


async def test_a_read_that_fails_as_it_is_cancelled_raises_its_error() -> None:
    async def read() -> list[FeedMessage]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("gone") from None
        raise AssertionError("unreachable")

    with pytest.raises(ConnectionError, match="gone"):
        await pause_during_read(paused_scanner(), read)


async def test_the_callers_own_cancel_is_not_swallowed_while_the_read_ends() -> None:
    scanner = paused_scanner()
    reading, cleaning_up, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def next_batch(pubsub: object) -> list[FeedMessage]:
        reading.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning_up.set()
            await release.wait()  # a slow clean-up: the caller is cancelled meanwhile
            raise
        raise AssertionError("unreachable")

    scanner._next_batch = next_batch  # type: ignore[method-assign]  # the read, replaced
    call = asyncio.ensure_future(scanner._next_batch_unless_paused(cast("PubSub", None)))
    async with asyncio.timeout(5):
        await reading.wait()
        scanner._pause_asked.set()
        await cleaning_up.wait()  # the pause cancelled the read; the call waits for its end
        call.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await call


async def test_a_caller_cancelled_while_waiting_ends_the_read_that_lost_a_cancel() -> None:
    scanner = paused_scanner()
    reading, ended = asyncio.Event(), asyncio.Event()

    async def next_batch(pubsub: object) -> list[FeedMessage]:
        reading.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()  # the first cancel is lost, as in wait_for
            await asyncio.Event().wait()  # and it reads on: only a second cancel ends it
        finally:
            ended.set()
        raise AssertionError("unreachable")

    scanner._next_batch = next_batch  # type: ignore[method-assign]  # the read, replaced
    call = asyncio.ensure_future(scanner._next_batch_unless_paused(cast("PubSub", None)))
    async with asyncio.timeout(5):
        await reading.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert ended.is_set()  # the read did not outlive the call
