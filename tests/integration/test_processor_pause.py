"""The control plane's pause and resume of the processor, on the real RabbitMQ and Redis.

The order travels the way it does in production: written to the control hash
(:mod:`mdp_cache.control`), read by the worker's :class:`~mdp_runtime.RuntimeControl`, applied
to the :class:`~mdp_processor.processor.Processor`. Pinned: a paused processor takes no
delivery (what is published meanwhile waits in its queue, counted by the broker), every batch
taken before the pause was written and acked, and a resume consumes the waiting messages, so
nothing is lost; with partitions, a paused processor hands its share to the other member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

import aio_pika
import msgspec
from redis.asyncio import Redis

from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import Output
from mdp_cache.client import close_redis, create_redis
from mdp_cache.control import Desired, write_desired
from mdp_cache.ownership import RedisOwnership
from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_core.events import MarketEvent
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.worker import control_of
from mdp_queues import AmqpConsumer, AmqpPublisher, OutgoingBatch, Topology
from mdp_testing.conformance import aggregate
from mdp_testing.widgets import MemoryWidgets

INSTANCE = "host-1"


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait until ``await predicate()`` holds; broker depths and leases raise no event."""
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110 - polls state that has no change event
            await asyncio.sleep(0.02)


class Seen:
    """Records every aggregate applied."""

    name: ClassVar[str] = "seen"
    consumes: ClassVar[frozenset[str]] = frozenset({"A"})

    def __init__(self) -> None:
        self.symbols: list[str] = []

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        self.symbols.extend(event.symbol for event in inputs)

    def collect(self, now_ns: int) -> Output:
        return Output()


def batch_of(topology: Topology, symbol: str, batch: str) -> OutgoingBatch:
    spec = topology.for_kind("A")
    assert spec is not None
    now = LiveClock().now_ns()
    raws = [msgspec.Raw(msgspec.json.encode(aggregate(symbol, now // 1_000_000)))]
    body = encode_envelope(kind="A", source="t", batch=batch, received_ns=now, events=raws)
    return OutgoingBatch(spec, body, batch, now, 1)


async def order(redis: Redis, state: str, ts_ms: int, instance: str = "*") -> None:
    await write_desired(redis, "processor", Desired(state, "alice", ts_ms), instance)  # type: ignore[arg-type]


async def waiting(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await connection.close()


async def test_pause_stops_consumption_and_resume_takes_up_what_waited(
    amqp_url: str, mdq_prefix: str, redis_db_url: str
) -> None:
    topology = Topology(prefix=mdq_prefix)
    queue = topology.for_kind("A")
    assert queue is not None
    redis = create_redis(redis_db_url)
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    seen = Seen()
    processor = Processor(
        AmqpConsumer(amqp_url, topology, prefetch=10),
        [seen],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        config=ProcessorConfig(flush_interval_seconds=0.02, instance=f"{INSTANCE}-0"),
    )
    control = control_of(processor, redis, INSTANCE)
    task = asyncio.create_task(processor.run())
    try:
        await publisher.start()
        publisher.publish(batch_of(topology, "AAA", "b1"))
        async with asyncio.timeout(10):
            await processor.wait_until(lambda s: s.total_events == 1 and s.flushes > 0)

        await order(redis, "paused", 1_000)
        assert await control.check() == "paused"
        assert processor.paused
        assert processor.stats.pauses == 1
        assert control.changes == {"paused": 1}

        for n in range(3):
            publisher.publish(batch_of(topology, f"P{n}", f"p{n}"))

        async def three_wait() -> bool:
            return await waiting(amqp_url, queue.name) == 3

        await until(three_wait)  # in the broker, not taken: consumption stopped
        assert seen.symbols == ["AAA"]
        assert await control.check() == "paused"  # the same order again changes nothing
        assert processor.stats.pauses == 1

        await order(redis, "running", 2_000)
        assert await control.check() == "running"
        async with asyncio.timeout(10):
            await processor.wait_until(lambda s: s.total_events == 4)
        assert seen.symbols == ["AAA", "P0", "P1", "P2"]  # nothing lost, in order

        async def none_wait() -> bool:
            return await waiting(amqp_url, queue.name) == 0

        await until(none_wait)
        assert processor.stats.resumes == 1
        assert control.changes == {"paused": 1, "running": 1}
    finally:
        await control.close()
        processor.stop()
        await task
        await publisher.close()
        await close_redis(redis)


async def test_an_instance_order_overrides_an_older_order_for_all(redis_db_url: str) -> None:
    redis = create_redis(redis_db_url)
    processor = Processor(
        AmqpConsumer("amqp://unused", Topology(prefix="unused")),
        [Seen()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
    )
    control = control_of(processor, redis, INSTANCE)
    try:
        await order(redis, "paused", 1_000)
        await order(redis, "running", 2_000, INSTANCE)
        assert await control.check() == "running"
        assert not processor.paused
        await order(redis, "paused", 3_000)  # a newer order for all wins again
        assert await control.check() == "paused"
        await order(redis, "running", 2_500, "other-host")  # another instance's: not ours
        assert await control.check() == "paused"
        await redis.hset("mdp:control:processor", INSTANCE, b"\xff not json")
        assert await control.check() == "paused"  # unreadable order: the others decide
    finally:
        await close_redis(redis)


async def test_a_paused_member_hands_its_partitions_to_the_other(
    amqp_url: str, mdq_prefix: str, redis_db_url: str
) -> None:
    topology = Topology(prefix=mdq_prefix, partitions=4)
    members: list[tuple[Processor, Redis, asyncio.Task[None]]] = []
    for name in ("first", "second"):
        redis = create_redis(redis_db_url)
        processor = Processor(
            AmqpConsumer(amqp_url, topology, prefetch=4),
            [Seen()],
            state=MemoryState(),
            widgets=MemoryWidgets(),
            config=ProcessorConfig(
                instance=name, ownership_interval_seconds=0.05, lease_ttl_seconds=0.6
            ),
            ownership=RedisOwnership(redis, "pause-test"),
        )
        members.append((processor, redis, asyncio.create_task(processor.run())))
    (first, _, _), (second, _, _) = members
    try:

        async def shared() -> bool:
            a, b = first.partitions, second.partitions
            return bool(a) and bool(b) and a | b == set(range(4))

        await until(shared)
        await first.pause()
        assert first.partitions == set()

        async def second_owns_all() -> bool:
            return second.partitions == set(range(4))

        await until(second_owns_all)
        assert first.partitions == set()  # paused: takes nothing back meanwhile
        await first.resume()
        await until(shared)
    finally:
        for processor, redis, task in members:
            processor.stop()
            await task
            await close_redis(redis)
