import json
from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.daily_range import AlertDoc, DailyRangeAnalyzer, RangeDoc, decode_quote
from mdp_analyzers.typing import FeedMessage, Output
from mdp_core.calendar import MarketCalendar
from mdp_testing.conformance import AnalyzerSuite, at_ms

DAY = date(2026, 3, 4)  # a Wednesday
NEXT = date(2026, 3, 5)
MS = 1_000_000


def q(
    symbol: str, ts_ms: int, price: float, high: float | None = None, low: float | None = None
) -> FeedMessage:
    record: dict[str, Any] = {"symbol": symbol, "price": price, "start_ms": ts_ms}
    if high is not None:
        record["high"] = high
    if low is not None:
        record["low"] = low
    return FeedMessage(f"quote:{symbol}", json.dumps(record).encode())


def run(analyzer: DailyRangeAnalyzer, *messages: FeedMessage, now_ms: int) -> Output:
    analyzer.apply(list(messages), now_ms * MS)
    return analyzer.collect(now_ms * MS)


def alerts(output: Output) -> list[AlertDoc]:
    return [
        msgspec.json.decode(w.payload, type=AlertDoc)
        for w in output.widgets
        if w.name in {"alerts:hod", "alerts:lod"}
    ]


def ranges(output: Output) -> dict[str, RangeDoc]:
    return {
        w.name: msgspec.json.decode(w.payload, type=RangeDoc)
        for w in output.widgets
        if w.name.startswith("range:")
    }


class TestDailyRangeConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return DailyRangeAnalyzer(MarketCalendar())

    def sample_inputs(self) -> list[Any]:
        return [
            q("AAPL", at_ms(self.day, 9, 0), 4.0, 4.1, 3.9),
            q("AAPL", at_ms(self.day, 10, 0), 5.0, 5.2, 4.9),
            q("MSFT", at_ms(self.day, 10, 0), 300.0),
        ]


def test_first_print_is_silent_then_new_highs_and_lows_alert() -> None:
    dra = DailyRangeAnalyzer()
    out = run(dra, q("AAPL", at_ms(DAY, 10, 0), 10.0, 10.5, 9.5), now_ms=at_ms(DAY, 10, 0))
    assert alerts(out) == []
    doc = ranges(out)["range:AAPL"]
    assert (doc.regular_high, doc.regular_low, doc.session) == (10.5, 9.5, "regular")
    assert doc.trading_day == "2026-03-04"

    out = run(dra, q("AAPL", at_ms(DAY, 10, 1), 10.6, 10.8, 10.4), now_ms=at_ms(DAY, 10, 1))
    (hod,) = alerts(out)
    assert (hod.direction, hod.price, hod.previous, hod.note) == ("high", 10.8, 10.5, "")
    assert out.widgets[-1].name == "alerts:hod"

    out = run(dra, q("AAPL", at_ms(DAY, 10, 2), 9.4, 9.6, 9.3), now_ms=at_ms(DAY, 10, 2))
    (lod,) = alerts(out)
    assert (lod.direction, lod.price, lod.previous) == ("low", 9.3, 9.5)
    assert out.widgets[-1].name == "alerts:lod"

    # Inside the range: no alert, but the document moves with the price.
    out = run(dra, q("AAPL", at_ms(DAY, 10, 3), 10.0), now_ms=at_ms(DAY, 10, 3))
    assert alerts(out) == []
    assert ranges(out)["range:AAPL"].price == 10.0


def test_regular_session_breaking_the_pre_market_high_carries_a_note() -> None:
    dra = DailyRangeAnalyzer()
    run(dra, q("XYZ", at_ms(DAY, 7, 0), 4.5, 4.8, 4.4), now_ms=at_ms(DAY, 7, 0))
    out = run(dra, q("XYZ", at_ms(DAY, 9, 30), 4.6, 4.7, 4.6), now_ms=at_ms(DAY, 9, 30))
    assert alerts(out) == []  # first regular print, below the pre-market high
    out = run(dra, q("XYZ", at_ms(DAY, 9, 31), 4.9, 4.95, 4.8), now_ms=at_ms(DAY, 9, 31))
    (hod,) = alerts(out)
    assert hod.note == "broke pre-market high of $4.80"
    assert hod.session == "regular"
    # Breaking it again later is a plain new high.
    out = run(dra, q("XYZ", at_ms(DAY, 9, 32), 5.0, 5.1, 5.0), now_ms=at_ms(DAY, 9, 32))
    assert [a.note for a in alerts(out)] == [""]


def test_gap_over_an_earlier_session_extreme_alerts_on_the_first_print() -> None:
    dra = DailyRangeAnalyzer()
    run(dra, q("GAP", at_ms(DAY, 8, 0), 2.0, 2.0, 1.9), now_ms=at_ms(DAY, 8, 0))
    out = run(dra, q("GAP", at_ms(DAY, 9, 30), 2.5, 2.6, 2.4), now_ms=at_ms(DAY, 9, 30))
    (hod,) = alerts(out)
    assert (hod.previous, hod.note) == (None, "broke pre-market high of $2.00")


def test_after_hours_checks_the_regular_session_first() -> None:
    dra = DailyRangeAnalyzer()
    run(dra, q("AH", at_ms(DAY, 8, 0), 1.0, 1.0, 0.5), now_ms=at_ms(DAY, 8, 0))
    run(dra, q("AH", at_ms(DAY, 12, 0), 0.9, 0.95, 0.6), now_ms=at_ms(DAY, 12, 0))
    run(dra, q("AH", at_ms(DAY, 16, 0), 0.9, 0.9, 0.7), now_ms=at_ms(DAY, 16, 0))
    out = run(dra, q("AH", at_ms(DAY, 16, 5), 1.2, 1.2, 0.9), now_ms=at_ms(DAY, 16, 5))
    (hod,) = alerts(out)
    assert hod.note == "broke regular-session high of $0.9500"
    out = run(dra, q("AH", at_ms(DAY, 16, 6), 0.4, 0.7, 0.4), now_ms=at_ms(DAY, 16, 6))
    (lod,) = alerts(out)
    assert lod.note == "broke regular-session low of $0.6000"


def test_half_day_after_hours_start_at_13_00() -> None:
    half_day = date(2026, 11, 27)
    dra = DailyRangeAnalyzer()
    out = run(dra, q("H", at_ms(half_day, 13, 30), 5.0), now_ms=at_ms(half_day, 13, 30))
    assert ranges(out)["range:H"].after_hours_high == 5.0


def test_closed_times_and_bad_messages_are_counted_and_skipped() -> None:
    dra = DailyRangeAnalyzer()
    saturday = date(2026, 3, 7)
    messages = [
        q("A", at_ms(saturday, 12, 0), 1.0),
        q("A", at_ms(DAY, 21, 0), 1.0),
        FeedMessage("quote:A", b"{not json"),
        FeedMessage("quote:A", b'{"price": 1.0, "start_ms": 1}'),
        FeedMessage("quote:A", b'{"symbol": "A", "start_ms": 1}'),
        FeedMessage("quote:A", b'{"symbol": "A", "price": -1, "start_ms": 1}'),
        FeedMessage("quote:A", b'{"symbol": "A", "price": 1}'),
        FeedMessage("range:A", b"ignored: not a quote feed"),
    ]
    out = run(dra, *messages, now_ms=at_ms(DAY, 21, 0))
    assert not out.widgets
    assert dra.rejected == {
        "closed_session": 2,
        "invalid_json": 1,
        "missing_field": 3,
        "out_of_range": 1,
    }


def test_new_trading_day_at_04_00_resets_and_yesterday_is_stale() -> None:
    dra = DailyRangeAnalyzer()
    run(dra, q("A", at_ms(DAY, 19, 0), 9.0, 9.0, 8.0), now_ms=at_ms(DAY, 19, 0))
    # 03:59 next morning still belongs to yesterday's trading day; 04:00 starts a new one.
    assert dra.collect(at_ms(NEXT, 3, 59) * MS).widgets == []
    run(dra, now_ms=at_ms(NEXT, 4, 0))
    out = run(dra, q("A", at_ms(NEXT, 4, 1), 5.0, 5.0, 5.0), now_ms=at_ms(NEXT, 4, 1))
    assert alerts(out) == []  # a fresh day: the first print is a baseline, not a "new low"
    doc = ranges(out)["range:A"]
    assert (doc.trading_day, doc.after_hours_high, doc.pre_market_low) == ("2026-03-05", None, 5.0)
    out = run(dra, q("A", at_ms(DAY, 19, 30), 1.0), now_ms=at_ms(NEXT, 4, 2))
    assert not out.widgets
    assert dra.rejected["stale_day"] == 1


def _restart_from(output: Output, now_ms: int) -> DailyRangeAnalyzer:
    fresh = DailyRangeAnalyzer()
    assert fresh.snapshot_patterns() == ("range:*",)
    snapshots = {w.name: w.payload for w in output.widgets if w.name.startswith("range:")}
    fresh.restore(snapshots, now_ms * MS)
    return fresh


def test_restart_mid_session_raises_no_repeat_alerts() -> None:
    first = DailyRangeAnalyzer()
    run(first, q("R", at_ms(DAY, 7, 0), 3.0, 3.2, 2.9), now_ms=at_ms(DAY, 7, 0))
    out = run(first, q("R", at_ms(DAY, 10, 0), 3.1, 3.5, 3.0), now_ms=at_ms(DAY, 10, 0))
    assert [a.note for a in alerts(out)] == ["broke pre-market high of $3.20"]

    second = _restart_from(out, at_ms(DAY, 10, 5))
    # The same extreme again after the restart: no alert (dedup across restarts).
    out = run(second, q("R", at_ms(DAY, 10, 6), 3.4, 3.5, 3.1), now_ms=at_ms(DAY, 10, 6))
    assert alerts(out) == []
    doc = ranges(out)["range:R"]
    assert (doc.pre_market_high, doc.regular_high, doc.regular_low) == (3.2, 3.5, 3.0)
    out = run(second, q("R", at_ms(DAY, 10, 7), 3.6, 3.6, 3.5), now_ms=at_ms(DAY, 10, 7))
    (hod,) = alerts(out)
    assert (hod.previous, hod.note) == (3.5, "")


def test_restart_across_the_open_keeps_pre_market_extremes_for_notes() -> None:
    first = DailyRangeAnalyzer()
    out = run(first, q("P", at_ms(DAY, 9, 0), 4.0, 4.8, 3.9), now_ms=at_ms(DAY, 9, 0))
    second = _restart_from(out, at_ms(DAY, 9, 45))
    run(second, q("P", at_ms(DAY, 9, 45), 4.5, 4.6, 4.4), now_ms=at_ms(DAY, 9, 45))
    out = run(second, q("P", at_ms(DAY, 9, 46), 4.9, 4.9, 4.7), now_ms=at_ms(DAY, 9, 46))
    assert [a.note for a in alerts(out)] == ["broke pre-market high of $4.80"]


def test_restore_ignores_documents_of_another_trading_day() -> None:
    first = DailyRangeAnalyzer()
    out = run(first, q("Y", at_ms(DAY, 15, 0), 7.0, 7.5, 6.5), now_ms=at_ms(DAY, 15, 0))
    # Restart the next morning after 04:00: yesterday's range must not come back.
    second = _restart_from(out, at_ms(NEXT, 4, 30))
    out = run(second, q("Y", at_ms(NEXT, 4, 31), 6.0), now_ms=at_ms(NEXT, 4, 31))
    assert alerts(out) == []
    doc = ranges(out)["range:Y"]
    assert (doc.regular_high, doc.pre_market_high, doc.day_high) == (None, 6.0, 6.0)
    # ... but a restart before 04:00 still belongs to yesterday and restores it.
    third = _restart_from(run(first, now_ms=at_ms(DAY, 15, 0)), at_ms(NEXT, 3, 0))
    assert third.collect(at_ms(NEXT, 3, 0) * MS).widgets == []
    bad = DailyRangeAnalyzer()
    bad.restore({"range:Z": b"garbage", "quote:Z": b"{}"}, at_ms(DAY, 10, 0) * MS)
    assert bad.rejected["invalid_snapshot"] == 1


def test_restore_never_loses_newer_in_memory_state() -> None:
    dra = DailyRangeAnalyzer()
    out = run(dra, q("M", at_ms(DAY, 10, 0), 5.0, 5.0, 5.0), now_ms=at_ms(DAY, 10, 0))
    old = {w.name: w.payload for w in out.widgets}
    run(dra, q("M", at_ms(DAY, 10, 1), 6.0, 6.0, 4.0), now_ms=at_ms(DAY, 10, 1))
    dra.restore(old, at_ms(DAY, 10, 2) * MS)
    out = run(dra, q("M", at_ms(DAY, 10, 3), 5.5), now_ms=at_ms(DAY, 10, 3))
    doc = ranges(out)["range:M"]
    assert (doc.regular_high, doc.regular_low) == (6.0, 4.0)


def test_decode_quote_accepts_aliases_and_widens_the_range() -> None:
    tick = decode_quote(b'{"sym": "A", "close": 5.0, "high": 4.0, "low": 6.0, "as_of_ms": 7}')
    assert (tick.symbol, tick.price, tick.low, tick.high, tick.ts_ms) == ("A", 5.0, 4.0, 6.0, 7)


@pytest.mark.parametrize(
    ("times", "ts_ms"),
    [
        ('"start_ms": 5, "end_ms": 6, "as_of_ms": 7, "timestamp_ms": 8', 5),
        ('"end_ms": 6, "as_of_ms": 7, "timestamp_ms": 8', 6),
        ('"as_of_ms": 7, "timestamp_ms": 8', 7),
        ('"timestamp_ms": 8', 8),
    ],
)
def test_a_record_is_placed_by_its_first_event_time_in_order_of_preference(
    times: str, ts_ms: int
) -> None:
    tick = decode_quote(b'{"symbol": "A", "price": 5.0, ' + times.encode() + b"}")
    assert tick.ts_ms == ts_ms


session_times = st.integers(min_value=at_ms(DAY, 4, 0), max_value=at_ms(DAY, 19, 59))
prices = st.floats(min_value=0.01, max_value=10_000, allow_nan=False)


@given(st.lists(st.tuples(session_times, prices, prices, prices), min_size=1, max_size=40))
def test_low_le_price_le_high_under_any_tick_sequence(
    ticks: list[tuple[int, float, float, float]],
) -> None:
    dra = DailyRangeAnalyzer()
    ordered = sorted(ticks)
    for ts, price, a, b in ordered:
        dra.apply([q("P", ts, price, max(a, b), min(a, b))], ts * MS)
    doc = ranges(dra.collect(ordered[-1][0] * MS))["range:P"]
    assert doc.day_low is not None
    assert doc.day_high is not None
    assert doc.day_low <= doc.price <= doc.day_high
    for high, low in (
        (doc.pre_market_high, doc.pre_market_low),
        (doc.regular_high, doc.regular_low),
        (doc.after_hours_high, doc.after_hours_low),
    ):
        assert (high is None) == (low is None)
        if high is not None and low is not None:
            assert low <= high


# --- quote records carrying session figures (the processors fold every bar) -----------------


def figures(first_ms: int, high: float, high_ms: int, low: float, low_ms: int) -> dict[str, Any]:
    return {"first_ms": first_ms, "high": high, "high_ms": high_ms, "low": low, "low_ms": low_ms}


def qf(symbol: str, ts_ms: int, price: float, **sessions: dict[str, Any]) -> FeedMessage:
    """A quote record with session figures (``pre_market=``, ``regular=``, ``after_hours=``)."""
    record: dict[str, Any] = {"symbol": symbol, "price": price, "start_ms": ts_ms}
    record.update(high=price, low=price, **sessions)
    return FeedMessage(f"quote:{symbol}", json.dumps(record).encode())


def test_ranges_come_from_the_session_figures_not_the_latest_bar() -> None:
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 9, 0)
    # The latest bar traded at 5.0, but earlier bars of the same flush reached 6.0 and 4.0.
    out = run(
        analyzer,
        qf("AAA", t0 + 9_000, 5.0, pre_market=figures(t0, 6.0, t0 + 3_000, 4.0, t0 + 5_000)),
        now_ms=t0 + 10_000,
    )
    doc = ranges(out)["range:AAA"]
    assert (doc.pre_market_high, doc.pre_market_low) == (6.0, 4.0)
    assert (doc.day_high, doc.day_low) == (6.0, 4.0)
    # Both extremes were reached after the session's first bar: news, stamped when reached.
    assert [(a.direction, a.price, a.previous, a.as_of_ms) for a in alerts(out)] == [
        ("high", 6.0, None, t0 + 3_000),
        ("low", 4.0, None, t0 + 5_000),
    ]


def test_a_first_record_whose_extremes_are_its_first_bar_only_sets_the_baseline() -> None:
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 10, 0)
    out = run(analyzer, qf("AAA", t0, 5.0, regular=figures(t0, 5.2, t0, 4.9, t0)), now_ms=t0)
    assert alerts(out) == []
    # A later record whose high moved: one alert; its low did not move: none.
    later = qf("AAA", t0 + 60_000, 5.3, regular=figures(t0, 5.4, t0 + 30_000, 4.9, t0))
    out = run(analyzer, later, now_ms=t0 + 60_000)
    assert [(a.direction, a.price, a.previous) for a in alerts(out)] == [("high", 5.4, 5.2)]


def test_figures_never_shrink_a_range_and_late_records_add_nothing_twice() -> None:
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 10, 0)
    run(analyzer, qf("AAA", t0, 5.0, regular=figures(t0, 6.0, t0 + 1, 4.0, t0 + 2)), now_ms=t0)
    # An older record (a slower replica) with a narrower range: nothing moves, no alert.
    out = run(analyzer, qf("AAA", t0, 5.0, regular=figures(t0, 5.5, t0, 4.5, t0)), now_ms=t0)
    doc = ranges(out)["range:AAA"]
    assert (doc.regular_high, doc.regular_low) == (6.0, 4.0)
    assert alerts(out) == []


def test_alerts_of_one_batch_are_written_in_event_time_order() -> None:
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 10, 0)
    baseline = [
        qf(s, t0, 5.0, regular=figures(t0, 5.0, t0, 5.0, t0)) for s in ("AAA", "BBB", "CCC")
    ]
    run(analyzer, *baseline, now_ms=t0)
    out = run(
        analyzer,
        qf("AAA", t0 + 9_000, 6.0, regular=figures(t0, 6.0, t0 + 7_000, 5.0, t0)),
        qf("BBB", t0 + 9_000, 6.0, regular=figures(t0, 6.0, t0 + 2_000, 5.0, t0)),
        qf("CCC", t0 + 9_000, 6.0, regular=figures(t0, 6.0, t0 + 4_000, 5.0, t0)),
        now_ms=t0 + 10_000,
    )
    assert [(a.symbol, a.as_of_ms) for a in alerts(out)] == [
        ("BBB", t0 + 2_000),
        ("CCC", t0 + 4_000),
        ("AAA", t0 + 7_000),
    ]


def test_session_figures_with_a_low_above_the_high_are_refused() -> None:
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 10, 0)
    run(analyzer, qf("AAA", t0, 5.0, regular=figures(t0, 4.0, t0, 6.0, t0)), now_ms=t0)
    assert analyzer.rejected["out_of_range"] == 1


def test_a_late_extreme_is_stamped_when_it_became_known_not_before_earlier_alerts() -> None:
    """Reordered feed: the 09:32:25 bar reaching 253.36 arrives after the 09:32:26 bar."""
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 9, 32)
    run(analyzer, qf("W", t0, 253.0, regular=figures(t0, 253.0, t0, 253.0, t0)), now_ms=t0)
    first = run(
        analyzer,
        qf("W", t0 + 26_000, 253.33, regular=figures(t0, 253.33, t0 + 26_000, 253.0, t0)),
        now_ms=t0 + 26_000,
    )
    assert [(a.price, a.as_of_ms) for a in alerts(first)] == [(253.33, t0 + 26_000)]
    late = run(
        analyzer,
        qf("W", t0 + 26_000, 253.33, regular=figures(t0, 253.36, t0 + 25_000, 253.0, t0)),
        now_ms=t0 + 27_000,
    )
    # Reached at :25 but known only after the :26 alert: stamped :26, so by time and by
    # price the symbol's alerts agree (a list in event-time order never shows a high falling).
    assert [(a.price, a.previous, a.as_of_ms) for a in alerts(late)] == [
        (253.36, 253.33, t0 + 26_000)
    ]
    # In feed order the same extreme keeps the time it was reached.
    ordered = DailyRangeAnalyzer()
    run(ordered, qf("W", t0, 253.0, regular=figures(t0, 253.0, t0, 253.0, t0)), now_ms=t0)
    out = run(
        ordered,
        qf("W", t0 + 26_000, 253.33, regular=figures(t0, 253.36, t0 + 25_000, 253.0, t0)),
        now_ms=t0 + 26_000,
    )
    assert [(a.price, a.as_of_ms) for a in alerts(out)] == [(253.36, t0 + 25_000)]


def test_an_extreme_newer_than_its_record_holds_back_later_alerts_stamps() -> None:
    """Figures joined from another writer can be newer than the record's own bar.

    The first record (bar :05) carries a high of 2.23 reached at :08 by the previous owner;
    a later record (bar :07) brings 2.24 reached at :07. Stamping that by its own times would
    put 2.24 before 2.23 in event time, so a list in time order would show the high falling.
    """
    analyzer = DailyRangeAnalyzer()
    t0 = at_ms(DAY, 9, 31)
    run(analyzer, qf("V", t0, 2.2, regular=figures(t0, 2.2, t0, 2.2, t0)), now_ms=t0)
    first = run(
        analyzer,
        qf("V", t0 + 5_000, 2.21, regular=figures(t0, 2.23, t0 + 8_000, 2.2, t0)),
        now_ms=t0 + 9_000,
    )
    assert [(a.price, a.as_of_ms) for a in alerts(first)] == [(2.23, t0 + 8_000)]
    later = run(
        analyzer,
        qf("V", t0 + 7_000, 2.24, regular=figures(t0, 2.24, t0 + 7_000, 2.2, t0)),
        now_ms=t0 + 10_000,
    )
    assert [(a.price, a.previous, a.as_of_ms) for a in alerts(later)] == [(2.24, 2.23, t0 + 8_000)]
    # The range document keeps the latest bar's own time, not the alert clock.
    assert ranges(later)["range:V"].as_of_ms == t0 + 7_000


def _bar_record(symbol: str, start_ms: int, end_ms: int, price: float) -> FeedMessage:
    record = {"symbol": symbol, "price": price, "start_ms": start_ms, "end_ms": end_ms}
    return FeedMessage(f"quote:{symbol}", json.dumps(record).encode())


def test_the_price_is_the_close_of_the_bar_that_ends_latest_not_the_one_starting_latest() -> None:
    """A minute bar ends with its minute's last second bar and supersedes it on the record.

    The processor's row holds the bar that ends latest, so when the second bars of :50 and :59
    and then the minute bar (start :00, end :00 of the next minute) land in one flush, the
    record of the flush is the minute bar's. Ordering by bar start kept the :50 price.
    """
    analyzer = DailyRangeAnalyzer()
    minute = at_ms(DAY, 9, 35)
    out = run(analyzer, _bar_record("CAP", minute + 52_000, minute + 53_000, 221.55), now_ms=minute)
    assert ranges(out)["range:CAP"].price == 221.55
    out = run(analyzer, _bar_record("CAP", minute, minute + 60_000, 221.5), now_ms=minute + 60_000)
    doc = ranges(out)["range:CAP"]
    assert (doc.price, doc.as_of_ms) == (221.5, minute + 60_000)
    # Same end: the later record wins (records come in the order MDC stored their rows).
    out = run(
        analyzer,
        _bar_record("CAP", minute + 59_000, minute + 60_000, 221.52),
        now_ms=minute + 60_000,
    )
    assert ranges(out)["range:CAP"].price == 221.52
    # A bar ending one millisecond earlier is older, even though it starts later.
    out = run(
        analyzer,
        _bar_record("CAP", minute + 59_500, minute + 59_999, 221.6),
        now_ms=minute + 60_000,
    )
    doc = ranges(out)["range:CAP"]
    assert (doc.price, doc.as_of_ms) == (221.52, minute + 60_000)


def test_a_record_without_an_end_is_as_of_its_start() -> None:
    tick = decode_quote(b'{"symbol": "A", "price": 5.0, "start_ms": 7}')
    assert (tick.ts_ms, tick.end_ms) == (7, 7)
    tick = decode_quote(b'{"symbol": "A", "price": 5.0, "start_ms": 7, "end_ms": 3}')
    assert (tick.ts_ms, tick.end_ms) == (7, 7)  # an end before the start is not believed
    tick = decode_quote(b'{"symbol": "A", "price": 5.0, "start_ms": 7, "end_ms": 9}')
    assert (tick.ts_ms, tick.end_ms) == (7, 9)


def test_a_bad_record_in_a_batch_costs_only_itself() -> None:
    """Times the calendar cannot place and symbols no feed name can hold are refused alone."""
    dra = DailyRangeAnalyzer()
    now = at_ms(DAY, 10, 0)
    spaced = FeedMessage("quote:AC", q("AC", now, 5.0).payload.replace(b'"AC"', b'"A C"'))
    out = run(dra, q("HUGE", 10**15, 5.0), spaced, q("GOOD", at_ms(DAY, 9, 45), 10.0), now_ms=now)
    assert list(ranges(out)) == ["range:GOOD"]
    assert dra.rejected["invalid_json"] == 2


def test_a_record_of_a_day_not_begun_never_hides_today() -> None:
    dra = DailyRangeAnalyzer()
    now = at_ms(DAY, 10, 0)
    run(dra, q("ACME", at_ms(DAY, 9, 31), 10.0, 10.0, 10.0), now_ms=now)
    run(dra, q("ACME", at_ms(date(2027, 3, 3), 9, 31), 10.0), now_ms=now)
    assert dra.rejected["future_day"] == 1
    out = run(dra, q("ACME", at_ms(DAY, 9, 40), 12.0, 12.0, 11.0), now_ms=now + 1)
    assert ranges(out)["range:ACME"].trading_day == DAY.isoformat()
    assert [(a.direction, a.price) for a in alerts(out)] == [("high", 12.0)]
    # A minute before 04:00 the next day's first bars count (two hosts' clocks differ).
    first = q("BOLT", at_ms(NEXT, 4, 0), 5.0)
    assert ranges(run(dra, first, now_ms=at_ms(NEXT, 4, 0) - 60_001)) == {}
    assert dra.rejected["future_day"] == 2
    out = run(dra, first, now_ms=at_ms(NEXT, 4, 0) - 60_000)
    assert ranges(out)["range:BOLT"].trading_day == NEXT.isoformat()


def test_session_figures_reached_on_another_day_refuse_the_record() -> None:
    """Their time would stamp every later alert of the symbol (alerts are kept by time)."""
    dra = DailyRangeAnalyzer()
    now = at_ms(DAY, 10, 0)
    first = at_ms(DAY, 9, 30)

    def record(high_ms: int) -> FeedMessage:
        figures = {"first_ms": first, "high": 10.0, "high_ms": high_ms, "low": 9.0, "low_ms": first}
        payload = {"symbol": "ACME", "price": 10.0, "start_ms": at_ms(DAY, 9, 31)}
        return FeedMessage("quote:ACME", json.dumps(payload | {"regular": figures}).encode())

    tomorrow, yesterday = record(at_ms(NEXT, 9, 30)), record(at_ms(DAY, 4, 0) - 1)
    assert ranges(run(dra, tomorrow, yesterday, now_ms=now)) == {}
    assert dra.rejected["out_of_range"] == 2
    # The last instant of the trading day (03:59:59.999 the next morning) is the same day.
    assert list(ranges(run(dra, record(at_ms(NEXT, 4, 0) - 1), now_ms=now))) == ["range:ACME"]
    assert dra.rejected["out_of_range"] == 2


@pytest.mark.parametrize("figure", ["first_ms", "high_ms", "low_ms"])
def test_a_trading_day_runs_from_its_04_00_to_the_next_trading_days(figure: str) -> None:
    """Friday's day runs past the weekend and a holiday Monday, to Tuesday 04:00 exclusive."""
    friday = date(2026, 2, 13)  # Presidents' Day is Monday 2026-02-16
    now = at_ms(friday, 10, 0)

    def record(at: int) -> FeedMessage:
        figures = {"first_ms": now, "high": 10.0, "high_ms": now, "low": 9.0, "low_ms": now}
        figures[figure] = at
        payload = {"symbol": "ACME", "price": 10.0, "start_ms": now}
        return FeedMessage("quote:ACME", json.dumps(payload | {"regular": figures}).encode())

    inside = (
        at_ms(friday, 4, 0),
        at_ms(date(2026, 2, 15), 12, 0),
        at_ms(date(2026, 2, 17), 4, 0) - 1,
    )
    outside = (
        at_ms(friday, 4, 0) - 1,
        at_ms(date(2026, 2, 17), 4, 0),
        at_ms(date(2026, 2, 17), 5, 0),
    )
    for at in inside:
        dra = DailyRangeAnalyzer()
        assert list(ranges(run(dra, record(at), now_ms=now))) == ["range:ACME"], at
    for at in outside:
        dra = DailyRangeAnalyzer()
        assert ranges(run(dra, record(at), now_ms=now)) == {}, at
        assert dra.rejected == {"out_of_range": 1}


def test_after_the_roll_a_record_of_yesterday_is_stale_for_any_symbol() -> None:
    dra = DailyRangeAnalyzer()
    run(dra, q("ACME", at_ms(DAY, 15, 0), 5.0), now_ms=at_ms(DAY, 15, 0))
    late = q("NEWCO", at_ms(DAY, 19, 59), 5.0)  # a symbol this process never saw
    assert ranges(run(dra, late, now_ms=at_ms(NEXT, 4, 0))) == {}
    assert dra.rejected["stale_day"] == 1
