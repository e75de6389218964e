"""Partitioned queues owned by processors, on the real RabbitMQ and Redis.

The listener's batcher sends each symbol's events to its partition; processors announce
themselves and hold partition leases in Redis (``RedisOwnership``). Pinned here: the leases
and announcements themselves; each event is read by exactly one processor, every symbol's
events in feed order, while a processor joins mid-stream (its share is handed over after the
old owner wrote what it took) and after one leaves (the survivor takes everything over).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

import msgspec
from redis.asyncio import Redis

from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import Output
from mdp_cache.client import close_redis, create_redis
from mdp_cache.ownership import RedisOwnership
from mdp_core.clock import LiveClock
from mdp_core.events import MarketEvent
from mdp_listener import Batcher
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import AmqpConsumer, AmqpPublisher, Topology
from mdp_testing.conformance import aggregate
from mdp_testing.widgets import MemoryWidgets

PARTITIONS = 4
SYMBOLS = [f"P{n:02d}" for n in range(24)]


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait until ``await predicate()`` holds, failing after ``seconds``.

    Announcements expire on the Redis clock and ownership rounds raise no event, so the state
    is re-read every 20 ms; the deadline, not the poll interval, bounds the test.
    """
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110 - polls state that has no change event
            await asyncio.sleep(0.02)


async def test_announcements_expire_and_a_lease_has_one_holder(redis: Redis) -> None:
    store = RedisOwnership(redis, "g")
    assert await store.members("a", 300) == ["a"]
    assert await store.members("b", 60_000) == ["a", "b"]

    async def only_b() -> bool:
        return await store.members("", 60_000) == ["b"]

    await until(only_b)  # a stopped announcing: gone once its 300 ms ran out (Redis clock)
    assert await store.hold([0, 1], "a", 60_000) == {0, 1}
    assert await store.hold([0, 1, 2], "b", 60_000) == {2}
    await store.release([0], "b")  # not b's lease: untouched
    assert await store.hold([0], "b", 60_000) == set()
    assert await store.hold([0], "a", 60_000) == {0}  # renewal by the holder
    await store.release([0], "a")
    assert await store.hold([0], "b", 60_000) == {0}
    assert await redis.pttl("mdp:partition:g:0") > 1_000


class Seen:
    """An analyzer recording the (symbol, event time) of every bar it is given, in order."""

    name: ClassVar[str] = "seen"
    consumes: ClassVar[frozenset[str]] = frozenset({"A"})

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        self.events.extend((event.symbol, event.event_time_ms) for event in inputs)

    def collect(self, now_ns: int) -> Output:
        return Output()


class Owner:
    """One processor with its own broker and Redis connections, as a worker process has."""

    def __init__(self, name: str, amqp_url: str, topology: Topology, redis_url: str) -> None:
        self.redis = create_redis(redis_url)
        self.seen = Seen()
        self.processor = Processor(
            AmqpConsumer(amqp_url, topology, prefetch=4),
            [self.seen],
            state=MemoryState(),
            widgets=MemoryWidgets(),
            config=ProcessorConfig(
                instance=name,
                ownership_interval_seconds=0.05,
                lease_ttl_seconds=0.6,
                batch_messages=1,
            ),
            ownership=RedisOwnership(self.redis, "partition-test"),
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.processor.run())

    async def stop(self) -> None:
        self.processor.stop()
        if self.task is not None:
            await self.task
            self.task = None
        await close_redis(self.redis)


async def test_each_event_reaches_one_owner_in_order_through_a_join_and_a_leave(
    amqp_url: str, mdq_prefix: str, redis_db_url: str
) -> None:
    topology = Topology(prefix=mdq_prefix, partitions=PARTITIONS)
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    batcher = Batcher(topology, publisher, source="t", instance="feed", batch_events=4)
    first = Owner("first", amqp_url, topology, redis_db_url)
    second = Owner("second", amqp_url, topology, redis_db_url)
    start_ms = LiveClock().now_ns() // 1_000_000 - 60_000
    sent = 0

    def feed(seconds: range) -> None:
        nonlocal sent
        for second_ in seconds:
            raws = [
                msgspec.Raw(msgspec.json.encode(aggregate(s, start_ms + second_ * 1_000)))
                for s in SYMBOLS
            ]
            batcher.add("A", raws, received_ns=LiveClock().now_ns())
            sent += len(raws)
        batcher.flush()

    def seen() -> list[tuple[str, int]]:
        return first.seen.events + second.seen.events

    async def all_read() -> bool:
        return len(seen()) >= sent

    try:
        await publisher.start()
        first.start()

        async def first_owns_all() -> bool:
            return first.processor.partitions == set(range(PARTITIONS))

        await until(first_owns_all)
        feed(range(0, 5))
        await until(all_read)
        # A second processor joins while the feed goes on: half the partitions move to it.
        second.start()
        for chunk in range(5, 30, 5):
            feed(range(chunk, chunk + 5))
            await asyncio.sleep(0)

        async def shared() -> bool:
            a, b = first.processor.partitions, second.processor.partitions
            return bool(a) and bool(b) and a | b == set(range(PARTITIONS)) and not a & b

        await until(shared)
        feed(range(30, 35))
        await until(all_read)
        assert first.processor.stats.handovers >= 1
        # The first one leaves; the second takes everything over once its announcement ends.
        await first.stop()

        async def second_owns_all() -> bool:
            return second.processor.partitions == set(range(PARTITIONS))

        await until(second_owns_all)
        feed(range(35, 40))
        await until(all_read)
    finally:
        with contextlib.suppress(Exception):
            await first.stop()
        await second.stop()
        await publisher.close()
    assert sent == 40 * len(SYMBOLS)
    assert_read_once_in_order(first.seen, second.seen, sent)


def assert_read_once_in_order(first: Seen, second: Seen, sent: int) -> None:
    """Each event read once; each owner read a symbol's events in feed order, in one stretch."""
    everything = first.events + second.events
    assert len(everything) == sent
    assert len(set(everything)) == sent
    for symbol in SYMBOLS:
        stretches = []
        for seen in (first, second):
            times = [t for s, t in seen.events if s == symbol]
            assert times == sorted(times)
            if times:
                stretches.append((min(times), max(times)))
        # No interleaving across owners: one owner's stretch ends before the other's begins.
        if len(stretches) == 2:
            (a_lo, a_hi), (b_lo, b_hi) = stretches
            assert a_hi < b_lo or b_hi < a_lo
