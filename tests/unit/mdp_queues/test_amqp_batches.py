"""The AMQP consumer's batching and its ``waited`` flag, with deliveries placed by hand.

Against the real broker (``tests/integration/test_mdq_amqp.py``) only a consumer that caught up
can be pinned: when a delivery reaches the consumer's inbox is up to aio-pika's tasks. Here
the channel is a stand-in that hands the test the consumer's own delivery callback, so what
the inbox holds at each ask is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from mdp_core.clock import ManualClock
from mdp_core.envelope import encode_envelope
from mdp_queues import AmqpConsumer, QueueSpec, ReceivedBatch, Topology

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@dataclass
class Channel:
    is_closed: bool = False


@dataclass
class Delivery:
    """What the consumer reads of an aio-pika incoming message, and how it settles one."""

    body: bytes
    channel: Channel
    redelivered: bool = False
    headers: dict[str, Any] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool) -> None:
        self.settled.append("requeue" if requeue else "nack")

    async def reject(self, requeue: bool) -> None:
        self.settled.append("reject")


class Queue:
    """A declared queue: keeps the consumer's delivery callback for the test."""

    def __init__(self) -> None:
        self.deliver: Callable[[Delivery], Awaitable[None]] = self._not_yet
        self.subscribed = asyncio.Event()

    async def _not_yet(self, delivery: Delivery) -> None:
        raise AssertionError("nobody consumes yet")

    async def consume(self, callback: Callable[[Delivery], Awaitable[None]], **_: Any) -> str:
        self.deliver = callback
        self.subscribed.set()  # the consumer goes on to ask its inbox before the test resumes
        return "tag"

    async def cancel(self, tag: str) -> None:
        """Consumption ends."""


class DeclaringChannel(Channel):
    def __init__(self) -> None:
        super().__init__()
        self.queue = Queue()

    async def declare_queue(self, name: str, **_: Any) -> Queue:
        return self.queue


def make() -> tuple[AmqpConsumer, DeclaringChannel, QueueSpec, ManualClock]:
    clock = ManualClock(NOW)
    topology = Topology(prefix="unit.")
    consumer = AmqpConsumer("amqp://127.0.0.1:1/", topology, clock=clock, max_age_seconds=1.0)
    channel = DeclaringChannel()

    async def channel_for(queue: QueueSpec) -> DeclaringChannel:
        return channel

    consumer._channel_for = channel_for  # type: ignore[assignment,method-assign]  # stand-in
    spec = topology.for_kind("T")
    assert spec is not None
    return consumer, channel, spec, clock


def delivery(channel: Channel, clock: ManualClock, batch: str, *, age_ns: int = 0) -> Delivery:
    raws = [msgspec.Raw(b'{"ev":"T","sym":"AAA","p":1.5,"s":10,"t":1}')]
    received = clock.now_ns() - age_ns
    body = encode_envelope(kind="T", source="t", batch=batch, received_ns=received, events=raws)
    return Delivery(body, channel)


def names(batch: ReceivedBatch) -> list[str]:
    return [m.envelope.batch for m in batch.messages]


async def test_a_batch_is_waited_for_only_when_the_inbox_was_empty_at_the_ask() -> None:
    consumer, channel, spec, clock = make()
    stream = consumer.consume_batches(spec, max_messages=10, max_wait_seconds=0)
    async with asyncio.timeout(5):
        asked = asyncio.ensure_future(anext(stream))
        await channel.queue.subscribed.wait()  # the ask subscribes, then finds nothing
        await channel.queue.deliver(delivery(channel, clock, "first"))
        first = await asked
        # Two deliveries already in the inbox when the next ask comes: no wait.
        await channel.queue.deliver(delivery(channel, clock, "second"))
        await channel.queue.deliver(delivery(channel, clock, "third"))
        backlog = await anext(stream)
    assert (names(first), first.waited) == (["first"], True)
    assert (names(backlog), backlog.waited) == (["second", "third"], False)
    await stream.aclose()


async def test_a_wait_holds_through_deliveries_that_were_all_dropped() -> None:
    consumer, channel, spec, clock = make()
    stream = consumer.consume_batches(spec, max_messages=1, max_wait_seconds=0)
    async with asyncio.timeout(5):
        asked = asyncio.ensure_future(anext(stream))
        await channel.queue.subscribed.wait()
        # The ask found the inbox empty; then a stale delivery (dropped, one per batch) and a
        # fresh one arrive together: the fresh one's batch is still the one waited for.
        stale = delivery(channel, clock, "stale", age_ns=5_000_000_000)
        await channel.queue.deliver(stale)
        await channel.queue.deliver(delivery(channel, clock, "fresh"))
        batch = await asked
    assert (names(batch), batch.waited) == (["fresh"], True)
    assert stale.settled == ["ack"]  # dropped, and acked so that it is not redelivered
    await stream.aclose()
