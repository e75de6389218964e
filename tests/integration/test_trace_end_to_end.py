"""One trace follows a batch: listener → queue → processor (batch, flush and Redis write) → WDS.

The program runs in a fresh interpreter (OpenTelemetry's global tracer provider can be set
once per process) with the SDK and an in-memory span exporter: a listener batcher publishes
two trades on the in-process bus, a running processor applies and flushes them into the real
Redis (WDC), and a real WDS fans the published document out to a websocket client subscribed
to ``trade:AAA``. The spans must form one chain in one trace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import msgspec
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from redis.asyncio import Redis
    from websockets.asyncio.client import connect
    from mdp_analyzers.routing import MassiveDataAnalyzer
    from mdp_analyzers.state import MemoryState
    from mdp_cache.widgets import WidgetWriter
    from mdp_core.clock import LiveClock
    from mdp_core.settings import Secret, load
    from mdp_core.token import issue_token
    from mdp_listener.batcher import Batcher
    from mdp_processor.processor import Processor, ProcessorConfig
    from mdp_queues import MemoryBus, Topology
    from mdp_testing.conformance import trade
    from mdp_wds import WdsSettings, WidgetServer

    REDIS_URL = sys.argv[1]

    async def main() -> None:
        clock = LiveClock()
        wds = WidgetServer(load(
            WdsSettings, environ={}, host="127.0.0.1", port=0, wdc_redis_url=REDIS_URL,
            token_secret=Secret("trace-secret"), allow_missing_origin=True,
        ))
        await wds.start()
        assert await wds.hub.wait_connected(10)
        ws = await connect(wds.url)
        await ws.send(json.dumps({"op": "auth", "token": issue_token(
            "trace-secret", "t", ["*"], 300, time.time())}))
        assert json.loads(await ws.recv())["op"] == "auth_ok"
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "feeds": ["trade:AAA"]}))

        async def next_op(op):
            async with asyncio.timeout(20):
                while True:
                    message = json.loads(await ws.recv())
                    if message["op"] == op:
                        return message

        await next_op("subscribed")
        bus = MemoryBus(Topology(), clock=clock)
        publisher = bus.publisher()
        await publisher.start()
        redis = Redis.from_url(REDIS_URL)
        processor = Processor(
            bus.consumer(), [MassiveDataAnalyzer()], state=MemoryState(),
            widgets=WidgetWriter(redis), clock=clock,
            config=ProcessorConfig(flush_interval_seconds=0.02),
        )
        running = asyncio.create_task(processor.run())
        now_ms = clock.now_ns() // 1_000_000
        batcher = Batcher(bus.topology, publisher, source="t", instance="l1", batch_events=2)
        raws = [msgspec.Raw(msgspec.json.encode(trade("AAA", now_ms, 10.0, s))) for s in (1, 2)]
        batcher.add("T", raws, clock.now_ns())
        update = await next_op("update")
        processor.stop()
        await running
        await ws.close()
        await wds.stop()
        await redis.aclose()
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
        print(json.dumps({"spans": spans, "feed": update.get("feed")}))

    asyncio.run(main())
    """
)


def test_one_trace_follows_a_batch_from_the_listener_to_the_wds_send(redis_db_url: str) -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", PROGRAM, redis_db_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["feed"] == "trade:AAA"
    spans = report["spans"]
    produced = next(s for s in spans if s["name"] == "listener.batch")
    consumed = next(s for s in spans if s["name"] == "processor.batch")
    flushes = [
        s for s in spans if s["name"] == "processor.flush" and s["trace"] == produced["trace"]
    ]
    fanouts = [s for s in spans if s["name"] == "wds.fanout"]
    assert produced["kind"] == "PRODUCER"
    assert consumed["kind"] == "CONSUMER"
    assert consumed["parent"] == produced["span"]
    # The flush that carried the batch continues its trace, under the processor's batch span.
    assert len(flushes) == 1
    assert flushes[0]["parent"] == consumed["span"]
    # The WDS continues it from the document it fanned out.
    assert [(s["trace"], s["parent"], s["kind"]) for s in fanouts] == [
        (produced["trace"], flushes[0]["span"], "CONSUMER")
    ]
