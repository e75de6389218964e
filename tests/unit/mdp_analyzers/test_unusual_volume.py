"""UnusualVolumeAnalyzer: time-of-day RVol threshold crossings."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.typing import FeedMessage, Output
from mdp_analyzers.unusual_volume import UnusualVolumeAlert, UnusualVolumeAnalyzer
from mdp_testing.conformance import AnalyzerSuite, at_ms

DAY = date(2026, 3, 4)
NEXT = date(2026, 3, 5)
MS = 1_000_000


def q(
    symbol: str, end_ms: int, rvol: float | None, volume: int = 50_000, day: date = DAY
) -> FeedMessage:
    record: dict[str, Any] = {
        "symbol": symbol,
        "trading_day": day.isoformat(),
        "price": 5.0,
        "open": 5.0,
        "start_ms": end_ms - 1_000,
        "end_ms": end_ms,
        "accumulated_volume": volume,
        "rvol_tod": rvol,
        "pct_change": 1.5,
    }
    return FeedMessage(f"quote:{symbol}", json.dumps(record).encode())


def alerts(output: Output) -> list[UnusualVolumeAlert]:
    assert all(w.name == "alerts:volume" for w in output.widgets)
    return [msgspec.json.decode(w.payload, type=UnusualVolumeAlert) for w in output.widgets]


def run(analyzer: UnusualVolumeAnalyzer, *messages: FeedMessage, now_ms: int) -> Output:
    analyzer.apply(list(messages), now_ms * MS)
    return analyzer.collect(now_ms * MS)


class TestUnusualVolumeConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return UnusualVolumeAnalyzer()

    def sample_inputs(self) -> list[Any]:
        return [
            q("AAPL", at_ms(self.day, 9, 0), 1.0),
            q("AAPL", at_ms(self.day, 9, 5), 2.5),
            q("MSFT", at_ms(self.day, 9, 5), 0.8),
        ]


def test_each_threshold_alerts_once_and_a_jump_alerts_the_highest_only() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2, 3, 5))
    assert alerts(run(uva, q("ACME", at_ms(DAY, 8, 0), 1.9), now_ms=at_ms(DAY, 8, 0))) == []
    (first,) = alerts(run(uva, q("ACME", at_ms(DAY, 8, 5), 2.1), now_ms=at_ms(DAY, 8, 5)))
    assert (first.threshold, first.rvol_tod, first.as_of_ms) == (2, 2.1, at_ms(DAY, 8, 5))
    assert first.note == "RVol 2.1x crossed 2x"
    assert alerts(run(uva, q("ACME", at_ms(DAY, 8, 6), 2.9), now_ms=at_ms(DAY, 8, 6))) == []
    (jump,) = alerts(run(uva, q("ACME", at_ms(DAY, 8, 7), 6.0), now_ms=at_ms(DAY, 8, 7)))
    assert jump.threshold == 5  # not 3 and 5
    # Back down and up again: nothing new today.
    run(uva, q("ACME", at_ms(DAY, 9, 0), 1.0), now_ms=at_ms(DAY, 9, 0))
    assert alerts(run(uva, q("ACME", at_ms(DAY, 9, 1), 5.5), now_ms=at_ms(DAY, 9, 1))) == []


def test_alerts_carry_an_identity_per_symbol_day_and_threshold() -> None:
    out = run(UnusualVolumeAnalyzer(), q("ACME", at_ms(DAY, 8, 0), 3.2), now_ms=at_ms(DAY, 8, 0))
    (write,) = out.widgets
    assert write.identity == "ACME|2026-03-04|3"


def test_thin_volume_and_missing_rvol_never_alert() -> None:
    uva = UnusualVolumeAnalyzer(rvol_min_volume=10_000)
    thin = q("ACME", at_ms(DAY, 4, 5), 9.0, volume=300)
    unknown = q("ACME", at_ms(DAY, 4, 6), None)
    assert alerts(run(uva, thin, unknown, now_ms=at_ms(DAY, 4, 6))) == []


def test_a_new_trading_day_rearms_every_threshold() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2,))
    assert alerts(run(uva, q("ACME", at_ms(DAY, 10, 0), 2.5), now_ms=at_ms(DAY, 10, 0)))
    late = q("ACME", at_ms(DAY, 10, 1), 2.6)
    tomorrow = q("ACME", at_ms(NEXT, 8, 0), 2.2, day=NEXT)
    out = alerts(run(uva, late, tomorrow, now_ms=at_ms(NEXT, 8, 0)))
    assert [a.trading_day for a in out] == ["2026-03-05"]  # yesterday's record is stale
    assert uva.rejected["stale_day"] == 1


def test_bad_records_are_counted_not_fatal() -> None:
    uva = UnusualVolumeAnalyzer()
    bad = [
        FeedMessage("quote:X", b"not json"),
        FeedMessage("quote:X", b'{"symbol": "X"}'),
        FeedMessage("quote:X", json.loads(q("X", at_ms(DAY, 9, 0), 2.0).payload) and b""),
        q("ACME", at_ms(DAY, 9, 0), -1.0),
    ]
    run(uva, *bad, now_ms=at_ms(DAY, 9, 0))
    assert sum(uva.rejected.values()) == 4
    assert set(uva.rejected) <= {"invalid_json", "missing_field", "out_of_range"}


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        UnusualVolumeAnalyzer(rvol_thresholds=())
    with pytest.raises(ValueError, match="above 0"):
        UnusualVolumeAnalyzer(rvol_thresholds=(0.0, 2.0))


@given(
    st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=3),
)
def test_any_order_with_duplicates_alerts_the_peak_once_and_no_level_twice(
    rvols: list[float], rnd: Any, duplicates: int
) -> None:
    thresholds = (2.0, 3.0, 5.0, 10.0)
    records = [q("ACME", at_ms(DAY, 9, 0) + i * 1_000, r) for i, r in enumerate(rvols)]
    stream = records + [rnd.choice(records) for _ in range(duplicates)]
    rnd.shuffle(stream)
    uva = UnusualVolumeAnalyzer(rvol_thresholds=thresholds)
    raised: list[UnusualVolumeAlert] = []
    for start in range(0, len(stream), 4):  # in batches
        batch = alerts(run(uva, *stream[start : start + 4], now_ms=at_ms(DAY, 10, 0)))
        assert [a.as_of_ms for a in batch] == sorted(a.as_of_ms for a in batch)
        raised += batch
    levels = [a.threshold for a in raised]
    assert len(levels) == len(set(levels)), "a threshold alerted twice"
    assert all(a.rvol_tod >= a.threshold for a in raised)
    peak = max(rvols)
    top = [t for t in thresholds if peak >= t]
    assert (max(levels) if levels else None) == (top[-1] if top else None)
