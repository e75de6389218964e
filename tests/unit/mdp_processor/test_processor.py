from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any, cast

import msgspec
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.registry import UnknownAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import (
    FEED_LATEST_LULD,
    FEED_LATEST_TRADE,
    FEED_QUOTE,
    FEED_SCANNER_TOP_VOLUME,
    KEY_SEEN_BATCH,
)
from mdp_cache.records import DailyBar
from mdp_cache.reference import ReferenceCache
from mdp_cache.widgets import WidgetItem
from mdp_core.backoff import BackoffPolicy
from mdp_core.cancellation import RECANCEL_SECONDS
from mdp_core.clock import ManualClock
from mdp_core.envelope import decode_header, encode_envelope
from mdp_core.events import MarketEvent
from mdp_core.settings import load
from mdp_processor.__main__ import metrics_of, readiness_of
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.settings import ProcessorSettings
from mdp_processor.worker import build_analyzers
from mdp_queues import MemoryBus, OutgoingBatch, Received, ReceivedBatch, Topology
from mdp_runtime.process import WorkerStatus
from mdp_testing.conformance import aggregate, at_ms, luld, trade
from mdp_testing.widgets import MemoryWidgets

DAY = date(2026, 3, 4)
NOW_NS = at_ms(DAY, 10, 1) * 1_000_000


def body(events: Sequence[MarketEvent], batch: str) -> bytes:
    raws = [msgspec.Raw(msgspec.json.encode(e)) for e in events]
    return encode_envelope(
        kind=events[0].EV, source="t", batch=batch, received_ns=NOW_NS, events=raws
    )


class Settled:
    def __init__(self) -> None:
        self.results: list[bool] = []

    async def __call__(self, tokens: Sequence[object], ok: bool) -> None:
        # One result per batch settled: each test batch carries one token (its body).
        self.results.extend([ok] * len(tokens))


def delivery(
    bus: MemoryBus, raw: bytes, settled: Settled, *, redelivered: bool = False
) -> ReceivedBatch:
    spec = bus.topology.for_kind("A")
    assert spec is not None
    try:
        header = decode_header(raw)
    except Exception:
        header = decode_header(body([aggregate("X", 1)], "placeholder"))
    return ReceivedBatch([Received(spec, header, raw, redelivered, 0.0)], (raw,), settled)


def make(
    widgets: Any | None = None, analyzers: list[Any] | None = None
) -> tuple[Processor, MemoryBus, Any]:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    sink = widgets or MemoryWidgets()
    processor = Processor(
        bus.consumer(),
        analyzers or [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=sink,
        clock=clock,
        config=ProcessorConfig(retry=BackoffPolicy(0.001, 0.01)),
    )
    return processor, bus, sink


async def test_a_flush_writes_coalesced_output_then_acks() -> None:
    processor, bus, sink = make()
    settled = Settled()
    events = [aggregate("AAA", at_ms(DAY, 10, 0, s), accumulated_volume=s) for s in range(10)]
    await processor.ingest(delivery(bus, body(events, "b1"), settled))
    assert settled.results == []  # not before the write
    await processor.flush()
    assert settled.results == [True]
    store = sink.store
    assert store.document(FEED_QUOTE.name(symbol="AAA"))["accumulated_volume"] == 9
    assert FEED_SCANNER_TOP_VOLUME.name() not in store.values  # boards: the composer's job
    await processor.compose_now()
    assert store.document(FEED_SCANNER_TOP_VOLUME.name())["rows"][0]["symbol"] == "AAA"
    assert processor.stats.events["A"] == 10
    assert processor.stats.lag_receipt.values


class RecordingWidgets(MemoryWidgets):
    """The memory sink, also keeping each write's batch of names in order."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        self.batches.append([item.name for item in writes])
        return await super().write(writes)


async def test_a_resume_is_handed_to_the_sink_before_the_quote_record_of_its_reopening() -> None:
    """The scanner's halt alerts take a resume's price from the quote record after its LULD
    record, in arrival order: within one flush the LULD record must go first."""
    sink = RecordingWidgets()
    processor, bus, _ = make(widgets=sink)
    resumed = at_ms(DAY, 10, 0, 1)
    await processor.ingest(delivery(bus, body([luld("AAA", resumed, 18)], "l1"), Settled()))
    reopening = aggregate("AAA", resumed + 1_000)
    await processor.ingest(delivery(bus, body([reopening], "a1"), Settled()))
    await processor.flush()
    [names] = sink.batches
    assert names.index(FEED_LATEST_LULD.name(symbol="AAA")) < names.index(
        FEED_QUOTE.name(symbol="AAA")
    )


async def test_poison_and_duplicates_are_counted_and_acked() -> None:
    processor, bus, _ = make()
    settled = Settled()
    good = body([aggregate("AAA", at_ms(DAY, 10, 0))], "dup")
    await processor.ingest(delivery(bus, b"not an envelope", settled))
    await processor.ingest(delivery(bus, good, settled))
    await processor.ingest(delivery(bus, good, settled, redelivered=True))
    await processor.flush()
    assert processor.stats.poison == 1
    assert processor.stats.duplicates == 1
    assert processor.stats.messages == 1
    assert settled.results == [True, True, True]


class Exploding(MassiveDataAnalyzer):
    name = "exploding"

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        raise RuntimeError("bug")


async def test_a_failing_analyzer_does_not_stop_the_others() -> None:
    processor, bus, sink = make(analyzers=[Exploding(), LeaderboardAnalyzer()])
    settled = Settled()
    await processor.ingest(delivery(bus, body([aggregate("AAA", at_ms(DAY, 10, 0))], "e"), settled))
    await processor.flush()
    assert processor.stats.analyzer_errors == {"exploding": 1}
    assert FEED_QUOTE.name(symbol="AAA") in sink.store.values


class NotAnOp:
    """An object a plugin analyzer outside the type checker's reach might put in its state."""


class StrayOp(LeaderboardAnalyzer):
    """The leaderboard, with something that is no state operation beside its rows."""

    name = "stray"

    def collect(self, now_ns: int) -> Output:
        produced = super().collect(now_ns)
        stray: list[object] = [*produced.state, NotAnOp()]
        return Output(produced.widgets, stray)  # type: ignore[arg-type]  # what the types forbid


async def test_an_unknown_state_op_is_its_analyzers_error_not_dropped_silently() -> None:
    processor, bus, sink = make(analyzers=[StrayOp(), MassiveDataAnalyzer()])
    settled = Settled()
    await processor.ingest(delivery(bus, body([aggregate("AAA", at_ms(DAY, 10, 0))], "s"), settled))
    await processor.flush()
    assert processor.stats.analyzer_errors == {"stray": 1}
    assert isinstance(processor.state, MemoryState)
    assert processor.state.rows == {}  # none of that analyzer's output of the flush
    assert FEED_QUOTE.name(symbol="AAA") not in sink.store.values
    assert sink.store.values  # the other analyzer's output landed
    assert processor.stats.write_errors == 0
    assert settled.results == [True]


def is_writable(processor: Processor) -> bool:
    return processor.writable


class FlakyWidgets(MemoryWidgets):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("connection refused")
        return await super().write(writes)


async def test_a_redis_outage_is_retried_and_nothing_is_acked_before_the_write() -> None:
    processor, bus, sink = make(widgets=FlakyWidgets(failures=3))
    settled = Settled()
    await processor.ingest(
        delivery(bus, body([trade("AAA", at_ms(DAY, 10, 0), 1.0, 5)], "t"), settled)
    )
    flush = asyncio.create_task(processor.flush())
    async with asyncio.timeout(5):
        await processor.wait_until(lambda s: s.write_failures >= 1)
    assert not is_writable(processor)
    assert settled.results == []
    await flush
    assert is_writable(processor)
    assert processor.stats.write_failures == 3
    assert settled.results == [True]
    assert FEED_LATEST_TRADE.name(symbol="AAA") in sink.store.values


async def test_run_consumes_the_memory_bus_end_to_end() -> None:
    processor, bus, sink = make()
    publisher = bus.publisher()
    await publisher.start()
    spec = bus.topology.for_kind("A")
    assert spec is not None
    task = asyncio.create_task(processor.run())
    raw = body([aggregate("BBB", at_ms(DAY, 10, 0))], "run")
    publisher.publish(OutgoingBatch(spec, raw, "run", NOW_NS, 1))
    async with asyncio.timeout(5):
        await processor.wait_until(lambda s: s.total_events == 1 and s.flushes >= 1)
    assert processor.ready
    processor.stop()
    await task
    assert FEED_QUOTE.name(symbol="BBB") in sink.store.values


class HeldState(MemoryState):
    """MDC whose first write with "applied" marks waits for :attr:`release` (a slow write)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.cut = False

    async def apply(self, ops: Sequence[Any], *, marks: Sequence[str] = ()) -> Any:
        if marks and not self.writing.is_set():
            self.writing.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cut = True
                raise
        return await super().apply(ops, marks=marks)


async def test_a_stop_lets_the_flush_in_progress_write_its_marks_and_ack() -> None:
    state = HeldState()
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    processor = Processor(
        bus.consumer(),
        [MassiveDataAnalyzer()],
        state=state,
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(retry=BackoffPolicy(0.001, 0.01)),
    )
    settled = Settled()
    task = asyncio.create_task(processor.run())
    await processor.ingest(
        delivery(bus, body([aggregate("AAA", at_ms(DAY, 10, 0))], "s1"), settled)
    )
    async with asyncio.timeout(5):
        await state.writing.wait()  # the flusher is in the middle of writing s1
    processor.stop()
    # However long it is given, the run does not end under a flush that is writing.
    done, _ = await asyncio.wait({task}, timeout=0.2)
    assert not done
    state.release.set()
    async with asyncio.timeout(5):
        await task
    assert not state.cut
    mark = KEY_SEEN_BATCH.name(consumer=ProcessorConfig().consumer_group, batch="s1")
    assert await state.seen([mark]) == {mark}
    assert settled.results == [True]


async def test_a_cancelled_run_winds_down_with_a_last_flush() -> None:
    processor, bus, sink = make()
    settled = Settled()
    task = asyncio.create_task(processor.run())
    await processor.ingest(
        delivery(bus, body([aggregate("CCC", at_ms(DAY, 10, 0))], "c1"), settled)
    )
    task.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)
    assert settled.results == [True]
    assert FEED_QUOTE.name(symbol="CCC") in sink.store.values


class CancelLosingConsumer:
    """A consumer whose idle wait loses the first cancel, as a library's ``wait_for`` can on
    Python 3.11 (CPython gh-86296), and then reads on as if never stopped."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.waiting = asyncio.Event()
        self.cancels_lost = 0
        self.batches: list[ReceivedBatch] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def consume_batches(self, queue: Any, **_: Any) -> AsyncIterator[ReceivedBatch]:
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancels_lost += 1
        await asyncio.Event().wait()
        for batch in self.batches:  # none: the waits above end only by a cancel
            yield batch


async def test_a_stop_ends_consumers_that_lose_a_cancel() -> None:
    clock = ManualClock(NOW_NS)
    consumer = CancelLosingConsumer(MemoryBus(Topology(), clock=clock).consumer())
    processor = Processor(
        cast(Any, consumer),
        [MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(retry=BackoffPolicy(0.001, 0.01)),
    )
    task = asyncio.create_task(processor.run())
    async with asyncio.timeout(5):
        await consumer.waiting.wait()
    processor.stop()
    # Cancelled once, the consumers waited on for ever; the bound keeps that finite.
    async with asyncio.timeout(10):
        await task
    assert consumer.cancels_lost >= 1


async def test_a_consumer_busy_with_a_batch_is_not_cancelled_again_until_it_is_done() -> None:
    processor, _, _ = make()
    release = asyncio.Event()
    took_a_batch = asyncio.Event()
    outcome: list[str] = []

    async def consumer() -> None:
        # The handover's cancel, lost as a library's wait_for can lose it on 3.11:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        processor._busy.add("q")  # then it takes a batch, which must be finished, not cut off
        took_a_batch.set()
        try:
            await release.wait()
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cut off")
            raise
        finally:
            processor._busy.discard("q")

    task = asyncio.create_task(consumer(), name="consume q")
    await asyncio.sleep(0)  # let it start waiting
    ending = asyncio.create_task(processor._end_consumers([task]))
    async with asyncio.timeout(5):
        await took_a_batch.wait()
    # Two periods of re-cancelling pass while it holds the batch.
    done, _ = await asyncio.wait({ending}, timeout=2 * RECANCEL_SECONDS + 0.2)
    assert not done
    release.set()
    async with asyncio.timeout(5):
        await ending
    assert outcome == ["finished"]


def paced(**config: Any) -> tuple[Processor, MemoryBus]:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(**config),
    )
    return processor, bus


async def test_events_after_a_quiet_spell_are_flushed_without_waiting_for_the_idle_timer() -> None:
    # The idle timer is an hour: only the arrival of events can trigger this flush.
    processor, bus = paced(flush_interval_seconds=0.001, idle_flush_seconds=3600.0)
    publisher = bus.publisher()
    await publisher.start()
    spec = bus.topology.for_kind("A")
    assert spec is not None
    task = asyncio.create_task(processor.run())
    raw = body([aggregate("QQQ", at_ms(DAY, 10, 0))], "quiet")
    publisher.publish(OutgoingBatch(spec, raw, "quiet", NOW_NS, 1))
    async with asyncio.timeout(5):
        await processor.wait_until(lambda s: s.flushed_events == 1)
    processor.stop()
    await task


async def test_consumption_waits_while_a_full_flush_is_pending() -> None:
    # No timer fires within the test: every flush is one that a full pending set asked for.
    processor, bus = paced(
        flush_interval_seconds=3600.0,
        idle_flush_seconds=3600.0,
        flush_max_events=2,
        batch_messages=1,
    )
    publisher = bus.publisher()
    await publisher.start()
    spec = bus.topology.for_kind("A")
    assert spec is not None
    for n in range(3):
        events = [aggregate(f"S{n}A", at_ms(DAY, 10, 0)), aggregate(f"S{n}B", at_ms(DAY, 10, 0))]
        publisher.publish(OutgoingBatch(spec, body(events, f"full-{n}"), f"full-{n}", NOW_NS, 2))
    seen: list[int] = []

    def done(stats: Any) -> bool:
        seen.append(stats.last_flush_events)
        return bool(stats.flushed_events == 6)

    task = asyncio.create_task(processor.run())
    async with asyncio.timeout(5):
        await processor.wait_until(done)
    processor.stop()
    await task
    assert max(seen) <= 2  # never more than a full flush's worth pending
    assert processor.stats.flushes >= 3


def test_settings_and_analyzer_names() -> None:
    settings = load(
        ProcessorSettings, {"MDP_ANALYZERS": "leaderboard,top_trades", "MDP_WORKERS": "2"}
    )
    assert settings.workers == 2
    assert [type(a).__name__ for a in build_analyzers(settings)] == [
        "LeaderboardAnalyzer",
        "TopTradesAnalyzer",
    ]
    with pytest.raises(UnknownAnalyzer, match="leaderboard"):
        build_analyzers(load(ProcessorSettings, {"MDP_ANALYZERS": "nope"}))
    # A scanner analyzer consumes feeds, not market events: refused at start, not idle.
    with pytest.raises(UnknownAnalyzer, match=r"consumes \['quote:\*'\], not market events"):
        build_analyzers(load(ProcessorSettings, {"MDP_ANALYZERS": "leaderboard,daily_range"}))


def status(name: str, alive: bool, **counters: Any) -> WorkerStatus:
    return WorkerStatus(0, name, alive, 1, 0, None, None, counters)


def test_readiness_and_metrics_of_the_workers() -> None:
    ok = status("w-0", True, ready=True, events=10, lag_event_p99_seconds=0.2)
    assert readiness_of([ok]) == (True, "1 workers ready")
    assert readiness_of([ok, status("w-1", False)])[0] is False
    down = status("w-1", True, ready=False, broker_connected=False, redis_writable=True)
    assert "broker False" in readiness_of([ok, down])[1]
    totals = metrics_of([ok, status("w-1", True, ready=True, events=5, lag_event_p99_seconds=0.5)])
    assert totals["events"] == 15
    assert totals["lag_event_p99_seconds"] == 0.5
    assert totals["workers_alive"] == 2


class FlakySource:
    """Fails the first lookups of every symbol, then answers (a REST hiccup at start-up)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("REST unavailable")
        bar = DailyBar(day=date(2026, 3, 3), open=9.0, high=10.5, low=8.5, close=10.0,
                       volume=1_000_000, vwap=9.8)  # fmt: skip
        return [bar]

    async def free_float(self, symbol: str) -> int | None:
        return 5_000_000


async def test_a_failed_reference_lookup_is_retried_until_the_row_has_a_previous_close() -> None:
    source = FlakySource(failures=1)
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    sink = MemoryWidgets()
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer()],
        state=MemoryState(),
        widgets=sink,
        reference=ReferenceCache(source, retry_after_seconds=0.0),
        clock=clock,
        config=ProcessorConfig(reference_attempts=3, reference_retry_seconds=0.01),
    )
    await processor.ingest(
        delivery(bus, body([aggregate("AAA", at_ms(DAY, 10, 0))], "r1"), Settled())
    )
    async with asyncio.timeout(10):
        while True:
            await processor.flush()
            quote = sink.store.document(FEED_QUOTE.name(symbol="AAA"))
            if quote.get("prev_close") is not None:
                break
            await asyncio.sleep(0.01)
    assert quote["prev_close"] == 10.0
    assert source.calls == 2  # one failure, one retry that landed; no more lookups


async def test_an_event_from_the_far_future_is_dropped_and_the_day_goes_on() -> None:
    processor, bus, sink = make()
    settled = Settled()
    # A bar stamped in the year 2984 (a garbage timestamp) would move the leaderboard's
    # trading day there and make every real bar stale.
    poison = aggregate("BAD", 32_000_000_000_000, accumulated_volume=1)
    real = aggregate("AAA", at_ms(DAY, 10, 0), accumulated_volume=7)
    await processor.ingest(delivery(bus, body([poison, real], "f1"), settled))
    await processor.ingest(delivery(bus, body([poison], "f2"), settled))
    await processor.flush()
    assert processor.stats.bad_events["future"] == 2
    assert settled.results == [True, True]  # acked: they will never become valid
    assert sink.store.document(FEED_QUOTE.name(symbol="AAA"))["accumulated_volume"] == 7
    later = aggregate("BBB", at_ms(DAY, 10, 0, 30), accumulated_volume=9)
    await processor.ingest(delivery(bus, body([later], "f3"), settled))
    await processor.flush()
    assert sink.store.document(FEED_QUOTE.name(symbol="BBB"))["accumulated_volume"] == 9


async def test_by_default_five_minutes_ahead_is_kept_and_a_millisecond_more_dropped() -> None:
    # Live data is never minutes ahead of the clock: the default tolerance is 300 s, and the
    # service's setting agrees with the library's.
    assert ProcessorConfig().future_tolerance_seconds == 300.0
    assert load(ProcessorSettings, {}).future_tolerance_seconds == 300.0
    processor, bus, sink = make()
    settled = Settled()
    edge_ms = NOW_NS // 1_000_000 + 300_000
    kept = aggregate("AAA", edge_ms, accumulated_volume=7)
    dropped = aggregate("BBB", edge_ms + 1, accumulated_volume=9)
    await processor.ingest(delivery(bus, body([kept, dropped], "edge"), settled))
    await processor.flush()
    assert processor.stats.bad_events["future"] == 1
    assert sink.store.document(FEED_QUOTE.name(symbol="AAA"))["accumulated_volume"] == 7
    assert FEED_QUOTE.name(symbol="AAA") in sink.store.values
    assert FEED_QUOTE.name(symbol="BBB") not in sink.store.values


async def test_minutes_left_behind_are_counted_by_how_far_their_seconds_were_verified() -> None:
    processor, bus, _ = make()
    settled = Settled()
    # The day's first three seconds at 10:00, their day volumes chained from 0, then the
    # first second of 10:01 leaves the minute behind.
    seconds = [
        aggregate("AAA", at_ms(DAY, 10, 0, s + 1), volume=100, accumulated_volume=100 * (s + 1))
        for s in range(3)
    ]
    gapped = [  # BBB lost its second second: a run of one, and one held past the gap
        aggregate("BBB", at_ms(DAY, 10, 0, s + 1), volume=100, accumulated_volume=100 * (s + 1))
        for s in (0, 2)
    ]
    unknown = [  # CCC from its 30th second, the day's volume before it unknown
        aggregate("CCC", at_ms(DAY, 10, 0, 31), volume=100, accumulated_volume=900)
    ]
    following = [
        aggregate(symbol, at_ms(DAY, 10, 1, 1), volume=100, accumulated_volume=1_000)
        for symbol in ("AAA", "BBB", "CCC")
    ]
    await processor.ingest(delivery(bus, body([*seconds, *gapped, *unknown], "m1"), settled))
    await processor.flush()
    assert processor.stats.minutes_closed == {}  # nothing left behind yet
    await processor.ingest(delivery(bus, body(following, "m2"), settled))
    await processor.flush()
    assert processor.stats.minutes_closed == {"verified": 1, "gapped": 1, "unverified": 1}
    flat = processor.stats.snapshot()
    runs = ("verified", "gapped", "unverified")
    assert tuple(flat[f"minutes_closed_{run}"] for run in runs) == (1, 1, 1)
    await processor.flush()
    assert sum(processor.stats.minutes_closed.values()) == 3  # each counted once


class BadNames:
    """An analyzer (a plugin with a bug) writing one name that is not its feed's."""

    name = "bad_names"
    consumes = frozenset({"T"})

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        del inputs, now_ns

    def collect(self, now_ns: int) -> Output:
        del now_ns
        return Output(
            widgets=[
                WidgetWrite(FEED_QUOTE, "quote:A B", b"{}"),
                WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol="OK"), b"{}"),
            ]
        )


async def test_a_bad_widget_name_is_dropped_and_counted_the_rest_lands() -> None:
    processor, bus, sink = make(analyzers=[BadNames(), MassiveDataAnalyzer()])
    settled = Settled()
    spec = bus.topology.for_kind("T")
    assert spec is not None
    raw = body([trade("AAA", at_ms(DAY, 10, 0), 10.0, 100)], "w1")
    batch = ReceivedBatch([Received(spec, decode_header(raw), raw, False, 0.0)], (raw,), settled)
    await processor.ingest(batch)
    await processor.flush()
    assert processor.stats.bad_writes == 1
    assert "quote:A B" not in sink.store.values
    assert FEED_QUOTE.name(symbol="OK") in sink.store.values
    assert FEED_LATEST_TRADE.name(symbol="AAA") in sink.store.values
    assert settled.results == [True]


class BuggySink:
    """A widget sink whose write raises a bug (not a connection error), once."""

    def __init__(self) -> None:
        self.inner = MemoryWidgets()
        self.armed = True

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        if self.armed:
            self.armed = False
            raise RuntimeError("a bug in the sink")
        return await self.inner.write(writes)


async def test_a_bug_in_a_write_is_counted_acked_and_flushing_goes_on() -> None:
    sink = BuggySink()
    processor, bus, _ = make(widgets=sink)
    settled = Settled()
    task = asyncio.create_task(processor.run())
    try:
        events = [aggregate("AAA", at_ms(DAY, 10, 0), accumulated_volume=3)]
        await processor.ingest(delivery(bus, body(events, "x1"), settled))
        async with asyncio.timeout(5):
            await processor.wait_until(lambda s: s.write_errors >= 1)
            more = [aggregate("BBB", at_ms(DAY, 10, 0), accumulated_volume=4)]
            await processor.ingest(delivery(bus, body(more, "x2"), settled))
            await processor.wait_until(lambda s: len(settled.results) >= 2)
    finally:
        processor.stop()
        await task
    # The failed write is abandoned (it would fail forever), its messages acked: the stream
    # goes on and the next flush lands.
    assert settled.results == [True, True]
    assert FEED_QUOTE.name(symbol="BBB") in sink.inner.store.values
