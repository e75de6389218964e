"""A batch's trace crosses the queue: the processor's span is a child of the listener's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import asyncio, json
    import msgspec
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from mdp_analyzers.routing import MassiveDataAnalyzer
    from mdp_analyzers.state import MemoryState
    from mdp_core.clock import ManualClock
    from mdp_listener.batcher import Batcher
    from mdp_processor.processor import Processor
    from mdp_testing.widgets import MemoryWidgets
    from mdp_queues import MemoryBus, Topology
    from mdp_testing.conformance import trade

    async def main() -> None:
        now_ms = 1_772_640_000_000
        clock = ManualClock(now_ms * 1_000_000)
        bus = MemoryBus(Topology(), clock=clock)
        publisher = bus.publisher()
        await publisher.start()
        batcher = Batcher(bus.topology, publisher, source="t", instance="l1", batch_events=2)
        raws = [msgspec.Raw(msgspec.json.encode(trade("AAA", now_ms, 10.0, s))) for s in (1, 2)]
        batcher.add("T", raws, clock.now_ns())
        processor = Processor(
            bus.consumer(), [MassiveDataAnalyzer()], state=MemoryState(),
            widgets=MemoryWidgets(), clock=clock,
        )
        spec = bus.topology.for_kind("T")
        batches = bus.consumer().consume_batches(spec, max_wait_seconds=0.01)
        await processor.ingest(await anext(batches))
        await processor.flush()
        spans = [
            {
                "name": s.name,
                "kind": s.kind.name,
                "trace": s.context.trace_id,
                "span": s.context.span_id,
                "parent": s.parent.span_id if s.parent else None,
            }
            for s in exporter.get_finished_spans()
        ]
        print(json.dumps(spans))

    asyncio.run(main())
    """
)


def test_the_processor_span_of_a_batch_is_a_child_of_the_listener_span() -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    spans = {span["name"]: span for span in json.loads(result.stdout.strip().splitlines()[-1])}
    produced, consumed = spans["listener.batch"], spans["processor.batch"]
    assert produced["kind"] == "PRODUCER"
    assert consumed["kind"] == "CONSUMER"
    assert consumed["trace"] == produced["trace"]
    assert consumed["parent"] == produced["span"]
    # The flush is a unit of work of its own, not part of one batch's trace.
    assert spans["processor.flush"]["trace"] != produced["trace"]
