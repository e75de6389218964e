"""The benchmark's own leaderboard recomputation agrees with the platform's analyzer."""

from __future__ import annotations

from datetime import date, datetime, time

import msgspec

from mdp_analyzers.board import Board, Row
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_cache.records import DailyBar, ReferenceData
from mdp_core.clock import ET, to_ns
from mdp_core.wire import decode_frame
from mdp_platform.bench.board import (
    RANGE_FIELDS,
    BoardTracker,
    SymbolFinal,
    check_board,
    check_ranges,
    expected_boards,
    expected_prices,
    expected_ranges,
)
from mdp_sim.market import Market
from mdp_sim.scenario import ScenarioConfig

DAY = date(2026, 3, 4)
OPEN_MS = to_ns(datetime.combine(DAY, time(9, 30), tzinfo=ET)) // 1_000_000


def _market_events(start: time, seconds: int) -> tuple[Market, list[dict[str, object]]]:
    market = Market(
        ScenarioConfig(seed=3, symbols=60, trading_day=DAY, start=start, news_per_hour=0.0)
    )
    update = market.advance(market.now_ns + seconds * 1_000_000_000)
    return market, update.events


def _analyzer_boards(
    market: Market, events: list[dict[str, object]]
) -> dict[str, list[tuple[str, float]]]:
    """The analyzer's rows, ranked the way the platform's sorted sets rank them."""
    analyzer = LeaderboardAnalyzer()
    wanted = [e for e in events if e["ev"] in {"A", "AM", "LULD"}]
    decoded = decode_frame(msgspec.json.encode(wanted))
    assert not decoded.errors
    analyzer.apply(decoded.events, 0)
    for symbol, day in analyzer.wanted_reference():
        row = market.previous_close(symbol)
        assert row is not None
        bar = DailyBar(
            day=date(2026, 3, 3),
            open=float(row["o"]),  # type: ignore[arg-type]
            high=float(row["h"]),  # type: ignore[arg-type]
            low=float(row["l"]),  # type: ignore[arg-type]
            close=float(row["c"]),  # type: ignore[arg-type]
            volume=int(row["v"]),  # type: ignore[call-overload]
        )
        analyzer.provide_reference(ReferenceData(symbol=symbol, trading_day=day, prev_day=bar))
    ops = analyzer.rows_output(set(analyzer._symbols))  # every row, not only a flush's
    ranked: dict[str, list[tuple[float, str, float]]] = {b.value: [] for b in Board}
    for op in ops:
        stored = msgspec.json.decode(op.payload, type=Row)
        volume, gap, gain = op.scores  # the exact scores the boards rank by
        assert volume is not None
        ranked["top_volume"].append((volume, stored.symbol, float(stored.accumulated_volume)))
        if gap is not None:
            assert stored.pct_change is not None
            ranked["top_gappers"].append((gap, stored.symbol, stored.pct_change))
        if gain is not None:
            assert stored.pct_change_since_open is not None
            ranked["top_gainers"].append((gain, stored.symbol, stored.pct_change_since_open))
    return {
        name: [(symbol, shown) for _, symbol, shown in sorted(rows, reverse=True)]
        for name, rows in ranked.items()
    }


def _recomputed(
    market: Market, events: list[dict[str, object]]
) -> dict[str, list[tuple[str, float]]]:
    tracker = BoardTracker(open_ms=OPEN_MS)
    tracker.add(events)
    prev = {}
    for symbol in market.profiles:
        row = market.previous_close(symbol)
        assert row is not None
        prev[symbol] = float(row["c"])  # type: ignore[arg-type]
    return expected_boards(tracker.finals(), prev, OPEN_MS)


def test_recomputation_equals_the_analyzers_rows_in_the_regular_session() -> None:
    market, events = _market_events(time(9, 40), 240)
    mine = _recomputed(market, events)
    theirs = _analyzer_boards(market, events)
    assert mine == theirs
    assert mine["top_volume"]
    assert mine["top_gappers"]
    assert mine["top_gainers"]


def test_before_the_open_nobody_is_a_gainer_but_volume_and_gaps_count() -> None:
    market, events = _market_events(time(8, 0), 120)
    mine = _recomputed(market, events)
    assert mine == _analyzer_boards(market, events)
    assert mine["top_gainers"] == []
    assert mine["top_volume"]


def test_tracker_keeps_the_latest_bar_whatever_the_arrival_order() -> None:
    first: dict[str, object] = {"ev": "A", "sym": "X", "v": 10, "av": 10, "o": 1.0, "c": 1.1}
    first |= {"s": OPEN_MS, "e": OPEN_MS + 1000, "op": 1.0, "h": 1.2, "l": 0.9}
    second: dict[str, object] = {"ev": "A", "sym": "X", "v": 5, "av": 15, "o": 1.1, "c": 1.3}
    second |= {"s": OPEN_MS + 1000, "e": OPEN_MS + 2000, "op": 1.0, "h": 1.3, "l": 1.1}
    bars = [first, second]
    forward, backward = BoardTracker(open_ms=OPEN_MS), BoardTracker(open_ms=OPEN_MS)
    forward.add(bars)
    backward.add(list(reversed(bars)))
    assert forward.finals() == backward.finals()
    regular_only = (None, None, 1.3, 0.9, None, None)
    assert forward.finals()["X"] == SymbolFinal(OPEN_MS + 2000, 15, 5, 1.3, 1.0, 1.0, regular_only)


def test_tracker_skips_events_that_are_not_well_formed_aggregates() -> None:
    tracker = BoardTracker(open_ms=OPEN_MS)
    tracker.add([{"ev": "T", "sym": "X"}, {"ev": "A", "sym": "X", "e": "late"}])
    assert tracker.finals() == {}


def test_check_board_passes_an_identical_board() -> None:
    expected = [("A", 30.0), ("B", 20.0), ("C", 10.0)]
    verdict = check_board("top_volume", expected, expected[:2], size=2)
    assert verdict.ok, verdict.detail


def test_check_board_accepts_a_swap_among_ties_at_the_cut() -> None:
    expected = [("A", 30.0), ("C", 10.0), ("B", 10.0)]
    verdict = check_board("top_volume", expected, [("A", 30.0), ("B", 10.0)], size=2)
    assert verdict.ok, verdict.detail


def test_check_board_fails_on_a_wrong_score_a_missing_row_or_bad_order() -> None:
    expected = [("A", 30.0), ("B", 20.0), ("C", 10.0)]
    wrong = check_board("b", expected, [("A", 30.0), ("B", 19.0)], size=2)
    assert not wrong.ok
    assert wrong.wrong_score == ("B",)
    missing = check_board("b", expected, [("A", 30.0), ("C", 10.0)], size=2)
    assert not missing.ok
    assert missing.missing == ("B",)
    assert missing.unexpected == ("C",)
    unordered = check_board("b", expected, [("B", 20.0), ("A", 30.0)], size=2)
    assert not unordered.ok


def test_check_board_lets_stale_drops_explain_only_the_symbols_they_can() -> None:
    expected = [("A", 30.0), ("B", 20.0), ("C", 10.0)]
    actual = [("A", 30.0), ("B", 19.0)]
    assert not check_board("b", expected, actual, size=2).ok
    explained = check_board("b", expected, actual, size=2, explainable={"B"})
    assert explained.ok
    assert explained.explained == 1
    assert not check_board("b", expected, [("A", 29.0), ("B", 19.0)], size=2, explainable={"B"}).ok


def _analyzer_ranges(
    market: Market, events: list[dict[str, object]]
) -> dict[str, dict[str, float | None]]:
    """The session figures on the analyzer's rows, named as range documents name them."""
    analyzer = LeaderboardAnalyzer()
    wanted = [e for e in events if e["ev"] in {"A", "AM"}]
    analyzer.apply(decode_frame(msgspec.json.encode(wanted)).events, 0)
    found: dict[str, dict[str, float | None]] = {}
    for op in analyzer.rows_output(set(analyzer._symbols)):
        stored = msgspec.json.decode(op.payload, type=Row)
        sessions = (stored.pre_market, stored.regular, stored.after_hours)
        values = [v for s in sessions for v in ((s.high, s.low) if s else (None, None))]
        found[stored.symbol] = dict(
            zip(RANGE_FIELDS, (*values, stored.day_high, stored.day_low), strict=True)
        )
    return found


def test_ranges_equal_the_analyzers_session_figures_across_the_open() -> None:
    market, events = _market_events(time(9, 27), 360)  # pre-market into the regular session
    tracker = BoardTracker(open_ms=OPEN_MS)
    tracker.add(events)
    mine = expected_ranges(tracker.finals())
    assert mine == _analyzer_ranges(market, events)
    assert any(r["pre_market_high"] is not None for r in mine.values())
    assert any(r["regular_high"] is not None for r in mine.values())


def test_ranges_take_every_bar_not_only_the_latest() -> None:
    def bar(start: int, high: float, low: float) -> dict[str, object]:
        return {"ev": "A", "sym": "X", "v": 1, "av": start, "o": low, "c": low, "h": high} | {
            "l": low,
            "s": start,
            "e": start + 1000,
        }

    before_open = OPEN_MS - 60_000
    tracker = BoardTracker(open_ms=OPEN_MS)
    # The extreme bar is superseded by later ones; a bad bar (h < l) counts for nothing.
    bad = bar(OPEN_MS + 3000, 5.0, 50.0)
    tracker.add(
        [bar(before_open, 9.0, 8.0), bar(OPEN_MS, 12.0, 10.0), bar(OPEN_MS + 1000, 11.0, 10.5), bad]
    )
    [(symbol, figures)] = expected_ranges(tracker.finals()).items()
    assert symbol == "X"
    assert figures == {
        "pre_market_high": 9.0,
        "pre_market_low": 8.0,
        "regular_high": 12.0,
        "regular_low": 10.0,
        "after_hours_high": None,
        "after_hours_low": None,
        "day_high": 12.0,
        "day_low": 8.0,
    }


def test_check_ranges_wants_every_figure_equal_and_no_stray_document() -> None:
    want = {"X": dict.fromkeys(RANGE_FIELDS, None) | {"regular_high": 12.0, "regular_low": 10.0}}
    want["X"] |= {"day_high": 12.0, "day_low": 10.0}
    document: dict[str, object] = {"symbol": "X", "trading_day": "2026-03-04", **want["X"]}
    day = "2026-03-04"
    assert check_ranges(want, {"X": document}, trading_day=day).ok
    narrower = {**document, "regular_high": 11.0, "day_high": 11.0}
    verdict = check_ranges(want, {"X": narrower}, trading_day=day)
    assert (verdict.ok, verdict.wrong_score) == (False, ("X",))
    # Stale drops can hide an extreme (narrower), never invent one (wider).
    assert check_ranges(want, {"X": narrower}, trading_day=day, explainable={"X"}).ok
    wider = {**document, "regular_low": 9.0, "day_low": 9.0}
    assert not check_ranges(want, {"X": wider}, trading_day=day, explainable={"X"}).ok
    assert check_ranges(want, {}, trading_day=day).missing == ("X",)
    assert check_ranges(
        want, {"X": {**document, "trading_day": "2026-03-03"}}, trading_day=day
    ).missing == ("X",)
    stray = {"X": document, "Y": {**document, "symbol": "Y"}}
    assert check_ranges(want, stray, trading_day=day).unexpected == ("Y",)
    # The price: the latest bar's close, when the check is given one.
    priced = {**document, "price": 11.5}
    assert check_ranges(want, {"X": priced}, trading_day=day, prices={"X": 11.5}).ok
    verdict = check_ranges(want, {"X": priced}, trading_day=day, prices={"X": 11.25})
    assert (verdict.ok, verdict.wrong_score) == (False, ("X",))
    assert not check_ranges(want, {"X": document}, trading_day=day, prices={"X": 11.5}).ok
    # A stale drop may have hidden the latest bar.
    assert check_ranges(
        want, {"X": priced}, trading_day=day, prices={"X": 11.25}, explainable={"X"}
    ).ok


def test_the_expected_price_is_the_close_of_the_latest_good_bar() -> None:
    def bar(start: int, close: float, av: int, high: float | None = None) -> dict[str, object]:
        top = close if high is None else high
        return {"ev": "A", "sym": "X", "v": 1, "av": av, "o": close, "c": close, "h": top} | {
            "l": close,
            "s": start,
            "e": start + 1000,
        }

    tracker = BoardTracker(open_ms=OPEN_MS)
    minute = {**bar(OPEN_MS, 10.5, 30), "ev": "AM", "e": OPEN_MS + 60_000}
    tracker.add(
        [
            bar(OPEN_MS + 58_000, 10.0, 10),
            bar(OPEN_MS + 59_000, 10.25, 20),  # ends with the minute bar, lower av
            minute,  # the latest: same end, the greatest accumulated volume
            bar(OPEN_MS + 59_500, 99.0, 40, high=1.0),  # bad (h < l): counts for nothing
        ]
    )
    assert expected_prices(tracker.finals()) == {"X": 10.5}


def test_a_missing_range_is_excused_only_for_a_symbol_the_drops_hid_entirely() -> None:
    want = {"X": dict.fromkeys(RANGE_FIELDS, 1.0)}
    assert not check_ranges(want, {}, trading_day="2026-03-04", explainable={"X"}).ok
    hidden = check_ranges(want, {}, trading_day="2026-03-04", explainable={"X"}, hidden={"X"})
    assert (hidden.ok, hidden.explained) == (True, 1)


def test_a_symbol_moved_up_by_an_excused_one_is_excused_too_but_only_that_far() -> None:
    expected = [("A", 40.0), ("B", 30.0), ("C", 20.0), ("D", 10.0)]
    # B's row is behind (a stale drop): it fell off, C moved up into its place.
    actual = [("A", 40.0), ("C", 20.0)]
    assert not check_board("b", expected, actual, size=2).ok
    moved = check_board("b", expected, actual, size=2, explainable={"B"})
    assert (moved.ok, moved.explained) == (True, 2)
    # D is two places below the cut: one excused symbol cannot bring it up.
    assert not check_board("b", expected, [("A", 40.0), ("D", 10.0)], size=2, explainable={"B"}).ok
    # A wrong score is never excused by displacement.
    assert not check_board("b", expected, [("A", 40.0), ("C", 21.0)], size=2, explainable={"B"}).ok
