"""The market data queues against the real RabbitMQ: declaration, TTL, delivery mode, gates."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import aiormq
import msgspec
import pytest

from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_queues import (
    AmqpConsumer,
    AmqpPublisher,
    ConsumerLost,
    DropReason,
    OutgoingBatch,
    QueueSpec,
    Topology,
    TopologyMismatch,
    ack_all,
    declare_topology,
)


def make_batch(queue: QueueSpec, batch_id: str, *, age_seconds: float = 0.0) -> OutgoingBatch:
    received_ns = time.time_ns() - int(age_seconds * 1e9)
    raws = [msgspec.Raw(b'{"ev":"T","sym":"AAPL","p":1.5,"s":10,"t":1}')] * 3
    body = encode_envelope(
        kind=queue.kind, source="test", batch=batch_id, received_ns=received_ns, events=raws
    )
    return OutgoingBatch(
        queue=queue, body=body, batch_id=batch_id, received_ns=received_ns, events=3
    )


@pytest.fixture
async def raw_channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until ``await check()`` holds, failing after ``within`` seconds.

    The broker offers no notification for queue depth or consumer counters, so they are
    re-read every 10 ms; the deadline, not the poll interval, bounds the test.
    """
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polls state that has no change event
            await asyncio.sleep(0.01)


async def message_count(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    count = queue.declaration_result.message_count
    assert count is not None
    return count


@pytest.mark.parametrize("publisher_first", [True, False])
async def test_either_side_may_declare_first(
    amqp_url: str, mdq_prefix: str, publisher_first: bool
) -> None:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    consumer = AmqpConsumer(amqp_url, topology)
    first, second = (publisher, consumer) if publisher_first else (consumer, publisher)
    await first.start()
    await second.start()
    try:
        trades = topology.for_kind("T")
        assert trades is not None
        publisher.publish(make_batch(trades, "b1"))
        async with asyncio.timeout(10):
            batch = await anext(consumer.consume_batches(trades, max_wait_seconds=0))
        assert batch.messages[0].envelope.batch == "b1"
        assert len(batch.messages[0].envelope.events) == 3
        await batch.ack()
    finally:
        await publisher.close()
        await consumer.close()


async def test_messages_are_non_persistent_and_carry_their_metadata(
    amqp_url: str, mdq_prefix: str, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    await publisher.start()
    try:
        quotes = topology.for_kind("Q")
        assert quotes is not None
        publisher.publish(make_batch(quotes, "meta-1"))
        queue = await raw_channel.declare_queue(quotes.name, passive=True)
        message = None
        async with asyncio.timeout(10):
            while message is None:
                message = await queue.get(no_ack=True, fail=False)
                await asyncio.sleep(0.01)
        assert message.delivery_mode == aio_pika.DeliveryMode.NOT_PERSISTENT
        assert message.message_id == "meta-1"
        assert message.content_type == "application/json"
        assert message.timestamp is not None
        assert message.type == "Q"
    finally:
        await publisher.close()


async def test_the_queue_ttl_expires_unconsumed_messages(
    amqp_url: str, mdq_prefix: str, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = Topology(prefix=mdq_prefix, ttl_ms=300)
    publisher = AmqpPublisher(amqp_url, topology)
    await publisher.start()
    try:
        trades = topology.for_kind("T")
        assert trades is not None
        publisher.publish(make_batch(trades, "ttl-1"))

        async def queued() -> bool:
            return await message_count(raw_channel, trades.name) > 0

        async def expired() -> bool:
            return await message_count(raw_channel, trades.name) == 0

        await eventually(queued)
        await eventually(expired)
        assert publisher.stats.published_messages == {"T": 1}
    finally:
        await publisher.close()


async def test_a_mismatched_queue_is_named_and_can_be_recreated(
    amqp_url: str, mdq_prefix: str
) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare_topology(connection, Topology(prefix=mdq_prefix, ttl_ms=5000))
        changed = Topology(prefix=mdq_prefix, ttl_ms=7000)
        with pytest.raises(TopologyMismatch) as caught:
            await declare_topology(connection, changed)
        assert caught.value.queue == changed.queues[0].name
        assert caught.value.argument == "x-message-ttl"
        assert "x-message-ttl" in str(caught.value)
        await declare_topology(connection, changed, on_mismatch="recreate")
        await declare_topology(connection, changed)  # now it matches


async def test_publisher_start_fails_fast_on_a_mismatch(amqp_url: str, mdq_prefix: str) -> None:
    first = AmqpPublisher(amqp_url, Topology(prefix=mdq_prefix, ttl_ms=5000))
    await first.start()
    await first.close()
    second = AmqpPublisher(amqp_url, Topology(prefix=mdq_prefix, ttl_ms=6000))
    with pytest.raises(TopologyMismatch):
        await second.start()
    await second.close()


async def test_consumer_drops_stale_and_poison_messages_and_never_requeues(
    amqp_url: str, mdq_prefix: str, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = Topology(prefix=mdq_prefix)
    consumer = AmqpConsumer(amqp_url, topology, clock=LiveClock(), max_age_seconds=1.0)
    await consumer.start()
    aggregates = topology.for_kind("A")
    assert aggregates is not None
    exchange = raw_channel.default_exchange
    stale = make_batch(aggregates, "stale", age_seconds=3.0)
    fresh = make_batch(aggregates, "fresh")
    nested = (
        b'{"v":1,"kind":"A","source":"t","batch":"n","received_ns":1,"events":['
        + (b"[" * 5000 + b"]" * 5000)
        + b"]}"
    )
    for body in (b"\x00 not json", nested, stale.body, fresh.body):
        await exchange.publish(aio_pika.Message(body), routing_key=aggregates.name)
    try:
        async with asyncio.timeout(10):
            batch = await anext(consumer.consume_batches(aggregates, max_wait_seconds=0.2))

        async def poison_counted() -> bool:
            return consumer.stats.dropped_messages.get(DropReason.POISON) == 2

        await eventually(poison_counted)
        assert [m.envelope.batch for m in batch.messages] == ["fresh"]
        await batch.ack()
        assert consumer.stats.dropped_messages == {DropReason.POISON: 2, DropReason.STALE: 1}
        assert consumer.stats.dropped_events[DropReason.STALE] == 3
    finally:
        await consumer.close()
    assert await message_count(raw_channel, aggregates.name) == 0


async def test_trace_context_travels_in_the_headers(
    amqp_url: str, mdq_prefix: str, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = Topology(prefix=mdq_prefix)
    trades = topology.for_kind("T")
    assert trades is not None
    consumer = AmqpConsumer(amqp_url, topology, clock=LiveClock())
    publisher = AmqpPublisher(amqp_url, topology)
    await consumer.start()
    await publisher.start()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        batch = make_batch(trades, "traced")
        publisher.publish(dataclasses.replace(batch, headers={"traceparent": parent}))
        # A message from another publisher, with a header value that is not text.
        untraced = make_batch(trades, "other")
        await raw_channel.default_exchange.publish(
            aio_pika.Message(untraced.body, headers={"x-count": 3, "x-name": "text"}),
            routing_key=trades.name,
        )
        received = []
        async with asyncio.timeout(10):
            async for delivered in consumer.consume_batches(trades, max_wait_seconds=0.2):
                received.extend(delivered.messages)
                await delivered.ack()
                if len(received) >= 2:
                    break
        headers = {m.envelope.batch: dict(m.headers) for m in received}
        assert headers["traced"] == {"traceparent": parent}
        assert headers["other"] == {"x-name": "text"}  # text kept, the number left out
    finally:
        await publisher.close()
        await consumer.close()


async def test_a_failing_handler_drops_the_message_instead_of_requeueing(
    amqp_url: str, mdq_prefix: str, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    consumer = AmqpConsumer(amqp_url, topology)
    await publisher.start()
    await consumer.start()
    news = topology.news
    calls: list[str] = []
    second_seen = asyncio.Event()

    async def handler(message: object) -> None:
        batch_id = message.envelope.batch  # type: ignore[attr-defined]
        calls.append(batch_id)
        if batch_id == "bad":
            raise RuntimeError("handler failure")
        second_seen.set()

    task = asyncio.create_task(consumer.consume(news, handler))
    try:
        publisher.publish(make_batch(news, "bad"))
        publisher.publish(make_batch(news, "good"))
        async with asyncio.timeout(10):
            await second_seen.wait()
        assert calls == ["bad", "good"]
        assert consumer.stats.handler_errors == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.close()
        await publisher.close()
    assert await message_count(raw_channel, news.name) == 0


async def test_batches_acked_together_settle_every_message_with_one_frame_per_queue(
    amqp_url: str, mdq_prefix: str, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = Topology(prefix=mdq_prefix, partitions=2)
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    consumer = AmqpConsumer(amqp_url, topology, prefetch=50)
    await publisher.start()
    await consumer.start()
    try:
        first, second = topology.partitions_of("T")
        for n in range(6):
            publisher.publish(make_batch(first if n % 2 else second, f"together-{n}"))
        batches = []
        async with asyncio.timeout(10):
            for queue in (first, second):
                stream = consumer.consume_batches(queue, max_messages=1, max_wait_seconds=0)
                batches += [await anext(stream) for _ in range(3)]
        await ack_all(batches)
        assert all(batch.settled for batch in batches)
        with pytest.raises(RuntimeError, match="already"):
            await ack_all(batches[:1])

        async def settled_everywhere() -> bool:
            # Acked, not merely delivered: nothing would come back if the consumer went away.
            await consumer.close()
            counts = [await message_count(raw_channel, q.name) for q in (first, second)]
            return counts == [0, 0]

        await eventually(settled_everywhere)
    finally:
        await publisher.close()
        await consumer.close()


async def cancel_behind_the_library(consumer: AmqpConsumer, queue: QueueSpec) -> None:
    """Make the broker stop delivering to ``consumer`` on ``queue``, the channel left open.

    The state a lost queue leaves when aio-pika's recovery does not subscribe again: no
    public call produces it, so the consumer is cancelled on the underlying channel, past the
    library's own bookkeeping (which would otherwise restore it).
    """
    channel = consumer._queue_channels[queue.name]  # private on purpose: fault injection
    underlay = await channel.get_underlay_channel()
    assert isinstance(underlay, aiormq.Channel)
    (tag,) = list(underlay.consumers)
    await underlay.basic_cancel(tag)
    assert not underlay.consumers


@pytest.fixture
async def watched(
    amqp_url: str, mdq_prefix: str
) -> AsyncIterator[tuple[AmqpPublisher, AmqpConsumer, QueueSpec]]:
    """A publisher, and a consumer that checks its quiet queues every 50 ms, on the trades."""
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    consumer = AmqpConsumer(amqp_url, topology, check_seconds=0.05)
    await publisher.start()
    await consumer.start()
    trades = topology.for_kind("T")
    assert trades is not None
    try:
        yield publisher, consumer, trades
    finally:
        await publisher.close()
        await consumer.close()


async def test_a_consumer_the_broker_stopped_delivering_to_is_counted_and_consumed_again(
    watched: tuple[AmqpPublisher, AmqpConsumer, QueueSpec],
) -> None:
    publisher, consumer, trades = watched
    batches = consumer.consume_batches(trades, max_wait_seconds=0)
    publisher.publish(make_batch(trades, "before"))
    async with asyncio.timeout(10):
        batch = await anext(batches)
    await batch.ack()
    await cancel_behind_the_library(consumer, trades)
    publisher.publish(make_batch(trades, "while-lost"))
    # Without the check this waits for good: the connection and channel look healthy.
    with pytest.raises(ConsumerLost, match=trades.name):
        async with asyncio.timeout(10):
            await anext(batches)
    assert consumer.stats.consumers_lost == 1
    # Consuming again subscribes afresh; what waited in the queue meanwhile arrives.
    again = consumer.consume_batches(trades, max_wait_seconds=0)
    async with asyncio.timeout(10):
        batch = await anext(again)
    assert [m.envelope.batch for m in batch.messages] == ["while-lost"]
    await batch.ack()
    await again.aclose()


async def test_a_quiet_queue_is_not_taken_for_a_lost_consumer(
    watched: tuple[AmqpPublisher, AmqpConsumer, QueueSpec],
) -> None:
    publisher, consumer, trades = watched
    batches = consumer.consume_batches(trades, max_wait_seconds=0)
    waiting = asyncio.ensure_future(anext(batches))
    # A second of checks (about twenty) with nothing to deliver: none of them gives up, so
    # the wait ends by its own timeout, not with ConsumerLost.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiting), 1.0)
    publisher.publish(make_batch(trades, "late"))
    async with asyncio.timeout(10):
        batch = await waiting
    assert [m.envelope.batch for m in batch.messages] == ["late"]
    assert consumer.stats.consumers_lost == 0
    await batch.ack()
    await batches.aclose()


def test_a_consumer_needs_a_positive_check_interval() -> None:
    with pytest.raises(ValueError, match="check_seconds"):
        AmqpConsumer("amqp://127.0.0.1/", Topology(prefix="x."), check_seconds=0)


async def test_a_consumer_that_caught_up_says_it_waited(amqp_url: str, mdq_prefix: str) -> None:
    """The processor's pacing reads a batch waited for as a consumer that keeps up."""
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    consumer = AmqpConsumer(amqp_url, topology)
    await publisher.start()
    await consumer.start()
    try:
        trades = topology.for_kind("T")
        assert trades is not None
        for n in range(2):
            publisher.publish(make_batch(trades, f"backlog-{n}"))
        stream = consumer.consume_batches(trades, max_messages=1, max_wait_seconds=0)
        async with asyncio.timeout(10):
            backlog = [await anext(stream), await anext(stream)]
            # Both deliveries are taken: the next ask runs its first step before the
            # publisher's task can send anything, so it finds the consumer's inbox empty.
            asked = asyncio.ensure_future(anext(stream))
            publisher.publish(make_batch(trades, "next"))
            caught_up = await asked
        assert [m.envelope.batch for m in caught_up.messages] == ["next"]
        assert caught_up.waited
        await ack_all([*backlog, caught_up])
    finally:
        await publisher.close()
        await consumer.close()
