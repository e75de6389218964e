"""The processor's de-duplication and acks against a reference. Pinned by mutation testing.

A batch id seen in the last ``remember_batches`` first deliveries is a duplicate; a redelivery
is also checked against the marks MDC holds (written with each flush); a first delivery that
lost its cross-replica claim is a duplicate too. Every delivery is acked by the flush after it,
duplicates and poison included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import MemoryBus, ReceivedBatch, Topology
from mdp_testing.conformance import aggregate, at_ms
from mdp_testing.widgets import MemoryWidgets

from .test_processor import DAY, NOW_NS, Settled, body, delivery


class Claims:
    """Claims that a fixed set of batch ids lose (another replica took them)."""

    def __init__(self, lost: set[str]) -> None:
        self.lost = lost
        self.asked: list[list[str]] = []

    async def claim(self, batches: Sequence[str]) -> set[str]:
        self.asked.append(list(batches))
        return {b for b in batches if b not in self.lost}


def _make(remember: int, claims: Any = None) -> tuple[Processor, MemoryBus]:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    processor = Processor(
        bus.consumer(),
        [MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(retry=BackoffPolicy(0.001, 0.01), remember_batches=remember),
        claims=claims,
    )
    return processor, bus


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=3),
    st.lists(st.tuples(st.sampled_from("abcde"), st.booleans(), st.booleans()), max_size=14),
)
async def test_duplicates_follow_the_reference(
    remember: int, deliveries: list[tuple[str, bool, bool]]
) -> None:
    processor, bus = _make(remember)
    settled = Settled()
    recent: list[str] = []  # first-seen order, at most `remember`
    in_mdc: set[str] = set()
    pending: set[str] = set()
    applied = duplicates = retaken = 0
    for batch, redelivered, flush_after in deliveries:
        raw = body([aggregate("AAA", at_ms(DAY, 10, 0))], batch)
        await processor.ingest(delivery(bus, raw, settled, redelivered=redelivered))
        if batch in recent or (redelivered and batch in in_mdc):
            duplicates += 1
        else:
            applied += 1
            retaken += redelivered  # one event a batch: a redelivery taken over is counted
            recent.append(batch)
            del recent[:-remember]
            pending.add(batch)
        if flush_after:
            await processor.flush()
            in_mdc |= pending
            pending = set()
        assert (processor.stats.messages, processor.stats.duplicates) == (applied, duplicates)
        assert processor.stats.redelivered_events == retaken
    await processor.flush()
    assert settled.results == [True] * len(deliveries)


async def test_a_first_delivery_that_lost_its_claim_is_a_duplicate_and_still_acked() -> None:
    claims = Claims(lost={"taken"})
    processor, bus = _make(10, claims)
    settled = Settled()
    for batch, redelivered in (("mine", False), ("taken", False), ("again", True)):
        raw = body([aggregate("AAA", at_ms(DAY, 10, 0))], batch)
        await processor.ingest(delivery(bus, raw, settled, redelivered=redelivered))
    assert claims.asked == [["mine"], ["taken"]]  # a redelivery is checked in MDC, not claimed
    assert (processor.stats.messages, processor.stats.duplicates) == (2, 1)
    await processor.flush()
    assert settled.results == [True, True, True]


async def test_nothing_is_acked_before_the_flush_and_a_flush_acks_each_delivery_once() -> None:
    processor, bus = _make(10)
    settled = Settled()
    raw = body([aggregate("AAA", at_ms(DAY, 10, 0))], "b")
    await processor.ingest(delivery(bus, raw, settled))
    await processor.ingest(delivery(bus, b"poison", settled))
    assert settled.results == []
    await processor.flush()
    assert settled.results == [True, True]
    await processor.flush()
    assert settled.results == [True, True]


def _many(bus: MemoryBus, settled: Settled, items: list[tuple[bytes, bool]]) -> ReceivedBatch:
    """One delivery batch of several messages (poison, duplicates and good ones mixed)."""
    single = [delivery(bus, raw, settled, redelivered=again).messages[0] for raw, again in items]
    return ReceivedBatch(single, (), settled)


async def test_poison_and_duplicates_inside_one_delivery_do_not_stop_the_rest() -> None:
    claims = Claims(lost={"lost-1", "lost-2"})
    processor, bus = _make(10, claims)
    settled = Settled()

    def raw(batch: str) -> bytes:
        return body([aggregate("AAA", at_ms(DAY, 10, 0))], batch)

    await processor.ingest(delivery(bus, raw("seen"), settled))
    batch = _many(
        bus,
        settled,
        [
            (b"poison", False),
            (b"poison again", False),
            (raw("seen"), False),  # in memory
            (raw("seen"), True),
            (raw("lost-1"), False),
            (raw("lost-2"), False),
            (raw("new"), False),
        ],
    )
    await processor.ingest(batch)
    assert processor.stats.poison == 2
    assert processor.stats.duplicates == 4
    assert processor.stats.messages == 2  # "seen" first, then "new"
    assert claims.asked == [["seen"], ["lost-1", "lost-2", "new"]]
    await processor.flush()
    assert settled.results  # acked by the flush (one settle may carry both deliveries)
    assert all(settled.results)


async def test_a_flush_is_asked_for_once_the_pending_events_reach_the_limit() -> None:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    processor = Processor(
        bus.consumer(),
        [MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(flush_max_events=3),
    )
    settled = Settled()
    two = [aggregate("AAA", at_ms(DAY, 10, 0, s)) for s in range(2)]
    await processor.ingest(delivery(bus, body(two, "b1"), settled))
    assert not processor._flush_now.is_set()
    await processor.ingest(delivery(bus, body(two[:1], "b2"), settled))
    assert processor._flush_now.is_set()  # exactly at the limit


async def test_marks_name_the_consumer_group_and_bad_events_are_counted_by_kind() -> None:
    import structlog

    from mdp_cache.keys import KEY_SEEN_BATCH

    processor, bus = _make(10)
    settled = Settled()
    good = aggregate("AAA", at_ms(DAY, 10, 0))
    negative = msgspec.structs.replace(good, volume=-1)
    with structlog.testing.capture_logs() as logs:
        await processor.ingest(delivery(bus, b"poison", settled))
    (poison,) = [e for e in logs if e["event"] == "poison_message"]
    assert poison["queue"] == bus.topology.for_kind("A").name  # type: ignore[union-attr]
    assert poison["error"].startswith("bad_envelope")
    await processor.ingest(delivery(bus, body([good, negative, negative], "g"), settled))
    assert dict(processor.stats.bad_events) == {"out_of_range": 2}
    await processor.flush()
    state = processor.state
    assert isinstance(state, MemoryState)
    group = processor.config.consumer_group
    assert KEY_SEEN_BATCH.name(consumer=group, batch="g") in state.marks


async def test_a_redelivery_known_to_mdc_does_not_stop_the_rest_of_its_delivery() -> None:
    processor, bus = _make(1)
    settled = Settled()

    def raw(batch: str) -> bytes:
        return body([aggregate("AAA", at_ms(DAY, 10, 0))], batch)

    await processor.ingest(delivery(bus, raw("old"), settled))
    await processor.ingest(delivery(bus, raw("pushes-old-out"), settled))
    await processor.flush()  # "old" is in MDC, no longer in memory
    await processor.ingest(_many(bus, settled, [(raw("old"), True), (raw("new"), False)]))
    assert (processor.stats.messages, processor.stats.duplicates) == (3, 1)


async def test_each_applied_message_gets_a_consumer_span_in_its_listener_trace() -> None:
    import dataclasses

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test of the process to trace
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}

    processor, bus = _make(10)
    settled = Settled()
    raw = body([aggregate("AAA", at_ms(DAY, 10, 0)), aggregate("BBB", at_ms(DAY, 10, 0))], "tb")
    single = delivery(bus, raw, settled)
    message = dataclasses.replace(single.messages[0], headers=headers)
    await processor.ingest(ReceivedBatch([message], (), settled))
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "processor.batch"]
    assert span.kind is trace.SpanKind.CONSUMER
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "mdp.processor"
    assert dict(span.attributes or {}) == {"kind": "A", "events": 2, "batch": "tb"}
    assert span.parent is not None
    assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (trace_id, parent_id)
    pending = processor._pending_trace
    assert pending is not None
    assert pending["traceparent"].split("-")[1:3] == [trace_id, f"{span.context.span_id:016x}"]
    await processor.ingest(delivery(bus, body([aggregate("CCC", 1)], "later"), settled))
    assert processor._pending_trace == pending  # the first message's context is kept
