from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec

from mdp_core.clock import ManualClock
from mdp_core.envelope import encode_envelope
from mdp_queues import DropReason, MemoryBus, OutgoingBatch, Received, Topology

START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def envelope_batch(bus: MemoryBus, kind: str, n: int, *, events: int = 2) -> OutgoingBatch:
    queue = bus.topology.for_kind(kind)
    assert queue is not None
    raws = [msgspec.Raw(b'{"ev":"%s","sym":"S%d"}' % (kind.encode(), i)) for i in range(events)]
    now = bus.clock.now_ns()
    body = encode_envelope(kind=kind, source="test", batch=f"b{n}", received_ns=now, events=raws)
    return OutgoingBatch(queue=queue, body=body, batch_id=f"b{n}", received_ns=now, events=events)


async def test_published_batches_reach_a_consumer_in_batches() -> None:
    clock = ManualClock(START)
    bus = MemoryBus(Topology(), clock=clock)
    publisher, consumer = bus.publisher(), bus.consumer()
    await publisher.start()
    await consumer.start()
    for n in range(5):
        publisher.publish(envelope_batch(bus, "T", n))
    trades = bus.topology.for_kind("T")
    assert trades is not None
    async with asyncio.timeout(2):
        batches = consumer.consume_batches(trades, max_messages=3, max_wait_seconds=0.01)
        first = await anext(batches)
        second = await anext(batches)
    assert [m.envelope.batch for m in first.messages] == ["b0", "b1", "b2"]
    assert [m.envelope.batch for m in second.messages] == ["b3", "b4"]
    assert first.event_count == 6
    await first.ack()
    assert publisher.stats.published_events == {"T": 10}
    assert consumer.stats.delivered_messages == 5


async def test_a_full_queue_sheds_its_oldest_message() -> None:
    clock = ManualClock(START)
    bus = MemoryBus(Topology(), clock=clock, max_messages=2)
    publisher = bus.publisher()
    await publisher.start()
    for n in range(4):
        publisher.publish(envelope_batch(bus, "Q", n))
    quotes = bus.topology.for_kind("Q")
    assert quotes is not None
    assert bus.depth(quotes) == 2
    assert bus.dropped(quotes) == 2


async def test_expired_and_stale_messages_never_reach_the_application() -> None:
    clock = ManualClock(START)
    bus = MemoryBus(Topology(ttl_ms=5000), clock=clock)
    publisher = bus.publisher()
    consumer = bus.consumer(max_age_seconds=1.0)
    await publisher.start()
    publisher.publish(envelope_batch(bus, "A", 1))
    clock.advance(6)  # beyond the queue TTL: the bus expires it
    publisher.publish(envelope_batch(bus, "A", 2))
    clock.advance(2)  # beyond the consumer's freshness limit but within the TTL
    publisher.publish(envelope_batch(bus, "A", 3))
    aggregates = bus.topology.for_kind("A")
    assert aggregates is not None
    async with asyncio.timeout(2):
        batch = await anext(consumer.consume_batches(aggregates, max_wait_seconds=0))
    assert [m.envelope.batch for m in batch.messages] == ["b3"]
    assert bus.expired(aggregates) == 1
    assert consumer.stats.dropped_messages == {DropReason.STALE: 1}


async def test_poison_is_counted_and_the_handler_error_does_not_stop_consumption() -> None:
    clock = ManualClock(START)
    bus = MemoryBus(Topology(), clock=clock)
    publisher, consumer = bus.publisher(), bus.consumer()
    await publisher.start()
    news = bus.topology.news
    good = envelope_batch(bus, "T", 1)
    publisher.publish(OutgoingBatch(news, b"not an envelope", "p", clock.now_ns(), 1))
    publisher.publish(OutgoingBatch(news, good.body, "x", clock.now_ns(), 2))
    publisher.publish(OutgoingBatch(news, good.body, "y", clock.now_ns(), 2))
    seen: list[Received] = []
    done = asyncio.Event()

    async def handler(message: Received) -> None:
        seen.append(message)
        if len(seen) == 1:
            raise ValueError("the application failed on this one")
        done.set()

    task = asyncio.create_task(consumer.consume(news, handler))
    async with asyncio.timeout(2):
        await done.wait()
    task.cancel()
    assert len(seen) == 2
    assert consumer.stats.dropped_messages == {DropReason.POISON: 1}
    assert consumer.stats.handler_errors == 1


async def test_closed_publisher_counts_instead_of_sending() -> None:
    bus = MemoryBus(Topology(), clock=ManualClock(START))
    publisher = bus.publisher()
    publisher.publish(envelope_batch(bus, "T", 1))
    assert publisher.stats.dropped_messages == {DropReason.CLOSED: 1}
    assert not publisher.connected


async def test_a_nested_envelope_is_poison_and_the_next_message_arrives() -> None:
    clock = ManualClock(START)
    bus = MemoryBus(Topology(), clock=clock)
    publisher, consumer = bus.publisher(), bus.consumer()
    await publisher.start()
    news = bus.topology.news
    nested = (
        b'{"v":1,"kind":"T","source":"t","batch":"n","received_ns":1,"events":['
        + (b"[" * 5000 + b"]" * 5000)
        + b"]}"
    )
    good = envelope_batch(bus, "T", 1)
    publisher.publish(OutgoingBatch(news, nested, "n", clock.now_ns(), 1))
    publisher.publish(OutgoingBatch(news, good.body, "x", clock.now_ns(), 2))
    async with asyncio.timeout(2):
        batch = await anext(consumer.consume_batches(news, max_wait_seconds=0))
    assert [m.envelope.batch for m in batch.messages] == ["b1"]
    assert consumer.stats.dropped_messages == {DropReason.POISON: 1}


async def test_a_batch_says_whether_its_consumer_waited_for_it() -> None:
    """A backlog is handed out without waits; a drained queue's next batch was waited for."""
    bus = MemoryBus(Topology(), clock=ManualClock(START))
    publisher, consumer = bus.publisher(), bus.consumer()
    await publisher.start()
    trades = bus.topology.for_kind("T")
    assert trades is not None
    for n in range(4):
        publisher.publish(envelope_batch(bus, "T", n))
    batches = consumer.consume_batches(trades, max_messages=2, max_wait_seconds=0)
    async with asyncio.timeout(2):
        backlog = [await anext(batches), await anext(batches)]
        assert [b.waited for b in backlog] == [False, False]
        # The queue is drained. The ask runs its first step before the publication (the
        # loop runs callbacks in the order they were scheduled), so it finds nothing.
        asked = asyncio.ensure_future(anext(batches))
        asyncio.get_running_loop().call_soon(publisher.publish, envelope_batch(bus, "T", 4))
        caught_up = await asked
    assert [m.envelope.batch for m in caught_up.messages] == ["b4"]
    assert caught_up.waited
    # The flag is the batch's own: the next backlog is again handed out without a wait.
    for n in (5, 6):
        publisher.publish(envelope_batch(bus, "T", n))
    async with asyncio.timeout(2):
        assert not (await anext(batches)).waited
