"""The worker's composer thread against the real Redis: boards land while the main loop is stuck.

A flush at 10,000 symbols holds the worker's event loop for up to ~0.8 s at a time; the boards
must not wait for it. Here the main loop is blocked outright (a synchronous wait) until the
thread's composition is in WDC: on the main loop that composition could never happen.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Sequence

import msgspec
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import FEED_SCANNER_TOP_VOLUME, KEY_COMPOSE_LEASE
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetItem, WidgetWriter
from mdp_core.clock import LiveClock
from mdp_processor.composition import ComposerThread, Composition, CompositionStats

WAIT_SECONDS = 10.0


class Landing(WidgetWriter):
    """A WDC writer that tells other threads when a write landed."""

    def __init__(self, redis: Redis, landed: threading.Event) -> None:
        super().__init__(redis)
        self.landed = landed

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        count = await super().write(writes)
        self.landed.set()
        return count


class Events:
    """What the thread reports to the test thread: opened, a write landed, closed."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.landed = threading.Event()
        self.closed = threading.Event()


def thread_on(url: str, stats: CompositionStats, events: Events) -> ComposerThread:
    @contextlib.asynccontextmanager
    async def open_composition() -> AsyncIterator[Composition]:
        mdc = create_redis(url, client_name="test-compose")
        wdc = create_redis(url, client_name="test-compose")
        events.opened.set()
        try:
            yield Composition(
                [LeaderboardAnalyzer()],
                state=RedisState(mdc),
                widgets=Landing(wdc, events.landed),
                clock=LiveClock(),
                instance="composer-test",
                counts=stats,
            )
        finally:
            await close_redis(mdc)
            await close_redis(wdc)
            events.closed.set()

    return ComposerThread(open_composition, name="composer-test")


def blocking_wait(event: threading.Event, composer: ComposerThread) -> bool:
    """Wait for ``event`` without ever yielding this thread's loop; False if the thread ended."""
    for _ in range(int(WAIT_SECONDS * 10)):
        if event.wait(0.1):
            return True
        if not composer.is_alive():
            return event.is_set()
    return False


async def test_boards_land_while_the_main_loop_is_blocked(redis: Redis, redis_db_url: str) -> None:
    stats, events = CompositionStats(), Events()
    composer = thread_on(redis_db_url, stats, events)
    composer.start()
    try:
        # Blocks this thread's event loop, as a long flush stretch would.
        landed = blocking_wait(events.landed, composer)
        assert landed, f"no composition while the main loop was blocked: {composer.failure!r}"
        assert composer.is_alive()
    finally:
        composer.stop()
        assert await composer.join(WAIT_SECONDS)
    assert not composer.is_alive()
    assert events.closed.is_set()  # its own connections were closed on its own loop
    assert composer.failure is None
    assert stats.compositions >= 1
    assert stats.write_failures == 0
    stored = await redis.get(FEED_SCANNER_TOP_VOLUME.name())
    assert stored is not None
    assert msgspec.json.decode(stored)["board"] == "top_volume"
    holder = await redis.get(KEY_COMPOSE_LEASE.name(analyzer="leaderboard"))
    assert holder == b"composer-test"


async def test_a_stop_while_composing_ends_the_thread_and_closes_its_connections(
    redis_db_url: str,
) -> None:
    stats, events = CompositionStats(), Events()
    composer = thread_on(redis_db_url, stats, events)
    composer.start()
    assert blocking_wait(events.opened, composer)
    composer.stop()
    assert await composer.join(WAIT_SECONDS)
    assert not composer.is_alive()
    assert events.closed.is_set()
    assert composer.failure is None


async def test_a_stop_before_the_start_ends_the_thread_before_it_connects(
    redis_db_url: str,
) -> None:
    stats, events = CompositionStats(), Events()
    composer = thread_on(redis_db_url, stats, events)
    composer.stop()
    composer.start()
    assert await composer.join(WAIT_SECONDS)
    assert not composer.is_alive()
    assert not events.opened.is_set()
    assert stats.compositions == 0
    assert composer.failure is None


class Unopenable:
    """A composition whose connections cannot be opened."""

    async def __aenter__(self) -> Composition:
        msg = "no MDC URL"
        raise ValueError(msg)

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_thread_that_cannot_open_its_connections_ends_with_the_failure() -> None:
    composer = ComposerThread(Unopenable)
    composer.start()
    assert await composer.join(WAIT_SECONDS)
    assert not composer.is_alive()
    assert isinstance(composer.failure, ValueError)


async def test_join_before_start_returns_at_once() -> None:
    composer = ComposerThread(Unopenable)
    assert await composer.join(0.0)
    assert not composer.is_alive()
