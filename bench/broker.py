"""Benchmark: messages/s through a private RabbitMQ cluster, and the broker's CPU per message.

Starts a three-node cluster of its own (:class:`mdp_testing.rabbitmq_cluster.RabbitCluster`,
never the shared broker), declares the partitioned MDQ topology (cluster mode: spread over the
nodes, or ``--one-node``: every queue on the first node), and for ``--seconds`` publishes
envelopes of ``--events`` aggregate events round robin over the partitions of ``A`` from one
connection per node, while an :class:`~mdp_queues.AmqpConsumer` per node drains every queue
with ``multiple`` acks, as the processors do. Prints messages/s and events/s consumed and the
broker's CPU seconds per 100k messages, summed over every node's process group: the figure
that says how many messages one node's core carries. Not a test: the figures depend on the
machine (2 shared cores here, every node and the client on them).

Usage::

    uv run python bench/broker.py [--events 50] [--partitions 6] [--seconds 10] [--one-node]
        [--confirms]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path

import aio_pika
import msgspec

from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_queues import AmqpConsumer, Topology, declare_topology
from mdp_queues.nodes import connect_any
from mdp_testing.conformance import aggregate
from mdp_testing.rabbitmq_cluster import RabbitCluster

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(group: int) -> float:
    """User + system CPU of every process in process group ``group``."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def _broker_cpu(cluster: RabbitCluster) -> float:
    return sum(_cpu_seconds(n.process.pid) for n in cluster.nodes if n.process is not None)


async def _run(  # noqa: C901 - one linear run: set up, measure, report
    args: argparse.Namespace, cluster: RabbitCluster
) -> dict[str, object]:
    topology = Topology(
        prefix=f"bench-{uuid.uuid4().hex[:6]}.",
        partitions=args.partitions,
        cluster=not args.one_node,
    )
    urls = list(cluster.urls[:1] if args.one_node else cluster.urls)
    setup = await connect_any(urls, reconnect_interval=0.5)
    await declare_topology(setup, topology)
    await setup.close()
    queues = topology.partitions_of("A")
    now_ms = LiveClock().now_ns() // 1_000_000
    raws = [
        msgspec.Raw(msgspec.json.encode(aggregate(f"S{i:04d}", now_ms))) for i in range(args.events)
    ]
    clock = LiveClock()

    def fresh_body() -> bytes:
        # Stamped now: consumers drop envelopes older than the TTL as stale.
        return encode_envelope(
            kind="A",
            source="bench",
            batch=uuid.uuid4().hex,
            received_ns=clock.now_ns(),
            events=raws,
        )

    consumed = 0
    measuring = False

    async def drain(consumer: AmqpConsumer, queue_index: int) -> None:
        nonlocal consumed
        async for batch in consumer.consume_batches(
            queues[queue_index], max_messages=200, max_wait_seconds=0.005
        ):
            if measuring:
                consumed += len(batch.messages)
            await batch.ack()

    consumers = [
        AmqpConsumer(urls[i:] + urls[:i], topology, prefetch=1_000) for i in range(len(urls))
    ]
    for consumer in consumers:
        await consumer.start()
    tasks = [
        asyncio.create_task(drain(consumers[i % len(consumers)], i)) for i in range(len(queues))
    ]
    connections = [await aio_pika.connect(url) for url in urls]
    # With confirms each publish waits for the broker's ack, as AmqpPublisher does.
    channels = [await c.channel(publisher_confirms=args.confirms) for c in connections]

    async def publish(index: int, until: float) -> int:
        exchange = channels[index % len(channels)].default_exchange
        sent = 0
        body = fresh_body()
        while time.monotonic() < until:
            if sent % 200 == 0:
                body = fresh_body()
            queue = queues[(index + sent) % len(queues)]
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
                routing_key=queue.name,
                mandatory=args.confirms,
            )
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)
        return sent

    idle_before, idle_started = _broker_cpu(cluster), time.monotonic()
    await asyncio.sleep(3)  # the nodes' own background work, to subtract
    idle_share = (_broker_cpu(cluster) - idle_before) / (time.monotonic() - idle_started)
    await asyncio.gather(
        *(publish(i, time.monotonic() + 2) for i in range(len(channels)))
    )  # warm-up
    measuring = True
    cpu_before, started = _broker_cpu(cluster), time.monotonic()
    sent = sum(
        await asyncio.gather(*(publish(i, started + args.seconds) for i in range(len(channels))))
    )
    elapsed = time.monotonic() - started
    cpu = _broker_cpu(cluster) - cpu_before
    measuring = False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for consumer in consumers:
        await consumer.close()
    for connection in connections:
        await connection.close()
    placed = cluster.queue_nodes(cluster.nodes[0])
    per_node = {
        n.name: sum(1 for q, at in placed.items() if at == n.name and q.startswith(topology.prefix))
        for n in cluster.nodes
    }
    return {
        "events_per_message": args.events,
        "message_bytes": len(fresh_body()),
        "partitions": args.partitions,
        "placement": "one node" if args.one_node else "spread (min-masters)",
        "publisher_confirms": args.confirms,
        "queues_per_node": per_node,
        "published_messages_per_second": round(sent / elapsed),
        "consumed_messages_per_second": round(consumed / elapsed),
        "consumed_events_per_second": round(consumed * args.events / elapsed),
        "broker_cpu_share_of_one_core": round(cpu / elapsed, 3),
        "broker_idle_cpu_share": round(idle_share, 3),
        "broker_cpu_seconds_per_100k_messages_net_of_idle": round(
            max(cpu - idle_share * elapsed, 0) / max(consumed, 1) * 100_000, 2
        ),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    """Start the private cluster, run the benchmark, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50, help="events per message (50)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of A (6)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time (10)")
    parser.add_argument("--one-node", action="store_true", help="every queue and client on node a")
    parser.add_argument("--confirms", action="store_true", help="publisher confirms, mandatory")
    args = parser.parse_args()
    cluster = RabbitCluster()
    try:
        cluster.start_sync()
        print(json.dumps(asyncio.run(_run(args, cluster)), indent=2))
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
