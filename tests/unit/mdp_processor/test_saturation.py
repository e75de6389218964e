"""Saturation: a consumer never kept waiting for a batch lets the flush pacing go longer.

The rule (``Processor._saturated``): some consumer holding a batch has been handed batch
after batch without waiting for ``saturation_seconds``. A batch it waited for ends that at
once, and wakes a flusher paced for saturation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date

import msgspec
import pytest

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_core.envelope import encode_envelope
from mdp_core.events import MarketEvent
from mdp_processor.pacing import FlushPacing
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.stats import ProcessorStats
from mdp_queues import MemoryBus, MemoryPublisher, OutgoingBatch, QueueSpec, Topology
from mdp_testing.conformance import aggregate, at_ms
from mdp_testing.widgets import MemoryWidgets

DAY = date(2026, 3, 4)
NOW_NS = at_ms(DAY, 10, 1) * 1_000_000


def make(**config: float) -> tuple[Processor, MemoryBus]:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(**config),  # type: ignore[arg-type]  # floats and ints alike
    )
    return processor, bus


def message(spec: QueueSpec, n: int, events: int) -> OutgoingBatch:
    batch: Sequence[MarketEvent] = [
        aggregate(f"S{i}", at_ms(DAY, 10, 0, n % 60), accumulated_volume=n + 1)
        for i in range(events)
    ]
    raws = [msgspec.Raw(msgspec.json.encode(e)) for e in batch]
    body = encode_envelope(kind="A", source="t", batch=f"m{n}", received_ns=NOW_NS, events=raws)
    return OutgoingBatch(spec, body, f"m{n}", NOW_NS, events)


def flushed(events: int) -> Callable[[ProcessorStats], bool]:
    """Whether at least ``events`` were written."""
    return lambda stats: stats.flushed_events >= events


def test_a_consumer_never_kept_waiting_saturates_from_exactly_the_threshold() -> None:
    processor, _ = make(saturation_seconds=1.0)
    processor._note_delivery("q", waited=False, now=10.0)
    processor._note_delivery("q", waited=False, now=10.5)  # the run started at its first
    processor._busy.add("q")
    assert not processor._saturated(10.999)
    assert processor._saturated(11.0)
    # Not while it does not hold a batch: a consumer suspended between batches is waiting.
    processor._busy.discard("q")
    assert not processor._saturated(12.0)


def test_a_batch_waited_for_ends_saturation_and_the_next_run_starts_afresh() -> None:
    processor, _ = make(saturation_seconds=1.0)
    processor._busy.add("q")
    processor._note_delivery("q", waited=False, now=10.0)
    processor._note_delivery("q", waited=True, now=10.8)
    assert not processor._saturated(11.0)
    processor._note_delivery("q", waited=False, now=10.9)
    assert not processor._saturated(11.899)
    assert processor._saturated(11.9)


def test_one_backlogged_queue_saturates_the_processor_whatever_the_others_do() -> None:
    processor, _ = make(saturation_seconds=1.0)
    processor._busy.update({"quiet", "busy"})
    processor._note_delivery("quiet", waited=True, now=10.0)
    processor._note_delivery("busy", waited=False, now=10.0)
    processor._note_delivery("quiet", waited=True, now=10.9)
    assert processor._saturated(11.0)


def test_a_batch_waited_for_wakes_only_a_flusher_paced_for_saturation() -> None:
    processor, _ = make(saturation_seconds=1.0)
    processor._note_delivery("q", waited=False, now=1.0)
    processor._note_delivery("q", waited=True, now=2.0)  # saturated, but not paced so
    assert not processor._flush_now.is_set()
    processor._paced_saturated = True
    processor._note_delivery("q", waited=False, now=3.0)
    assert not processor._flush_now.is_set()
    processor._note_delivery("q", waited=True, now=4.0)  # exactly the threshold: it was
    assert processor._flush_now.is_set()


def test_only_the_saturated_consumer_catching_up_wakes_the_flusher() -> None:
    processor, _ = make(saturation_seconds=1.0)
    processor._busy.update({"backlogged", "quiet", "brief"})
    processor._note_delivery("backlogged", waited=False, now=10.0)
    processor._note_delivery("brief", waited=False, now=10.5)
    processor._paced_saturated = True
    # A quiet queue's wait says nothing about the backlog: the long pace goes on.
    processor._note_delivery("quiet", waited=True, now=11.0)
    assert not processor._flush_now.is_set()
    # Nor does the end of a run too short to have saturated anything (0.999 s).
    processor._note_delivery("brief", waited=True, now=11.499)
    assert not processor._flush_now.is_set()
    assert processor._saturated(11.5)
    processor._note_delivery("backlogged", waited=True, now=11.5)
    assert processor._flush_now.is_set()
    assert not processor._saturated(11.5)


async def test_a_consumer_that_ends_or_fails_leaves_no_backlog_behind() -> None:
    processor, bus = make(saturation_seconds=1.0)
    spec = bus.topology.for_kind("A")
    assert spec is not None
    processor._backlogged_since[spec.name] = 0.0
    stop = asyncio.Event()
    stop.set()
    await processor._consume(spec, stop)  # ends at once: a consumer started later starts clean
    assert spec.name not in processor._backlogged_since

    pulls = 0

    class Failing:
        """A consumer whose pull fails once, then ends consumption."""

        def consume_batches(self, queue: QueueSpec, **_: float) -> object:
            nonlocal pulls
            pulls += 1
            if pulls == 1:
                processor._backlogged_since[queue.name] = 0.0
                raise ConnectionError("gone")
            stop.set()
            raise ConnectionError("gone again")

    stop.clear()
    processor.consumer = Failing()  # type: ignore[assignment]  # only consume_batches is used
    processor.config = replace(processor.config, retry=BackoffPolicy(0.001, 0.001))
    async with asyncio.timeout(5):
        await processor._consume(spec, stop)
    assert pulls == 2
    assert spec.name not in processor._backlogged_since


def test_with_the_saturated_ceiling_off_nothing_is_paced_or_counted_as_saturated() -> None:
    off = FlushPacing(0.01, 0.025, 0.2, saturated_max_interval_seconds=0.025)
    assert not off.saturates
    assert FlushPacing(0.01, 0.025, 0.2, saturated_max_interval_seconds=0.026).saturates
    assert not FlushPacing(0.1, 0.025, 0.2, saturated_max_interval_seconds=0.05).saturates


async def drain_a_backlog(**config: float) -> tuple[Processor, MemoryPublisher, asyncio.Task[None]]:
    """A running processor that has written a backlog of 400 messages of 50 events.

    A threshold of nothing: a flush that ends while the consumer holds a batch it was handed
    without a wait counts at once, and every 500 events flush while it holds one (it waits
    for room), so the result does not hang on how fast the machine is.
    """
    processor, bus = make(saturation_seconds=0.0, flush_max_events=500, batch_messages=10, **config)
    spec = bus.topology.for_kind("A")
    assert spec is not None
    publisher = bus.publisher()
    await publisher.start()
    for n in range(400):
        publisher.publish(message(spec, n, 50))
    task = asyncio.create_task(processor.run())
    async with asyncio.timeout(60):
        await processor.wait_until(flushed(20_000))
    return processor, publisher, task


async def test_the_mode_off_neither_paces_nor_counts_a_backlog_as_saturation() -> None:
    processor, _, task = await drain_a_backlog(flush_saturated_max_interval_seconds=0.025)
    assert processor.stats.saturated_flushes == 0
    processor.stop()
    await task


def test_nonsense_saturation_settings_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="saturation_seconds"):
        make(saturation_seconds=-1.0)
    with pytest.raises(ValueError, match="saturated_max_interval_seconds"):
        make(flush_saturated_max_interval_seconds=0.0)


async def test_a_backlog_saturates_the_pacing_until_the_consumer_waits_again() -> None:
    processor, publisher, task = await drain_a_backlog()
    assert processor.stats.saturated_flushes >= 1
    spec = processor.consumer.topology.for_kind("A")
    assert spec is not None
    # The consumer has drained the queue and waits: what comes now is paced as usual.
    saturated = processor.stats.saturated_flushes
    publisher.publish(message(spec, 400, 50))
    async with asyncio.timeout(60):
        await processor.wait_until(flushed(20_050))
    assert processor.stats.saturated_flushes == saturated
    assert not processor._paced_saturated
    assert processor.stats.snapshot()["saturated_flushes"] == saturated
    processor.stop()
    await task


async def test_a_consumer_that_waits_for_every_batch_never_saturates() -> None:
    # A threshold of nothing: any batch handed out without a wait would count at once. The
    # first message is published before the run, so its batch is handed out without one;
    # with no idle flush, no flush can end while it is in hand (only the one it asks for,
    # which runs once the consumer has gone back to wait).
    processor, bus = make(saturation_seconds=0.0, idle_flush_seconds=3600.0)
    spec = bus.topology.for_kind("A")
    assert spec is not None
    publisher = bus.publisher()
    await publisher.start()
    task = asyncio.create_task(processor.run())
    for n in range(20):
        # After the first, published once the previous one is written: the consumer asked
        # for it before (it asks as soon as it has ingested a batch, before the flush runs).
        publisher.publish(message(spec, n, 5))
        async with asyncio.timeout(10):
            await processor.wait_until(flushed(5 * (n + 1)))
    assert processor.stats.flushes >= 20
    assert processor.stats.saturated_flushes == 0
    processor.stop()
    await task
