"""Bad input through the processor: dropped, counted by reason, never folded into a figure.

One delivery carries a good bar and, for the same symbol, every kind of bar the issue names:
a negative and an overflowed price (refused while decoding: ``out_of_range``), a malformed
symbol (``malformed_symbol``), ``h < l`` (``high_below_low``) and a bar of a closed day
(``stale_day``). Each bad bar would move the session figures if it were folded. A NaN is not
JSON: the listener drops it while splitting the frame (``out_of_range``, see
``tests/unit/mdp_core/test_wire.py``), so it never reaches an envelope.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date

import msgspec

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_cache.keys import FEED_QUOTE
from mdp_cache.records import DailyBar
from mdp_cache.reference import MemoryBulkReferenceSource, ReferenceCache
from mdp_core.clock import ManualClock
from mdp_core.envelope import decode_header, encode_envelope
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import MemoryBus, Received, ReceivedBatch, Topology
from mdp_testing.conformance import aggregate, at_ms
from mdp_testing.widgets import MemoryWidgets

DAY = date(2026, 3, 4)
NOW_NS = at_ms(DAY, 10, 5) * 1_000_000


def _wire(symbol: str, end_ms: int, **fields: object) -> str:
    bar = msgspec.to_builtins(aggregate(symbol, end_ms, close=10.0, high=10.5, low=9.5))
    assert isinstance(bar, dict)
    return json.dumps({**bar, **fields})


async def _settle(tokens: object, ok: bool) -> None:
    del tokens, ok


async def test_each_bad_bar_is_counted_by_reason_and_the_figures_stay_the_good_bars() -> None:
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    sink = MemoryWidgets()
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer()],
        state=MemoryState(),
        widgets=sink,
        clock=clock,
        config=ProcessorConfig(),
    )
    at = at_ms(DAY, 10, 0)
    events = [
        _wire("AAA", at),  # the good bar: regular high 10.5, low 9.5
        _wire("AAA", at + 1_000, h=1e300),
        _wire("AAA", at + 2_000, l=-1.0),
        _wire("A B", at + 3_000, h=99.0),
        _wire("AAA", at + 4_000, h=8.0, l=12.0, o=10.0, c=10.0),
        _wire("AAA", at_ms(date(2026, 3, 3), 15, 0), h=99.0, l=0.5),
    ]
    raw = encode_envelope(
        kind="A",
        source="t",
        batch="bad-1",
        received_ns=NOW_NS,
        events=[msgspec.Raw(e.encode()) for e in events],
    )
    spec = bus.topology.for_kind("A")
    assert spec is not None
    delivery = ReceivedBatch([Received(spec, decode_header(raw), raw, False, 0.0)], (), _settle)
    await processor.ingest(delivery)
    await processor.flush()

    assert dict(processor.stats.bad_events) == {
        "out_of_range": 2,
        "malformed_symbol": 1,
        "high_below_low": 1,
        "stale_day": 1,
    }
    quote = sink.store.document(FEED_QUOTE.name(symbol="AAA"))
    assert quote["end_ms"] == at
    assert (quote["regular"]["high"], quote["regular"]["low"]) == (10.5, 9.5)
    assert (quote["day_high"], quote["day_low"]) == (10.5, 9.5)
    assert quote["pre_market"] is None
    assert sorted(sink.store.values) == [FEED_QUOTE.name(symbol="AAA")]


async def test_a_symbol_the_reference_data_does_not_know_is_counted_and_still_processed() -> None:
    """A first-day listing has no history and no float either: dropping would hide it."""
    clock = ManualClock(NOW_NS)
    bus = MemoryBus(Topology(), clock=clock)
    sink = MemoryWidgets()
    bar = DailyBar(day=date(2026, 3, 3), open=9.0, high=9.0, low=9.0, close=9.0, volume=1_000)
    source = MemoryBulkReferenceSource({"AAA": [bar]}, {"AAA": 1_000_000})
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer()],
        state=MemoryState(),
        widgets=sink,
        reference=ReferenceCache(source),
        clock=clock,
        config=ProcessorConfig(reference_attempts=1),
    )
    at = at_ms(DAY, 10, 0)
    raw = encode_envelope(
        kind="A",
        source="t",
        batch="new-1",
        received_ns=NOW_NS,
        events=[msgspec.Raw(_wire(symbol, at).encode()) for symbol in ("AAA", "NEWCO")],
    )
    spec = bus.topology.for_kind("A")
    assert spec is not None
    await processor.ingest(
        ReceivedBatch([Received(spec, decode_header(raw), raw, False, 0.0)], (), _settle)
    )
    async with asyncio.timeout(10):
        while processor.reference_pending:  # noqa: ASYNC110 - a predicate under a deadline
            await asyncio.sleep(0.01)
    await processor.flush()
    assert processor.stats.unknown_symbols == 1
    assert processor.stats.bad_events == {}
    newco = sink.store.document(FEED_QUOTE.name(symbol="NEWCO"))
    assert (newco["prev_close"], newco["regular"]["high"]) == (None, 10.5)
    assert sink.store.document(FEED_QUOTE.name(symbol="AAA"))["prev_close"] == 9.0
