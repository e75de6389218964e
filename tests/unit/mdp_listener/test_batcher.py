from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from mdp_core.clock import ManualClock
from mdp_core.envelope import decode_header
from mdp_listener import Batcher, FlushedBatch
from mdp_queues import MemoryBus, OutgoingBatch, Topology

START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class Recorder:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.batches: list[OutgoingBatch] = []

    def publish(self, batch: OutgoingBatch) -> None:
        self.batches.append(batch)


def trade(n: int) -> msgspec.Raw:
    return msgspec.Raw(b'{"ev":"T","sym":"S%d","p":1.0,"s":1,"t":1767000000000}' % n)


def make(batch_events: int = 3) -> tuple[Batcher, Recorder, list[FlushedBatch]]:
    recorder = Recorder(Topology())
    flushed: list[FlushedBatch] = []
    batcher = Batcher(
        recorder.topology,
        recorder,  # type: ignore[arg-type]  # only publish() and topology are used
        source="test",
        instance="i1",
        batch_events=batch_events,
        on_flush=flushed.append,
    )
    return batcher, recorder, flushed


def test_a_full_batch_is_emitted_at_once_with_the_oldest_receive_time() -> None:
    batcher, recorder, flushed = make(batch_events=3)
    assert batcher.add("T", [trade(1), trade(2)], received_ns=100)
    assert recorder.batches == []
    assert batcher.add("T", [trade(3)], received_ns=200)
    [batch] = recorder.batches
    envelope = decode_header(batch.body)
    assert envelope.kind == "T"
    assert envelope.received_ns == 100
    assert [bytes(r) for r in envelope.events] == [bytes(trade(n)) for n in (1, 2, 3)]
    assert batch.queue.name == "mdq.trades"
    assert batch.events == 3
    assert batch.batch_id == envelope.batch == "i1:1"
    assert flushed[0].event_time_ns == 1767000000000 * 1_000_000


def test_flush_emits_partial_batches_per_type() -> None:
    batcher, recorder, _ = make(batch_events=100)
    batcher.add("T", [trade(1)], received_ns=1)
    batcher.add("Q", [msgspec.Raw(b'{"ev":"Q","sym":"A"}')], received_ns=2)
    assert batcher.pending_events == 2
    assert batcher.flush() == 2
    assert sorted(b.queue.kind for b in recorder.batches) == ["Q", "T"]
    assert batcher.flush() == 0
    assert len({b.batch_id for b in recorder.batches}) == 2


def test_types_without_a_queue_are_refused() -> None:
    batcher, recorder, _ = make()
    assert not batcher.add("XQ", [msgspec.Raw(b'{"ev":"XQ"}')], received_ns=1)
    assert batcher.flush() == 0
    assert recorder.batches == []


def test_nanosecond_event_times_are_kept_and_missing_times_tolerated() -> None:
    batcher, _, flushed = make(batch_events=1)
    batcher.add("FMV", [msgspec.Raw(b'{"ev":"FMV","sym":"A","fmv":1.0,"t":5}')], received_ns=1)
    batcher.add("T", [msgspec.Raw(b'{"ev":"T","sym":"A"}')], received_ns=1)
    assert [f.event_time_ns for f in flushed] == [5, None]


async def test_batches_reach_a_memory_bus_consumer() -> None:
    bus = MemoryBus(Topology(), clock=ManualClock(START))
    publisher = bus.publisher()
    await publisher.start()
    batcher = Batcher(bus.topology, publisher, source="s", instance="i", batch_events=2)
    batcher.add("T", [trade(1), trade(2)], received_ns=bus.clock.now_ns())
    trades = bus.topology.for_kind("T")
    assert trades is not None
    assert bus.depth(trades) == 1


def test_a_partitioned_batcher_sends_each_symbol_to_its_partition_in_feed_order() -> None:
    topology = Topology(partitions=4)
    recorder = Recorder(topology)
    batcher = Batcher(
        topology,
        recorder,  # type: ignore[arg-type]  # only publish() and topology are used
        source="test",
        instance="i1",
        batch_events=1_000,
    )
    raws = [
        msgspec.Raw(b'{"ev":"T","sym":"S%d","p":1.0,"s":1,"t":%d}' % (n % 7, 1_000 + n))
        for n in range(40)
    ]
    batcher.add("T", raws, received_ns=1)
    batcher.add("XYZ", raws, received_ns=1)  # no queue: refused, nothing sent
    batcher.flush()
    times: dict[str, list[int]] = {}
    for batch in recorder.batches:
        assert batch.queue.kind == "T"
        for event in msgspec.json.decode(batch.body)["events"]:
            assert batch.queue.partition == topology.partition(event["sym"])
            times.setdefault(event["sym"], []).append(event["t"])
    # Every event arrived once, in its symbol's partition, in the order the feed sent it.
    assert times == {f"S{k}": [1_000 + n for n in range(40) if n % 7 == k] for k in range(7)}
    assert len({batch.queue.name for batch in recorder.batches}) > 1
