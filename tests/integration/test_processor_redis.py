"""The processor end to end with the in-process bus and the real Redis (MDC and WDC).

Rows, quotes, trades and router feeds land in WDC with the catalogue's TTLs and channels;
state survives a processor restart; a redelivered batch is not applied twice; and a Redis
connection loss (cut by a TCP proxy of the test's own) pauses the processor, which retries
and resumes without losing the flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import (
    FEED_LATEST_AGGREGATE,
    FEED_QUOTE,
    FEED_SCANNER_TOP_VOLUME,
    FEED_TOP_TRADES,
    FEED_TRADE_STATS,
)
from mdp_cache.records import DailyBar
from mdp_cache.reference import MemoryReferenceSource, ReferenceCache
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_core.envelope import decode_header, encode_envelope
from mdp_core.events import MarketEvent
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import MemoryBus, OutgoingBatch, Received, ReceivedBatch, Topology
from mdp_testing.conformance import aggregate, at_ms, trade
from mdp_testing.proxy import TcpProxy

DAY = date(2026, 3, 4)
NOW_MS = at_ms(DAY, 10, 0, 30)


def envelope(events: Sequence[MarketEvent], batch: str) -> bytes:
    raws = [msgspec.Raw(msgspec.json.encode(event)) for event in events]
    return encode_envelope(
        kind=events[0].EV, source="test", batch=batch, received_ns=NOW_MS * 10**6, events=raws
    )


async def publish(bus: MemoryBus, events: Sequence[MarketEvent], batch: str) -> None:
    spec = bus.topology.for_kind(events[0].EV)
    assert spec is not None
    body = envelope(events, batch)
    publisher = bus.publisher()
    await publisher.start()
    publisher.publish(OutgoingBatch(spec, body, batch, NOW_MS * 10**6, len(events)))


def reference() -> ReferenceCache:
    bar = DailyBar(day=date(2026, 3, 3), open=9, high=11, low=9, close=10.0, volume=5_000)
    return ReferenceCache(MemoryReferenceSource({"AAA": [bar], "BBB": [bar]}, {"AAA": 1_000_000}))


class Harness:
    def __init__(self, url: str, bus: MemoryBus, clock: ManualClock) -> None:
        self.url = url
        self.bus = bus
        self.clock = clock
        self.mdc = create_redis(url)
        self.wdc = create_redis(url)
        self.analyzers: list[Any] = [
            LeaderboardAnalyzer(),
            MassiveDataAnalyzer(),
            TopTradesAnalyzer(publish_interval_seconds=0.0),
        ]
        self.processor = Processor(
            bus.consumer(max_age_seconds=3600),
            self.analyzers,
            state=RedisState(self.mdc),
            widgets=WidgetWriter(self.wdc),
            reference=reference(),
            clock=clock,
            config=ProcessorConfig(flush_interval_seconds=0.02, retry=BackoffPolicy(0.02, 0.1)),
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.processor.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.processor.stop()
        assert self.task is not None
        await self.task
        await close_redis(self.mdc)
        await close_redis(self.wdc)


async def composed_after_writes(h: Harness, clock: ManualClock) -> None:
    """Flush what was applied, then compose (the composer runs apart from the flushes)."""
    await h.processor.flush()
    clock.advance(1.0)  # the next composition is due
    await h.processor.compose_now()


async def next_flushes(processor: Processor, count: int) -> None:
    target = processor.stats.flushes + count
    await processor.wait_until(lambda s: s.flushes >= target)


async def get(redis: Redis, key: str) -> Any:
    raw = await redis.get(key)
    assert raw is not None, f"{key} was not written"
    return msgspec.json.decode(raw)


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(Topology(prefix="t."), clock=ManualClock(NOW_MS * 10**6))


async def test_rows_quotes_trades_and_routes_land_in_wdc(
    redis_db_url: str, redis: Redis, bus: MemoryBus
) -> None:
    pubsub = redis.pubsub()
    await pubsub.psubscribe("quote:*")
    clock = ManualClock(NOW_MS * 10**6)
    async with Harness(redis_db_url, bus, clock) as h:
        await publish(
            bus, [aggregate("AAA", at_ms(DAY, 10, 0), close=11.0, accumulated_volume=9)], "b1"
        )
        await publish(
            bus, [aggregate("BBB", at_ms(DAY, 10, 0), close=12.0, accumulated_volume=7)], "b2"
        )
        await publish(bus, [trade("AAA", at_ms(DAY, 10, 0), 11.0, 500)], "b3")
        async with asyncio.timeout(10):
            await h.processor.wait_until(lambda s: s.total_events == 3)
            # Reference data arrives in the background; wait until the rows carry it.
            await h.processor.flush()  # everything applied so far is written
            while True:
                quote = await get(redis, FEED_QUOTE.name(symbol="AAA"))
                if quote["prev_close"] is not None:
                    break
                clock.advance(1.0)
                await next_flushes(h.processor, 2)
            await composed_after_writes(h, clock)
    assert quote["pct_change"] == 10.0
    assert quote["free_float"] == 1_000_000
    assert 0 < await redis.ttl(FEED_QUOTE.name(symbol="AAA")) <= FEED_QUOTE.ttl
    board = await get(redis, FEED_SCANNER_TOP_VOLUME.name())
    assert [row["symbol"] for row in board["rows"]] == ["AAA", "BBB"]
    assert 0 < await redis.ttl(FEED_SCANNER_TOP_VOLUME.name()) <= FEED_SCANNER_TOP_VOLUME.ttl
    stats = await get(redis, FEED_TRADE_STATS.name(symbol="AAA"))
    assert stats["total_volume"] == 500
    assert (await get(redis, FEED_TOP_TRADES.name()))["trades"][0]["size"] == 500
    assert (await get(redis, FEED_LATEST_AGGREGATE.name(symbol="BBB")))["sym"] == "BBB"
    async with asyncio.timeout(5):
        message = None
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message["channel"].startswith(b"quote:")
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_state_survives_a_restart_and_redelivery_is_not_applied_twice(
    redis_db_url: str, redis: Redis, bus: MemoryBus
) -> None:
    clock = ManualClock(NOW_MS * 10**6)
    async with Harness(redis_db_url, bus, clock) as h:
        await publish(bus, [aggregate("AAA", at_ms(DAY, 10, 0), accumulated_volume=9)], "r1")
        async with asyncio.timeout(10):
            await h.processor.wait_until(lambda s: s.total_events == 1)
    # A new process: nothing in memory, everything merged in Redis.
    async with Harness(redis_db_url, bus, clock) as h:
        await publish(bus, [aggregate("BBB", at_ms(DAY, 10, 0), accumulated_volume=5)], "r2")
        async with asyncio.timeout(10):
            await h.processor.wait_until(lambda s: s.total_events == 1)
            await composed_after_writes(h, clock)
        # The broker redelivers r1 (its ack was lost): the mark written with the state says
        # it was applied, so it is skipped.
        spec = bus.topology.for_kind("A")
        assert spec is not None
        body = envelope([aggregate("AAA", at_ms(DAY, 10, 0), accumulated_volume=9)], "r1")
        received = Received(spec, decode_header(body), body, redelivered=True, age_seconds=0.1)
        acked: list[bool] = []

        async def settle(tokens: Sequence[object], ok: bool) -> None:
            acked.append(ok)

        await h.processor.ingest(ReceivedBatch([received], (), settle))
        await h.processor.flush()
        assert h.processor.stats.duplicates == 1
        assert acked == [True]
    board = await get(redis, FEED_SCANNER_TOP_VOLUME.name())
    assert [row["symbol"] for row in board["rows"]] == ["AAA", "BBB"]


async def test_a_redis_connection_loss_pauses_and_resumes_without_losing_the_flush(
    redis_db_url: str, redis: Redis, bus: MemoryBus
) -> None:
    proxy = TcpProxy.for_url(redis_db_url)
    await proxy.start()
    proxied = proxy.proxied(redis_db_url)
    clock = ManualClock(NOW_MS * 10**6)
    async with Harness(proxied, bus, clock) as h:
        await publish(bus, [aggregate("AAA", at_ms(DAY, 10, 0), accumulated_volume=9)], "c1")
        async with asyncio.timeout(10):
            await h.processor.wait_until(lambda s: s.total_events == 1)
        await proxy.cut()
        await publish(bus, [aggregate("BBB", at_ms(DAY, 10, 0), accumulated_volume=5)], "c2")
        async with asyncio.timeout(10):
            # A flush pauses consumption (a failed composition only counts).
            await h.processor.wait_until(
                lambda s: s.write_failures >= 1 and not h.processor.writable
            )
            await proxy.start()  # the connection comes back
            await h.processor.wait_until(lambda s: s.total_events == 2 and s.flushes > 2)
            await h.processor.wait_until(lambda s: h.processor.writable)
    assert await redis.get(FEED_QUOTE.name(symbol="BBB")) is not None
    await proxy.cut()
