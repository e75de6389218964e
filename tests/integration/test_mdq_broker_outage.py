"""Surviving a broker restart, without restarting the shared broker.

A small TCP proxy of our own sits between the publisher and RabbitMQ; cutting it (closing every
piped connection and refusing new ones) looks to the client exactly like a broker that went
away, and restoring it like a broker that came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
import pytest

from mdp_core.envelope import encode_envelope
from mdp_queues import AmqpConsumer, AmqpPublisher, DropReason, OutgoingBatch, QueueSpec, Topology


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; can be cut and restored on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(OSError, RuntimeError):
                writer.transport.abort()


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    proxied = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}")
    yield proxy, proxied.geturl()
    with contextlib.suppress(AssertionError):
        await proxy.cut()


def make_batch(queue: QueueSpec, batch_id: str) -> OutgoingBatch:
    now = time.time_ns()
    raws = [msgspec.Raw(b'{"ev":"T","sym":"MSFT","p":2.5,"s":1,"t":1}')] * 5
    body = encode_envelope(kind="T", source="test", batch=batch_id, received_ns=now, events=raws)
    return OutgoingBatch(queue=queue, body=body, batch_id=batch_id, received_ns=now, events=5)


async def test_publisher_survives_a_broker_outage_counting_what_it_dropped(
    amqp_url: str, mdq_prefix: str, broker_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = broker_proxy
    topology = Topology(prefix=mdq_prefix)
    trades = topology.for_kind("T")
    assert trades is not None
    publisher = AmqpPublisher(proxied_url, topology, outbox_messages=4, reconnect_interval=0.1)
    consumer = AmqpConsumer(amqp_url, topology)  # straight to the broker
    await publisher.start()
    await consumer.start()
    batches = consumer.consume_batches(trades, max_wait_seconds=0)
    try:
        publisher.publish(make_batch(trades, "before"))
        async with asyncio.timeout(10):
            got = await anext(batches)
        assert got.messages[0].envelope.batch == "before"
        await got.ack()

        await proxy.cut()
        async with asyncio.timeout(10):
            while publisher.connected:
                await asyncio.sleep(0.01)
        for n in range(10):
            publisher.publish(make_batch(trades, f"during-{n}"))
        lost = publisher.stats.dropped_messages
        assert lost.get(DropReason.BROKER_DOWN, 0) >= 6

        await proxy.start()
        async with asyncio.timeout(15):
            await publisher.wait_connected()
        publisher.publish(make_batch(trades, "after"))
        seen: list[str] = []
        async with asyncio.timeout(10):
            while "after" not in seen:
                got = await anext(batches)
                seen.extend(m.envelope.batch for m in got.messages)
                await got.ack()
        assert publisher.stats.reconnects >= 1
        assert "before" not in seen
        # what was waiting when the broker came back was either sent or counted: nothing vanished
        sent = publisher.stats.published_messages["T"]
        dropped = sum(publisher.stats.dropped_messages.values())
        assert sent + dropped == 12
    finally:
        await batches.aclose()
        await consumer.close()
        await publisher.close()


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
        try:
            async with asyncio.timeout(20):
                while not listener.ready:
                    await asyncio.sleep(0.01)
                await proxy.cut()
                while listener.ready:
                    await asyncio.sleep(0.01)
                while publisher.stats.dropped_events.get(DropReason.BROKER_DOWN, 0) == 0:
                    await asyncio.sleep(0.01)
                assert listener.streaming  # upstream never noticed
                await proxy.start()
                published = publisher.stats.total_published_events
                while not (listener.ready and publisher.stats.total_published_events > published):
                    await asyncio.sleep(0.01)
            assert listener.sessions == 1
            assert publisher.stats.reconnects >= 1
            assert listener.metrics_snapshot()["queue"]["dropped_events"][DropReason.BROKER_DOWN] > 0
        finally:
            stop.set()
            await task
            await publisher.close()
