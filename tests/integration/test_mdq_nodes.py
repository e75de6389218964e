"""Failing over between broker nodes and counting unroutable batches, on the shared broker.

Two "nodes" are the broker behind a cuttable proxy and the broker itself: cutting the proxy
drops the connection as a node's death would, and the client must reconnect to the next URL.
The three-node cluster itself is exercised in ``test_mdq_cluster.py``.
"""

from __future__ import annotations

import asyncio

import aio_pika

from mdp_queues import AmqpPublisher, DropReason, Topology
from mdp_queues.nodes import connect_any
from mdp_testing.proxy import TcpProxy

from .test_mdq_broker_outage import eventually, make_batch


async def test_a_dead_first_node_is_skipped_and_a_lost_node_is_replaced_by_the_next(
    amqp_url: str,
) -> None:
    async with TcpProxy.for_url(amqp_url) as first, TcpProxy.for_url(amqp_url) as dead:
        await dead.cut()
        connection = await connect_any(
            [dead.proxied(amqp_url), first.proxied(amqp_url), amqp_url], reconnect_interval=0.1
        )
        try:
            assert connection.node_index == 1  # the dead one was tried first
            reconnected = asyncio.Event()
            connection.reconnect_callbacks.add(lambda *_: reconnected.set())
            await first.cut()  # the node is lost: the next attempt goes to the next URL
            async with asyncio.timeout(20):
                await reconnected.wait()
            assert connection.node_index == 2
            channel = await connection.channel()  # and it works there
            await channel.close()
        finally:
            await connection.close()


async def test_a_batch_for_a_vanished_queue_is_counted_unroutable_and_the_queue_comes_back(
    amqp_url: str, mdq_prefix: str
) -> None:
    topology = Topology(prefix=mdq_prefix)
    trades = topology.for_kind("T")
    assert trades is not None
    # Returned batches are seen only on a confirming channel (aiormq's rule).
    publisher = AmqpPublisher(amqp_url, topology, confirms=True, reconnect_interval=0.1)
    await publisher.start()
    admin = await aio_pika.connect(amqp_url)
    try:
        channel = await admin.channel()
        await channel.queue_delete(trades.name)  # as if its node had died with it
        publisher.publish(make_batch(trades, "lost"))
        await eventually(lambda: publisher.stats.dropped_events.get(DropReason.UNROUTABLE) == 5)
        assert publisher.stats.dropped_messages == {DropReason.UNROUTABLE: 1}

        async def declared_again() -> bool:
            probe = await admin.channel()
            try:
                await probe.declare_queue(trades.name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
            await probe.close()
            return True

        async with asyncio.timeout(10):
            while not await declared_again():  # noqa: ASYNC110 - the broker raises no event
                await asyncio.sleep(0.02)
        publisher.publish(make_batch(trades, "kept"))
        # The returned batch was not counted as published: only the second one is.
        await eventually(lambda: publisher.stats.published_messages.get("T") == 1)
        assert publisher.stats.dropped_messages == {DropReason.UNROUTABLE: 1}
    finally:
        await admin.close()
        await publisher.close()
