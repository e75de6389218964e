"""The market data queues on a real three-node RabbitMQ cluster, with a node lost mid-stream.

The cluster is private (:class:`mdp_testing.rabbitmq_cluster.RabbitCluster`: own node names,
ports, data and cookie; the shared broker on 5672 is never touched). Pinned here: the
partitioned topology declares idempotently from any node and spreads over the nodes; a client
whose first node is dead connects to the next; and listener -> cluster -> processors (leases in
a real Redis) delivers every event once in feed order per symbol, then keeps going when the
node holding the most partition queues is killed (SIGKILL): the queues are declared again on
the survivors, the processors resume, and what was lost is counted by the publisher or was in
the dead node's queues within one TTL of the kill. The longer run is ``slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest

from mdp_core.clock import LiveClock
from mdp_listener import Batcher
from mdp_queues import AmqpPublisher, Topology, declare_topology
from mdp_queues.nodes import connect_any
from mdp_testing.conformance import aggregate
from mdp_testing.rabbitmq_cluster import RabbitCluster, RabbitClusterUnavailable, RabbitNode

from .test_partitions import SYMBOLS, Owner, until

PARTITIONS = 6
TTL_MS = 5_000
#: How long the pipeline may take to read a fed step in full again after the node is killed:
#: queues declared again, consumers and publisher on a surviving node. Under a minute alone;
#: once on a loaded CI machine (a suite 3 minutes slower than usual) it took longer than 60 s.
RECOVERY_SECONDS = 120

# Three nodes booting and joining take 30-60 s on an idle pair of cores, minutes on a loaded one.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    """Three private nodes for the module (starting them costs about half a minute)."""
    rabbit = RabbitCluster()
    try:
        rabbit.start_sync()
    except RabbitClusterUnavailable as exc:
        rabbit.close()
        reason = f"no private RabbitMQ cluster: {exc}"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"{reason} (CI=true: the real servers are required)", pytrace=False)
        pytest.skip(reason)
    except BaseException:  # a timeout or an interrupt mid-start: leave no node running
        rabbit.close()
        raise
    try:
        yield rabbit
    finally:
        rabbit.close()


def _dead_url() -> str:
    from mdp_core.ports import free_port as _free_port

    return f"amqp://guest:guest@127.0.0.1:{_free_port()}/"


async def test_the_topology_spreads_over_the_nodes_and_declares_again_from_any(
    cluster: RabbitCluster, mdq_prefix: str
) -> None:
    topology = Topology(prefix=mdq_prefix + "spread.", partitions=PARTITIONS, cluster=True)
    first = await connect_any(cluster.urls, reconnect_interval=0.2)
    try:
        await declare_topology(first, topology)
    finally:
        await first.close()
    placed = {
        q: n
        for q, n in cluster.queue_nodes(cluster.nodes[0]).items()
        if q.startswith(topology.prefix)
    }
    assert set(placed) == {spec.name for spec in topology.queues}
    trades = [placed[spec.name] for spec in topology.partitions_of("T")]
    assert set(trades) == {node.name for node in cluster.nodes}  # min-masters: every node
    # A dead first URL: the client goes on to the next node; declaring again changes nothing.
    other = await connect_any([_dead_url(), cluster.urls[2]], reconnect_interval=0.2)
    try:
        assert other.node_index == 1  # the live node, after the dead one
        await declare_topology(other, topology)
    finally:
        await other.close()
    again = {
        q: n
        for q, n in cluster.queue_nodes(cluster.nodes[1]).items()
        if q.startswith(topology.prefix)
    }
    assert again == placed


class Feed:
    """The listener side: a batcher over a publisher, remembering when each bar was sent."""

    def __init__(self, topology: Topology, urls: list[str]) -> None:
        self.topology = topology
        self.publisher = AmqpPublisher(urls, topology, confirms=True, reconnect_interval=0.2)
        self.batcher = Batcher(
            topology, self.publisher, source="t", instance="feed", batch_events=6
        )
        self.start_ms = LiveClock().now_ns() // 1_000_000 - 600_000
        self.steps = 0
        self.sent_at: dict[tuple[str, int], float] = {}

    def step(self) -> None:
        """One bar per symbol, one second later than the last."""
        end_ms = self.start_ms + self.steps * 1_000
        self.steps += 1
        now = time.monotonic()
        raws = []
        for symbol in SYMBOLS:
            raws.append(msgspec.Raw(msgspec.json.encode(aggregate(symbol, end_ms))))
            self.sent_at[(symbol, end_ms)] = now
        self.batcher.add("A", raws, received_ns=LiveClock().now_ns())
        self.batcher.flush()

    @property
    def sent(self) -> set[tuple[str, int]]:
        return set(self.sent_at)


@pytest.fixture
async def owners(
    cluster: RabbitCluster, mdq_prefix: str, redis_db_url: str
) -> AsyncIterator[tuple[Topology, list[Owner]]]:
    topology = Topology(prefix=mdq_prefix + "kill.", partitions=PARTITIONS, cluster=True)
    urls = list(cluster.urls)
    # Each processor lists the nodes in its own order, so they sit on different nodes.
    found = [
        Owner("first", ",".join(urls), topology, redis_db_url),
        Owner("second", ",".join(urls[1:] + urls[:1]), topology, redis_db_url),
    ]
    yield topology, found
    for owner in found:
        with contextlib.suppress(Exception):
            await owner.stop()
    for node in cluster.nodes:  # the next test gets the whole cluster again
        await asyncio.to_thread(cluster.restart, node)


@pytest.mark.parametrize(
    "steps", [pytest.param(20, id="short"), pytest.param(150, id="long", marks=pytest.mark.slow)]
)
async def test_a_node_lost_mid_stream_loses_only_what_is_counted_or_within_a_ttl(
    cluster: RabbitCluster, owners: tuple[Topology, list[Owner]], steps: int
) -> None:
    topology, (first, second) = owners
    victim_index = 1  # b: neither first's nor the feed's first node, but it holds queues
    feed = Feed(topology, list(cluster.urls[2:] + cluster.urls[:2]))

    def seen() -> list[tuple[str, int]]:
        return first.seen.events + second.seen.events

    async def read(wanted: set[tuple[str, int]]) -> bool:
        return wanted <= set(seen())

    await feed.publisher.start()
    first.start()
    second.start()

    async def shared() -> bool:
        a, b = first.processor.partitions, second.processor.partitions
        return bool(a) and bool(b) and a | b == set(range(PARTITIONS))

    await until(shared, 30)
    for _ in range(10):
        feed.step()
    await until(lambda: read(feed.sent), 30)
    # Before any loss: each event once, each symbol in feed order.
    assert sorted(seen()) == sorted(feed.sent)
    assert len(seen()) == len(set(seen()))
    _assert_in_order(first, second)

    placed = cluster.queue_nodes(cluster.nodes[0])
    victim: RabbitNode = cluster.nodes[victim_index]
    victim_queues = {
        q for q, n in placed.items() if n == victim.name and q.startswith(topology.prefix)
    }
    assert any(spec.name in victim_queues for spec in topology.partitions_of("A"))

    # Mid-stream: the feed goes on while the node dies.
    for _ in range(steps // 2):
        feed.step()
        await asyncio.sleep(0.01)  # the feed's pace: 100 bars/s per symbol at most
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.kill, victim)
    for _ in range(steps // 2):
        feed.step()
        await asyncio.sleep(0.01)

    # Recovery: a step fed now is read in full (queues re-declared, consumers resumed).
    async def recovered() -> bool:
        feed.step()
        wanted = {k for k, at in feed.sent_at.items() if at == max(feed.sent_at.values())}
        with contextlib.suppress(TimeoutError):
            await until(lambda: read(wanted), 1.0)
            return True
        return False

    try:
        await until(recovered, RECOVERY_SECONDS)
    except TimeoutError:
        report = await _unrecovered(cluster, victim, topology, feed, (first, second))
        pytest.fail(f"no recovery within {RECOVERY_SECONDS} s\n" + report)
    recovered_at = time.monotonic()
    tail_from = feed.steps
    for _ in range(10):
        feed.step()
    tail = {k for k in feed.sent if (k[1] - feed.start_ms) // 1_000 >= tail_from}
    await until(lambda: read(tail), 30)

    everything = seen()
    missing = feed.sent - set(everything)
    stats = feed.publisher.stats
    counted = stats.total_dropped_events
    victim_partitions = {
        spec.partition for spec in topology.partitions_of("A") if spec.name in victim_queues
    }
    for symbol, end_ms in missing:
        at = feed.sent_at[(symbol, end_ms)]
        # Nothing older than one TTL before the kill, nothing after the recovery.
        assert killed_at - TTL_MS / 1_000 <= at <= recovered_at
    uncounted = [k for k in missing if topology.partition(k[0]) not in victim_partitions]
    assert len(uncounted) <= counted  # losses off the dead node's queues were all counted
    # Counted on the way: returned, cut off, waiting while no node answered, or waiting past
    # the TTL (a loaded machine) - never dropped on closing, which would mean a stuck send.
    assert set(stats.dropped_events) <= {
        "unroutable",
        "publish_failed",
        "broker_down",
        "outbox_full",
        "expired",
    }
    _assert_in_order(first, second)
    assert first.processor.stats.handovers >= 0  # both still running: no crash on the loss
    await feed.publisher.close()


_OWNER_FIGURES = ("messages", "events", "handovers", "leases_lost", "ownership_failures")


async def _unrecovered(
    cluster: RabbitCluster,
    victim: RabbitNode,
    topology: Topology,
    feed: Feed,
    owners: tuple[Owner, Owner],
) -> str:
    """Where the last step's bars stopped, when a recovery never came.

    For a rare CI failure that did not reproduce in runs alone or under CPU load.
    """
    last = max(feed.sent_at.values())
    read = {event for owner in owners for event in owner.seen.events}
    unread = sorted(k for k, at in feed.sent_at.items() if at == last and k not in read)
    survivor = next(node for node in cluster.nodes if node is not victim)
    queues = await asyncio.to_thread(cluster.queue_nodes, survivor)
    lines = [f"unread bars of the last step: {unread}"]
    for owner in owners:
        processor = owner.processor
        figures = processor.stats.snapshot()
        counts = {name: figures[name] for name in _OWNER_FIGURES}
        lines.append(
            f"{processor.config.instance}: partitions {sorted(processor.partitions)}, "
            f"consumer connected {processor.consumer.connected}, {counts}"
        )
    for partition in sorted({topology.partition(symbol) for symbol, _ in unread}):
        name = next(s.name for s in topology.partitions_of("A") if s.partition == partition)
        lines.append(f"partition {partition}: queue {name} on {queues.get(name, 'no node')}")
    lines.append(f"publisher dropped {dict(feed.publisher.stats.dropped_events)}")
    return "\n".join(lines)


def _assert_in_order(first: Owner, second: Owner) -> None:
    """Each owner read each symbol's bars in feed order (redeliveries are caught upstream)."""
    for owner in (first, second):
        for symbol in SYMBOLS:
            times = [t for s, t in owner.seen.events if s == symbol]
            assert times == sorted(times)
