"""The processor under hostile input and duplicate deliveries (issue 14)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import msgspec

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_cache.claims import MemoryBatchClaims
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_core.envelope import decode_header, encode_envelope
from mdp_core.events import MarketEvent
from mdp_processor.__main__ import is_cumulative
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import MemoryBus, Received, ReceivedBatch, Topology
from mdp_testing.conformance import aggregate, at_ms
from mdp_testing.widgets import MemoryWidgets

DAY = date(2026, 3, 4)
NOW_NS = at_ms(DAY, 10, 1) * 1_000_000
PLACEHOLDER = encode_envelope(kind="A", source="t", batch="p", received_ns=NOW_NS, events=[])

DEEP_ENVELOPE = (
    b'{"v":1,"kind":"A","source":"t","batch":"n","received_ns":1,"events":['
    + b"[" * 5000
    + b"]" * 5000
    + b"]}"
)


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
    """One message as the transport hands it over (a header it could not read is replaced)."""
    spec = bus.topology.for_kind("A")
    assert spec is not None
    try:
        header = decode_header(raw)
    except Exception:
        header = decode_header(PLACEHOLDER)
    return ReceivedBatch([Received(spec, header, raw, redelivered, 0.0)], (raw,), settled)


def make(
    state: MemoryState | None = None, claims: MemoryBatchClaims | None = None
) -> tuple[Processor, MemoryBus]:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=state or MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
        config=ProcessorConfig(retry=BackoffPolicy(0.001, 0.01)),
        claims=claims,
    )
    return processor, bus


async def test_a_nested_envelope_is_poison_and_its_batch_is_still_acked() -> None:
    processor, bus = make()
    settled = Settled()
    await processor.ingest(delivery(bus, DEEP_ENVELOPE, settled))
    await processor.ingest(delivery(bus, body([aggregate("AAA", at_ms(DAY, 10, 0))], "g"), settled))
    await processor.flush()
    assert processor.stats.poison == 1
    assert processor.stats.messages == 1
    assert settled.results == [True, True]


def test_only_counts_survive_a_worker_restart() -> None:
    assert is_cumulative("events", 10)
    assert is_cumulative("poison_dropped", 0)
    assert not is_cumulative("last_flush_events", 10)  # a level, not a count
    assert not is_cumulative("ready", True)
    assert not is_cumulative("lag_event_p99_seconds", 0.2)


async def test_a_batch_published_twice_is_applied_once_across_processors() -> None:
    claims = MemoryBatchClaims()
    state = MemoryState()
    first, bus = make(state, claims)
    second, _ = make(state, claims)
    settled = Settled()
    copy = body([aggregate("AAA", at_ms(DAY, 10, 0))], "twice")
    await first.ingest(delivery(bus, copy, settled))
    await second.ingest(delivery(bus, copy, settled))  # a first delivery, not a redelivery
    await first.flush()
    await second.flush()
    assert (first.stats.messages, first.stats.duplicates) == (1, 0)
    assert (second.stats.messages, second.stats.duplicates) == (0, 1)
    assert settled.results == [True, True]  # the copy is acked, not left with the broker


async def test_a_redelivered_batch_not_applied_before_is_taken_over() -> None:
    claims = MemoryBatchClaims()
    state = MemoryState()
    dead, bus = make(state, claims)
    heir, _ = make(state, claims)
    settled = Settled()
    copy = body([aggregate("AAA", at_ms(DAY, 10, 0))], "orphan")
    await dead.ingest(delivery(bus, copy, settled))  # claimed, then its worker died unflushed
    await heir.ingest(delivery(bus, copy, settled, redelivered=True))
    await heir.flush()
    assert (heir.stats.messages, heir.stats.duplicates) == (1, 0)
    assert heir.stats.redelivered_events == 1  # counted: the dead may have flushed its copy
    assert dead.stats.redelivered_events == 0
