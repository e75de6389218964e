"""The processor with the real RabbitMQ and Redis: published envelopes end up in WDC.

Also shows a restart: a second processor on the same queues picks up where the first stopped,
and its rows merge with the first one's in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Any

import msgspec
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import FEED_LATEST_NBBO, FEED_QUOTE, FEED_SCANNER_TOP_VOLUME
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_core.events import MarketEvent
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.stats import ProcessorStats
from mdp_queues import AmqpConsumer, AmqpPublisher, OutgoingBatch, Topology
from mdp_testing.conformance import aggregate, quote

from .test_mdq_amqp import cancel_behind_the_library


class ComposedAfterEvents:
    """True once a board composition started after ``count`` events were written.

    Events are written by the first flush after they were applied; compositions run apart
    from flushes, so the first one counted after that flush may have read before it: the
    second surely started after it.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.applied_at: int | None = None
        self.mark: int | None = None

    def __call__(self, stats: ProcessorStats) -> bool:
        if self.applied_at is None and stats.total_events >= self.count:
            self.applied_at = stats.flushes
        if self.applied_at is not None and self.mark is None and stats.flushes > self.applied_at:
            self.mark = stats.compositions
        return self.mark is not None and stats.compositions > self.mark + 1


def today_ms() -> int:
    return LiveClock().now_ns() // 1_000_000


def outgoing(topology: Topology, events: Sequence[MarketEvent], batch: str) -> OutgoingBatch:
    spec = topology.for_kind(events[0].EV)
    assert spec is not None
    now = LiveClock().now_ns()
    raws = [msgspec.Raw(msgspec.json.encode(e)) for e in events]
    body = encode_envelope(kind=events[0].EV, source="t", batch=batch, received_ns=now, events=raws)
    return OutgoingBatch(spec, body, batch, now, len(events))


async def run_processor(
    amqp_url: str, topology: Topology, redis_url: str, until: Any, publish: Any
) -> Processor:
    mdc, wdc = create_redis(redis_url), create_redis(redis_url)
    processor = Processor(
        AmqpConsumer(amqp_url, topology, prefetch=100),
        [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=RedisState(mdc),
        widgets=WidgetWriter(wdc),
        config=ProcessorConfig(flush_interval_seconds=0.02),
    )
    task = asyncio.create_task(processor.run())
    try:
        await publish()
        async with asyncio.timeout(15):
            await processor.wait_until(until)
    finally:
        processor.stop()
        await task
        await close_redis(mdc)
        await close_redis(wdc)
    return processor


async def test_envelopes_from_rabbitmq_land_in_wdc_across_a_restart(
    amqp_url: str, mdq_prefix: str, redis_db_url: str, redis: Redis
) -> None:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    await publisher.start()
    now = today_ms()
    try:

        async def first_batch() -> None:
            publisher.publish(
                outgoing(topology, [aggregate("AAA", now, accumulated_volume=9)], "a1")
            )
            publisher.publish(outgoing(topology, [quote("AAA", now, 9.9, 10.1)], "q1"))

        await run_processor(
            amqp_url, topology, redis_db_url, lambda s: s.total_events == 2, first_batch
        )
        assert await redis.get(FEED_QUOTE.name(symbol="AAA")) is not None
        nbbo = await redis.get(FEED_LATEST_NBBO.name(symbol="AAA"))
        assert nbbo is not None
        assert msgspec.json.decode(nbbo)["bp"] == 9.9

        async def second_batch() -> None:
            publisher.publish(
                outgoing(topology, [aggregate("BBB", now, accumulated_volume=5)], "a2")
            )

        await run_processor(
            amqp_url,
            topology,
            redis_db_url,
            ComposedAfterEvents(1),
            second_batch,
        )
    finally:
        await publisher.close()
    board = await redis.get(FEED_SCANNER_TOP_VOLUME.name())
    assert board is not None
    assert [row["symbol"] for row in msgspec.json.decode(board)["rows"]] == ["AAA", "BBB"]
    date.fromisoformat(msgspec.json.decode(board)["trading_day"])  # a real trading day


async def test_a_consumer_the_broker_stopped_delivering_to_is_replaced(
    amqp_url: str, mdq_prefix: str, redis_db_url: str
) -> None:
    topology = Topology(prefix=mdq_prefix)
    aggregates = topology.for_kind("A")
    assert aggregates is not None
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    consumer = AmqpConsumer(amqp_url, topology, prefetch=100, check_seconds=0.1)
    mdc, wdc = create_redis(redis_db_url), create_redis(redis_db_url)
    processor = Processor(
        consumer,
        [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=RedisState(mdc),
        widgets=WidgetWriter(wdc),
        config=ProcessorConfig(flush_interval_seconds=0.02),
    )
    await publisher.start()
    task = asyncio.create_task(processor.run())
    now = today_ms()
    try:
        publisher.publish(outgoing(topology, [aggregate("AAA", now, accumulated_volume=9)], "a1"))
        async with asyncio.timeout(15):
            await processor.wait_until(lambda s: s.total_events == 1)
        await cancel_behind_the_library(consumer, aggregates)
        publisher.publish(
            outgoing(topology, [aggregate("AAA", now + 1_000, accumulated_volume=19)], "a2")
        )
        # Read by the consumer that replaced the lost one (a CI run once waited for good).
        async with asyncio.timeout(15):
            await processor.wait_until(lambda s: s.total_events == 2)
        assert consumer.stats.consumers_lost == 1
    finally:
        processor.stop()
        await task
        await publisher.close()
        await close_redis(mdc)
        await close_redis(wdc)
