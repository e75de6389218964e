"""Surviving a broker restart, without restarting the shared broker.

A loopback TCP proxy (``mdp_testing.proxy.TcpProxy``) sits between the publisher and RabbitMQ;
cutting it (aborting every piped connection and refusing new ones) looks to the client exactly
like a broker that went away, and restoring it like a broker that came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import msgspec
import pytest

from mdp_core.envelope import encode_envelope
from mdp_queues import (
    AmqpConsumer,
    AmqpPublisher,
    DropReason,
    OutgoingBatch,
    QueueSpec,
    ReceivedBatch,
    Topology,
)
from mdp_testing.proxy import TcpProxy


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    async with TcpProxy.for_url(amqp_url) as proxy:
        yield proxy, proxy.proxied(amqp_url)


async def eventually(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``within`` seconds.

    Publisher and listener expose state, not change notifications, so the state is re-checked
    every 10 ms; the deadline, not the poll interval, bounds the test.
    """
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state that has no change event
            await asyncio.sleep(0.01)


def make_batch(queue: QueueSpec, batch_id: str) -> OutgoingBatch:
    now = time.time_ns()
    raws = [msgspec.Raw(b'{"ev":"T","sym":"MSFT","p":2.5,"s":1,"t":1}')] * 5
    body = encode_envelope(kind="T", source="test", batch=batch_id, received_ns=now, events=raws)
    return OutgoingBatch(queue=queue, body=body, batch_id=batch_id, received_ns=now, events=5)


@contextlib.asynccontextmanager
async def trade_batches(
    publisher: AmqpPublisher, amqp_url: str, topology: Topology
) -> AsyncIterator[AsyncGenerator[ReceivedBatch, None]]:
    """Start ``publisher`` and a consumer straight to the broker; the trade queue's batches."""
    trades = topology.for_kind("T")
    assert trades is not None
    consumer = AmqpConsumer(amqp_url, topology)
    await publisher.start()
    await consumer.start()
    batches = consumer.consume_batches(trades, max_wait_seconds=0)
    try:
        yield batches
    finally:
        await batches.aclose()
        await consumer.close()
        await publisher.close()


async def read_until(batches: AsyncGenerator[ReceivedBatch, None], last: str) -> list[str]:
    """The batch ids received (and acked) up to and including ``last``, within 10 s."""
    seen: list[str] = []
    async with asyncio.timeout(10):
        while last not in seen:
            got = await anext(batches)
            seen.extend(m.envelope.batch for m in got.messages)
            await got.ack()
    return seen


async def test_publisher_survives_a_broker_outage_counting_what_it_dropped(
    amqp_url: str, mdq_prefix: str, broker_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = broker_proxy
    topology = Topology(prefix=mdq_prefix)
    trades = topology.for_kind("T")
    assert trades is not None
    publisher = AmqpPublisher(proxied_url, topology, outbox_messages=4, reconnect_interval=0.1)
    async with trade_batches(publisher, amqp_url, topology) as batches:
        publisher.publish(make_batch(trades, "before"))
        assert await read_until(batches, "before") == ["before"]

        await proxy.cut()
        await eventually(lambda: not publisher.connected)
        for n in range(10):
            publisher.publish(make_batch(trades, f"during-{n}"))
        lost = publisher.stats.dropped_messages
        assert lost.get(DropReason.BROKER_DOWN, 0) >= 6

        await proxy.restore()
        async with asyncio.timeout(15):
            await publisher.wait_connected()
        publisher.publish(make_batch(trades, "after"))
        assert "before" not in await read_until(batches, "after")  # acked, never again
        assert publisher.stats.reconnects >= 1
        # what was waiting when the broker came back was either sent or counted: nothing vanished
        sent = publisher.stats.published_messages["T"]
        dropped = sum(publisher.stats.dropped_messages.values())
        assert sent + dropped == 12


async def test_a_confirm_that_never_comes_is_counted_and_the_next_batches_go_out(
    amqp_url: str, mdq_prefix: str, broker_proxy: tuple[TcpProxy, str]
) -> None:
    # A stalled broker: the connection stays open, the publish is written, no confirm returns.
    # Waiting for it without a bound held every later batch back for good (a cluster node lost
    # mid-publish did that in CI).
    proxy, proxied_url = broker_proxy
    topology = Topology(prefix=mdq_prefix)
    trades = topology.for_kind("T")
    assert trades is not None
    publisher = AmqpPublisher(
        proxied_url, topology, confirms=True, confirm_timeout=0.3, reconnect_interval=0.1
    )
    async with trade_batches(publisher, amqp_url, topology) as batches:
        publisher.publish(make_batch(trades, "before"))
        assert await read_until(batches, "before") == ["before"]
        assert publisher.stats.published_messages["T"] == 1  # its confirm came back

        proxy.stall()
        publisher.publish(make_batch(trades, "stalled-1"))
        publisher.publish(make_batch(trades, "stalled-2"))
        # Each is given up after its timeout, one after the other: neither waits for good.
        await eventually(
            lambda: publisher.stats.dropped_messages.get(DropReason.PUBLISH_FAILED, 0) == 2
        )
        assert publisher.connected  # nothing told it the broker went away
        assert publisher.stats.published_messages["T"] == 1

        proxy.resume()
        publisher.publish(make_batch(trades, "after"))
        await eventually(lambda: publisher.stats.published_messages["T"] == 2)
        # The broker took the stalled ones once the link flowed again: counted lost, yet
        # delivered, an overstatement of the loss and never a hidden one.
        assert await read_until(batches, "after") == ["stalled-1", "stalled-2", "after"]
        assert publisher.stats.dropped_messages == {DropReason.PUBLISH_FAILED: 2}


async def test_listener_keeps_streaming_through_a_broker_outage(
    mdq_prefix: str, broker_proxy: tuple[TcpProxy, str]
) -> None:
    from mdp_core.clock import LiveClock
    from mdp_core.settings import Secret, load
    from mdp_core.telemetry import Metrics
    from mdp_listener import ListenerSettings, MassiveListener
    from mdp_sim.scenario import ScenarioConfig
    from mdp_sim.server import SimConfig, SimServers

    proxy, proxied_url = broker_proxy
    config = SimConfig(speed=1.0, scenario=ScenarioConfig(symbols=40, news_per_hour=0.0))
    publisher = AmqpPublisher(
        proxied_url, Topology(prefix=mdq_prefix), outbox_messages=3, reconnect_interval=0.1
    )
    await publisher.start()
    async with SimServers(config) as sim:
        settings = load(
            ListenerSettings,
            {},
            api_key=Secret(sim.api_key),
            feed=sim.massive_feed,
            secure=False,
            always_on=True,
            topics=("T.*", "Q.*"),
            batch_interval_seconds=0.01,
            heartbeat_enabled=False,
        )
        metrics = Metrics("listener")
        listener = MassiveListener(settings, publisher, LiveClock(), metrics)
        stop = asyncio.Event()
        task = asyncio.create_task(listener.run(stop))
        stats = publisher.stats
        try:
            await eventually(lambda: listener.ready)
            await proxy.cut()
            await eventually(lambda: not listener.ready)
            await eventually(lambda: stats.dropped_events.get(DropReason.BROKER_DOWN, 0) > 0)
            assert listener.streaming  # upstream never noticed
            await proxy.restore()
            published = stats.total_published_events
            await eventually(lambda: listener.ready and stats.total_published_events > published)
            assert listener.sessions == 1
            assert stats.reconnects >= 1
            queue_figures = listener.metrics_snapshot()["queue"]
            assert queue_figures["dropped_events"][DropReason.BROKER_DOWN] > 0
        finally:
            stop.set()
            await task
            await publisher.close()
