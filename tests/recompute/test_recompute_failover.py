"""The whole pipeline on a Redis Cluster and a RabbitMQ cluster, losing a node of each mid-stream.

simulator -> recording proxy -> listener -> a private three-node RabbitMQ cluster (partitioned
queues declared for a cluster, publisher confirms on as in the cluster deployment) -> two
processor replicas owning 4 partitions -> a private Redis Cluster (3 masters, 1 replica each)
-> scanner. Each client lists the RabbitMQ nodes from another node on (replica ``r0`` from
``a``, ``r1`` from ``b``, the listener from ``c``).

Phase 1 streams across 09:30 and drains: boards, ranges and alerts are exactly what the
recorded feed recomputes to (:mod:`recompute`), as in ``test_recompute``, and every bar on the
tape reached a processor. Phase 2 streams on while a Redis master is SIGKILLed (the test waits
until its replica is promoted and every processor has written again) and then RabbitMQ node
``b`` is killed (it holds market data queues, and it is ``r1``'s first node, not the listener's
or ``r0``'s), and streams on after both.

Recovery: every bar the listener received after the recovery reached a processor; the volume
and gap boards (built from each symbol's latest bar, which came after both losses) are exactly
the recomputation of the whole tape; each range document shows the close of its symbol's
latest bar; the processors, the scanner and the listener are still running and the
publisher did not stop.

The Redis master killed is the one the scanner's pub/sub is on (it subscribes on a random master
of the slot map, :func:`mdp_cache.client.subscriber`): the scanner must read the map again and
subscribe on a live master. Before that, redis-py's cluster pub/sub stayed on the client's
default node after it died, and the scanner resubscribed to a dead node for good.

Counted loss: a bar on the tape that no processor applied was received within one TTL before a
kill and before that loss's recovery; those off the dead node's queues and outside the Redis
failover (when the processors held back and the broker may expire what waited one TTL) are no
more than the events the publisher and the consumers counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from mdp_cache.keys import (
    FEED_ALERTS_HOD,
    FEED_ALERTS_LOD,
    FEED_QUOTE,
    KEY_LB_ROWS,
    KEY_WIDGET_VERSION,
)
from mdp_queues import Topology
from mdp_testing.rabbitmq_cluster import RabbitCluster, RabbitClusterUnavailable
from mdp_testing.redis_cluster import RedisCluster

from .pipeline import BarKey, Pipeline, Variant, eventually
from .recompute import (
    Bar,
    Report,
    bars_of,
    check_alerts,
    compare_boards,
    compare_ranges,
    format_report,
    recompute,
)
from .tape import FrameFaults
from .test_recompute import ALERT_GRACE_SECONDS, DAY, SCHEDULE

pytestmark = [
    pytest.mark.integration,
    # Three RabbitMQ nodes boot and join in 30-60 s on an idle pair of cores, more on a loaded one.
    pytest.mark.timeout(600),
]

#: The queues' TTL (the topology's default): nothing older waits in a queue.
TTL_SECONDS = Topology().queues[0].ttl_seconds
#: The publisher's drop reasons a lost node may cause (never ``closed``: a stuck send).
LOSS_REASONS = {"unroutable", "publish_failed", "broker_down", "outbox_full", "expired"}

VARIANT = Variant(
    "Redis Cluster + RabbitMQ cluster: two replicas owning 4 partitions, reordered",
    DAY,
    "09:29",
    replicas=2,
    partitions=4,
    symbols=40,
    sim_seconds=120.0,
    faults=FrameFaults(drop_op=True, reorder_every=5),
    trade_symbols=0,  # what is checked here is the bars' recovery
)


@dataclass(frozen=True, slots=True)
class Phase2:
    """Market seconds streamed before the Redis kill, between the kills and after recovery."""

    lead: float
    between: float
    tail: float
    #: Kill the master the scanner's pub/sub is on (else another, not the cluster URL's node).
    scanner_master: bool = True


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitCluster]:
    """Three private RabbitMQ nodes (as ``test_mdq_cluster``: skip locally, fail under CI)."""
    cluster = RabbitCluster()
    try:
        cluster.start_sync()
    except RabbitClusterUnavailable as exc:
        cluster.close()
        reason = f"no private RabbitMQ cluster: {exc}"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"{reason} (CI=true: the real servers are required)", pytrace=False)
        pytest.skip(reason)
    except BaseException:  # a timeout or an interrupt mid-start: leave no node running
        cluster.close()
        raise
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
async def redis_cluster() -> AsyncIterator[RedisCluster]:
    """A Redis Cluster of the test's own (a master of it is killed)."""
    cluster = RedisCluster()
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.mark.parametrize(
    "phase2",
    [
        # The short case is the one `dev.py rerun` repeats (its budget holds five of it).
        pytest.param(Phase2(30.0, 30.0, 30.0), id="short", marks=pytest.mark.restart),
        # Longer phases; the Redis master killed is not the scanner's. (It once showed range
        # prices of a second bar its minute bar had superseded, which the scanner kept because
        # it ordered prices by bar start: fixed, and pinned in test_daily_range.)
        pytest.param(
            Phase2(120.0, 120.0, 180.0, scanner_master=False), id="long", marks=pytest.mark.slow
        ),
    ],
)
async def test_the_pipeline_recovers_from_a_lost_redis_master_and_rabbitmq_node(
    rabbit: RabbitCluster, redis_cluster: RedisCluster, mdq_prefix: str, phase2: Phase2
) -> None:
    pipeline = Pipeline(
        VARIANT,
        ",".join(rabbit.urls),
        mdq_prefix,
        redis_cluster.url(),
        mdq_cluster=True,
        record_applied=True,
    )
    try:
        async with pipeline.running():
            await _phase1_is_exact(pipeline)
            await _phase2_recovers_and_counts_its_losses(pipeline, rabbit, redis_cluster, phase2)
    finally:
        for node in rabbit.nodes:  # a next test gets the whole cluster again
            await asyncio.to_thread(rabbit.restart, node)


# --- phase 1 -----------------------------------------------------------------------------------


def _tape_bars(pipeline: Pipeline) -> list[Bar]:
    assert pipeline.proxy is not None
    return bars_of((frame.sent_seconds, frame.text) for frame in pipeline.proxy.tape)


def _key(bar: Bar) -> BarKey:
    return (bar.kind, bar.symbol, bar.start_ms, bar.end_ms)


def _applied(pipeline: Pipeline) -> set[BarKey]:
    keys: set[BarKey] = set()
    for replica in pipeline.replicas:
        assert replica.applied is not None
        keys |= replica.applied.bars
    return keys


async def _phase1_is_exact(pipeline: Pipeline) -> None:
    """Stream across 09:30, drain, and compare everything with the recomputation."""
    await pipeline.stream()
    await pipeline.drain()
    observed = await pipeline.observed()
    bars = _tape_bars(pipeline)
    prev_close = await pipeline.previous_closes({b.symbol for b in bars})
    summary = pipeline.describe()
    expected = recompute(bars, SCHEDULE, prev_close)
    assert {"pre_market", "regular"} <= {s for _, s in expected.session_bars}, summary
    assert {_key(b) for b in bars} == _applied(pipeline), summary  # every bar, none invented
    report = Report()
    report.merge(compare_boards(expected, observed.boards, VARIANT.board_size))
    report.merge(compare_ranges(expected, observed.ranges))
    report.merge(
        check_alerts(
            expected,
            observed.hod,
            observed.lod,
            grace_seconds=ALERT_GRACE_SECONDS,
            cap=FEED_ALERTS_HOD.max_len,
        )
    )
    assert FEED_ALERTS_HOD.max_len == FEED_ALERTS_LOD.max_len
    assert not report.mismatches, f"phase 1: {summary}\n{format_report(report)}"


# --- phase 2 -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Losses:
    """When each loss happened and recovered (monotonic seconds, the tape's clock)."""

    redis_killed: float = 0.0
    redis_recovered: float = 0.0
    rabbit_killed: float = 0.0
    rabbit_recovered: float = 0.0
    rabbit_queues: frozenset[tuple[str, int]] = frozenset()  # (kind, partition) on the node


async def _pattern_subscribed_master(redis_cluster: RedisCluster) -> int:
    """The one master holding a pattern subscription (the scanner's ``quote:*``)."""
    found = []
    for port in await redis_cluster.masters():
        client = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            patterns = await client.execute_command("PUBSUB", "NUMPAT")  # type: ignore[no-untyped-call] # redis-py leaves execute_command untyped
        finally:
            await client.aclose()
        if int(patterns) > 0:
            found.append(port)
    assert len(found) == 1, f"pattern subscriptions on masters {found}"
    return found[0]


async def _phase2_recovers_and_counts_its_losses(
    pipeline: Pipeline, rabbit: RabbitCluster, redis_cluster: RedisCluster, phase2: Phase2
) -> None:
    assert pipeline.proxy is not None
    losses = Losses()
    topology = pipeline.topology
    await pipeline.proxy.thaw()
    await pipeline.advance(phase2.lead)

    # A Redis master dies; its replica is promoted; every processor writes again. In the short
    # case it is the master the scanner's pub/sub is on: the scanner must subscribe again.
    scanners = await _pattern_subscribed_master(redis_cluster)
    if phase2.scanner_master:
        victim_port = scanners
    else:
        spared = {redis_cluster.ports[0], scanners}
        victim_port = next(p for p in await redis_cluster.masters() if p not in spared)
    failures = [r.processor.stats.write_failures for r in pipeline.replicas]
    losses.redis_killed = time.monotonic()
    await redis_cluster.kill(victim_port)
    await redis_cluster.wait_ok([p for p in redis_cluster.ports if p != victim_port])
    flushes = [r.processor.stats.flushes for r in pipeline.replicas]

    async def writing_again() -> bool:
        return all(
            r.processor.stats.flushes >= f + 2
            for r, f in zip(pipeline.replicas, flushes, strict=True)
        )

    await eventually("every processor flushing after the failover", writing_again, 30)
    losses.redis_recovered = time.monotonic()
    now_failed = [r.processor.stats.write_failures for r in pipeline.replicas]
    assert now_failed > failures, "the Redis kill did not interrupt any write"
    await pipeline.advance(phase2.between)

    # A RabbitMQ node holding market data queues dies: r1's first node, not r0's or the listener's.
    victim = rabbit.nodes[1]
    placed = await asyncio.to_thread(rabbit.queue_nodes, rabbit.nodes[0])
    losses.rabbit_queues = frozenset(
        (spec.kind, spec.partition)
        for kind in ("A", "AM")
        for spec in topology.partitions_of(kind)
        if placed.get(spec.name) == victim.name and spec.partition is not None
    )
    assert any(kind == "A" for kind, _ in losses.rabbit_queues), placed
    losses.rabbit_killed = time.monotonic()
    await asyncio.to_thread(rabbit.kill, victim)

    # Recovered: every bar queue has delivered a bar the listener received after the kill.
    delivering = Delivering(pipeline, losses.rabbit_killed)
    try:
        await eventually("every bar queue delivering after the node loss", delivering.all, 60)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}: silent {sorted(delivering.silent)}, dead node's "
            f"{sorted(losses.rabbit_queues)}; publisher {pipeline.publisher.stats}; consumers "
            f"{[r.consumer.stats for r in pipeline.replicas]}; partitions "
            f"{[r.processor.partitions for r in pipeline.replicas]}"
        ) from None
    losses.rabbit_recovered = max(delivering.first.values())
    await pipeline.advance(phase2.tail)
    await pipeline.proxy.freeze()
    await _settle(pipeline, losses)
    await _check_recovery(pipeline, losses)
    _check_counted_loss(pipeline, losses)


class Tape:
    """The tape's bars, each frame parsed once (the predicates are polled every 10 ms)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._frames = 0

    def new_bars(self) -> list[Bar]:
        assert self._pipeline.proxy is not None
        tape = self._pipeline.proxy.tape
        frames = tape[self._frames :]
        self._frames += len(frames)
        return bars_of((frame.sent_seconds, frame.text) for frame in frames)


def _was_applied(pipeline: Pipeline, bar: Bar) -> bool:
    key = _key(bar)
    return any(r.applied is not None and key in r.applied.bars for r in pipeline.replicas)


class Delivering:
    """Which bar queues (kind, partition) delivered a bar received after ``since``, and when
    the first such bar (in tape order) was received."""

    def __init__(self, pipeline: Pipeline, since: float) -> None:
        self._pipeline = pipeline
        self._since = since
        self._tape = Tape(pipeline)
        self._waiting: list[Bar] = []
        partitions = pipeline.topology.partitions
        self.silent = {(kind, n) for kind in ("A", "AM") for n in range(partitions)}
        self.first: dict[tuple[str, int], float] = {}

    def _queue(self, bar: Bar) -> tuple[str, int]:
        return (bar.kind, self._pipeline.topology.partition(bar.symbol))

    async def all(self) -> bool:
        self._waiting.extend(b for b in self._tape.new_bars() if b.received_seconds > self._since)
        waiting: list[Bar] = []
        for bar in self._waiting:
            queue = self._queue(bar)
            if queue not in self.silent:
                continue
            if _was_applied(self._pipeline, bar):
                self.first[queue] = bar.received_seconds
                self.silent.discard(queue)
            else:
                waiting.append(bar)
        self._waiting = [b for b in waiting if self._queue(b) in self.silent]
        return not self.silent


async def _settle(pipeline: Pipeline, losses: Losses) -> None:
    """The lossy drain: the listener has the tape, the publisher sent or counted every batch,
    every bar received after the recovery was applied, then the drain's settling steps."""
    on_tape = pipeline.events_on_tape()
    received = pipeline.listener_metrics.counter("events_in")
    stats = pipeline.publisher.stats

    async def listener_has_all() -> bool:
        return received.total >= on_tape

    await eventually(f"the listener receiving {on_tape} events", listener_has_all, 45)

    async def all_handled() -> bool:
        return stats.total_published_events + stats.total_dropped_events >= received.total

    await eventually("the listener publishing (or counting) everything", all_handled, 45)
    after = [b for b in _tape_bars(pipeline) if b.received_seconds >= losses.rabbit_recovered]
    count = len(after)

    async def tail_applied() -> bool:
        after[:] = [b for b in after if not _was_applied(pipeline, b)]
        return not after

    try:
        await eventually(f"the {count} bars after the recovery being applied", tail_applied, 45)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(after)} not, the first {after[:3]}") from None
    await pipeline.settle(scanner_lost=True)


async def _check_recovery(pipeline: Pipeline, losses: Losses) -> None:
    for task in pipeline.tasks:
        assert not task.done(), task  # the scanner and the listener still run
    for replica in pipeline.replicas:
        assert replica.task is not None
        assert not replica.task.done(), replica.processor.config.instance
    assert pipeline.publisher.failure is None
    scanner = pipeline.scanner
    assert scanner is not None
    assert scanner.stats.connected, scanner.stats  # subscribed again after the failover
    bars = _tape_bars(pipeline)
    assert any(b.received_seconds > losses.rabbit_recovered for b in bars)
    observed = await pipeline.observed()
    prev_close = await pipeline.previous_closes({b.symbol for b in bars})
    whole = recompute(bars, SCHEDULE, prev_close)
    # Volume and gap rows come from each symbol's latest bar (received after both recoveries):
    # exact whatever was lost on the way. (Gainers and ranges also depend on earlier bars.)
    latest_only = {"board:top_volume", "board:top_gappers"}
    boards = compare_boards(whole, observed.boards, VARIANT.board_size)
    report = Report()
    report.mismatches = [m for m in boards.mismatches if m.area in latest_only]
    for area in latest_only:
        report.compared[area] += boards.compared.get(area, 0)
    assert sum(report.compared.values()) > 0
    # Each range shows the close of its symbol's latest bar, by the rule of a board row (the
    # greatest end, then accumulated volume, volume, close): the row a quote record carries,
    # which MDC keeps of two rows ending together whichever replica wrote last.
    last: dict[str, Bar] = {}
    for bar in bars:
        if bar.good and (bar.symbol not in last or bar.order > last[bar.symbol].order):
            last[bar.symbol] = bar
    closes = {symbol: {bar.close} for symbol, bar in last.items()}
    for symbol, latest in sorted(closes.items()):
        got = observed.ranges.get(symbol, {}).get("price")
        if got in latest:
            report.compared["range"] += 1
        else:
            report.fail("range", symbol, "price (a latest close)", sorted(latest), got)
    if report.mismatches:
        wrong = sorted({m.symbol for m in report.mismatches if m.area == "range"})
        detail = "\n".join([await _explain_range(pipeline, s, bars, losses) for s in wrong[:5]])
        raise AssertionError(
            f"after recovery: {pipeline.describe()}\n{format_report(report)}\n{detail}"
        )


async def _explain_range(pipeline: Pipeline, symbol: str, bars: list[Bar], losses: Losses) -> str:
    """Where a wrong range price came from: the quote record, the MDC row, the last bars."""

    def bar_text(doc: dict[str, Any]) -> str:
        return f"price {doc.get('price')}, bar {doc.get('start_ms')}-{doc.get('end_ms')}"

    lines = [f"-- {symbol}"]
    name = FEED_QUOTE.name(symbol=symbol)
    record = await pipeline.redis.get(name)
    version = await pipeline.redis.get(KEY_WIDGET_VERSION.name(feed=name))
    if record is not None:
        lines.append(f"quote record: {bar_text(msgspec.json.decode(record))}, version {version!r}")
    row = await pipeline.redis.hget(KEY_LB_ROWS.name(day=DAY.isoformat()), symbol)
    if row is not None:
        with contextlib.suppress(msgspec.DecodeError):
            lines.append(f"MDC row: {bar_text(msgspec.json.decode(row))}")
    since = losses.rabbit_recovered
    mine = sorted((b for b in bars if b.symbol == symbol and b.good), key=lambda b: b.arrival)
    lines.extend(
        f"bar {b.kind} {b.start_ms}-{b.end_ms} close {b.close}, received "
        f"{b.received_seconds - since:+.2f} s after the recovery, "
        f"applied {_was_applied(pipeline, b)}"
        for b in mine[-4:]
    )
    return "\n".join(lines)


def _check_counted_loss(pipeline: Pipeline, losses: Losses) -> None:
    topology = pipeline.topology
    bars = _tape_bars(pipeline)
    applied = _applied(pipeline)
    missing = [b for b in bars if _key(b) not in applied]
    redis_window = (losses.redis_killed - TTL_SECONDS, losses.redis_recovered)
    rabbit_window = (losses.rabbit_killed - TTL_SECONDS, losses.rabbit_recovered)

    def within(bar: Bar, window: tuple[float, float]) -> bool:
        return window[0] <= bar.received_seconds <= window[1]

    outside = [b for b in missing if not within(b, redis_window) and not within(b, rabbit_window)]
    assert outside == [], f"{len(outside)} bars lost outside the loss windows: {outside[:5]}"
    uncounted = [
        b
        for b in missing
        if not within(b, redis_window)
        and (b.kind, topology.partition(b.symbol)) not in losses.rabbit_queues
    ]
    publisher = pipeline.publisher.stats
    consumers = sum(sum(r.consumer.stats.dropped_events.values()) for r in pipeline.replicas)
    counted = publisher.total_dropped_events + consumers
    detail = (
        f"{len(missing)} of {len(bars)} bars missing, {len(uncounted)} off the dead node's "
        f"queues and the Redis failover; publisher dropped {publisher.dropped_events}, "
        f"consumers dropped {consumers}"
    )
    assert len(uncounted) <= counted, detail
    assert set(publisher.dropped_events) <= LOSS_REASONS, detail
    print(detail)  # the run's loss figures, shown with -s
