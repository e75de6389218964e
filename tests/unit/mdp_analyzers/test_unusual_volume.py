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


def test_a_record_at_exactly_a_threshold_and_exactly_the_minimum_volume_alerts() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2.0, 3.0), rvol_min_volume=10_000)
    below = q("ACME", at_ms(DAY, 8, 0), 1.999, volume=10_000)
    thin = q("ACME", at_ms(DAY, 8, 1), 2.0, volume=9_999)
    assert alerts(run(uva, below, thin, now_ms=at_ms(DAY, 8, 1))) == []
    (at,) = alerts(
        run(uva, q("ACME", at_ms(DAY, 8, 2), 2.0, volume=10_000), now_ms=at_ms(DAY, 8, 2))
    )
    assert at == UnusualVolumeAlert(
        symbol="ACME",
        trading_day="2026-03-04",
        threshold=2.0,
        rvol_tod=2.0,
        volume=10_000,
        price=5.0,
        pct_change=1.5,
        note="RVol 2.0x crossed 2x",
        as_of_ms=at_ms(DAY, 8, 2),
    )
    (next_,) = alerts(run(uva, q("ACME", at_ms(DAY, 8, 3), 3.0), now_ms=at_ms(DAY, 8, 3)))
    assert (next_.threshold, next_.note) == (3.0, "RVol 3.0x crossed 3x")


def test_the_defaults_are_two_three_five_and_ten_x_from_ten_thousand_shares() -> None:
    uva = UnusualVolumeAnalyzer()
    assert (uva.thresholds, uva.min_volume) == ((2.0, 3.0, 5.0, 10.0), 10_000)
    assert (uva.name, uva.consumes) == ("unusual_volume", frozenset({"quote:*"}))
    stream = [
        q("ACME", at_ms(DAY, 9, 0), 9.0, volume=9_999),
        q("ACME", at_ms(DAY, 9, 1), 1.99, volume=10_000),
        q("ACME", at_ms(DAY, 9, 2), 2.0, volume=10_000),
        q("ACME", at_ms(DAY, 9, 3), 4.99),
        q("ACME", at_ms(DAY, 9, 4), 10.0),
    ]
    out = alerts(run(uva, *stream, now_ms=at_ms(DAY, 9, 4)))
    assert [(a.threshold, a.as_of_ms) for a in out] == [
        (2.0, at_ms(DAY, 9, 2)),
        (3.0, at_ms(DAY, 9, 3)),
        (10.0, at_ms(DAY, 9, 4)),
    ]


def test_thresholds_are_sorted_and_deduplicated_and_the_lowest_may_be_tiny() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(5.0, 2.0, 5.0, 0.001))
    assert uva.thresholds == (0.001, 2.0, 5.0)
    (alert,) = alerts(run(uva, q("ACME", at_ms(DAY, 9, 0), 2.5), now_ms=at_ms(DAY, 9, 0)))
    assert alert.threshold == 2.0


def test_other_feeds_and_foreign_objects_are_ignored_without_a_count() -> None:
    uva = UnusualVolumeAnalyzer()
    record = q("ACME", at_ms(DAY, 9, 0), 3.0)
    other = FeedMessage("news:latest", record.payload)
    uva.apply([other, object(), record.payload, record], at_ms(DAY, 9, 0) * MS)
    assert [a.threshold for a in alerts(uva.collect(at_ms(DAY, 9, 0) * MS))] == [3.0]
    assert sum(uva.rejected.values()) == 0


def test_every_stale_record_is_counted_and_the_rest_of_the_batch_still_read() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2.0,))
    now = at_ms(NEXT, 9, 0)
    stale = [q("OLD", at_ms(DAY, 15, m), 2.5) for m in range(3)]
    out = alerts(run(uva, *stale, q("ACME", now, 2.5, day=NEXT), now_ms=now))
    assert [(a.symbol, a.trading_day) for a in out] == [("ACME", "2026-03-05")]
    assert uva.rejected == {"stale_day": 3}


def test_symbols_are_tracked_apart_and_a_batch_goes_out_by_time_then_identity() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2.0, 3.0))
    t = at_ms(DAY, 9, 0)
    out = run(
        uva,
        q("ZETA", t + 5, 2.0),
        q("BETA", t, 3.0),
        q("ALFA", t, 2.0),
        q("ZETA", t + 9, 3.5),
        now_ms=t + 9,
    )
    assert [w.identity for w in out.widgets] == [
        "ALFA|2026-03-04|2",
        "BETA|2026-03-04|3",
        "ZETA|2026-03-04|2",
        "ZETA|2026-03-04|3",
    ]
    # A collect with nothing raised since is empty.
    assert uva.collect((t + 10) * MS).widgets == []


def test_a_new_day_rearms_even_when_only_collect_sees_the_roll() -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2.0,))
    assert alerts(run(uva, q("ACME", at_ms(DAY, 10, 0), 2.5), now_ms=at_ms(DAY, 10, 0)))
    uva.collect(at_ms(NEXT, 4, 1) * MS)
    tomorrow = q("ACME", at_ms(NEXT, 8, 0), 2.2, day=NEXT)
    (alert,) = alerts(run(uva, tomorrow, now_ms=at_ms(NEXT, 8, 0)))
    assert (alert.trading_day, alert.threshold) == ("2026-03-05", 2.0)
    # Within the same day, nothing re-arms.
    again = q("ACME", at_ms(NEXT, 8, 1), 2.9, day=NEXT)
    assert alerts(run(uva, again, now_ms=at_ms(NEXT, 8, 1))) == []


def _reference(
    thresholds: tuple[float, ...], min_volume: int, stream: list[tuple[str, float, int]]
) -> list[tuple[str, float, int]]:
    """(symbol, threshold, index) of the alerts a simple reading of the rules raises."""
    crossed: dict[str, float] = {}
    raised = []
    for index, (symbol, rvol, volume) in enumerate(stream):
        if volume < min_volume:
            continue
        top = max((t for t in thresholds if t <= rvol), default=None)
        if top is not None and top > crossed.get(symbol, 0.0):
            crossed[symbol] = top
            raised.append((symbol, top, index))
    return raised


@given(
    st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]), min_size=1, max_size=4),
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from([0.0, 0.5, 0.99, 1.0, 1.01, 1.5, 2.0, 2.49, 2.5, 3.0, 4.0]),
            st.sampled_from([99, 100, 101]),
        ),
        max_size=25,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_alerts_match_a_reference_reading_of_the_rules(
    thresholds: list[float], stream: list[tuple[str, float, int]], batch: int
) -> None:
    uva = UnusualVolumeAnalyzer(rvol_thresholds=thresholds, rvol_min_volume=100)
    start = at_ms(DAY, 9, 0)
    records = [q(s, start + i, r, volume=v) for i, (s, r, v) in enumerate(stream)]
    raised: list[UnusualVolumeAlert] = []
    for first in range(0, len(records), batch):
        raised += alerts(run(uva, *records[first : first + batch], now_ms=start + first))
    expected = _reference(tuple(sorted(set(thresholds))), 100, stream)
    assert [(a.symbol, a.threshold, a.as_of_ms) for a in raised] == [
        (s, t, start + i) for s, t, i in expected
    ]
    assert all(a.rvol_tod == stream[a.as_of_ms - start][1] for a in raised)


def test_a_record_of_a_day_not_begun_is_refused_until_a_minute_before_its_start() -> None:
    """One record dated tomorrow must not mark today's thresholds as crossed."""
    uva = UnusualVolumeAnalyzer(rvol_thresholds=(2, 5))
    now = at_ms(DAY, 9, 59)
    # Tomorrow's date with today's time, and tomorrow's date and time: both not begun.
    bogus = q("ACME", now, 11.0, day=NEXT)
    ahead = q("ACME", at_ms(NEXT, 9, 30), 11.0, day=NEXT)
    assert alerts(run(uva, bogus, ahead, now_ms=now)) == []
    assert uva.rejected["future_day"] == 2
    (today,) = alerts(run(uva, q("ACME", at_ms(DAY, 10, 0), 2.5), now_ms=at_ms(DAY, 10, 0)))
    assert (today.trading_day, today.threshold) == (DAY.isoformat(), 2)
    # Within a minute of 04:00 the next day's records count (two hosts' clocks differ).
    early = q("BOLT", at_ms(NEXT, 4, 0, 30), 2.5, day=NEXT)
    assert alerts(run(uva, early, now_ms=at_ms(NEXT, 4, 0) - 60_001)) == []
    (counted,) = alerts(run(uva, early, now_ms=at_ms(NEXT, 4, 0) - 60_000))
    assert counted.trading_day == NEXT.isoformat()
