"""Leaderboard edges: a flat symbol is no gapper, the later of two same-time bars wins, 09:30.

Pinned by mutation testing (issue 21).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
import pytest

from mdp_analyzers.board import Board, BoardStatus, bar_problem, build_row, compose_board
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState, RankedMember
from mdp_analyzers.typing import published
from mdp_cache.keys import FEED_QUOTE, FEED_SCANNER_TOP_GAINERS, FEED_SCANNER_TOP_GAPPERS
from mdp_cache.records import DailyBar, ReferenceData
from mdp_core.calendar import Session
from mdp_testing.conformance import aggregate, at_ms

DAY = date(2026, 3, 4)  # a Wednesday


def _reference(symbol: str, prev_close: float, avg_volume: float | None = 1_000.0) -> ReferenceData:
    bar = DailyBar(
        day=date(2026, 3, 3), open=prev_close, high=prev_close, low=prev_close, close=prev_close,
        volume=1,
    )  # fmt: skip
    return ReferenceData(
        symbol=symbol, trading_day=DAY, prev_day=bar, avg_volume=avg_volume, free_float=None
    )


@pytest.mark.parametrize(
    ("close", "prev_close", "gapper"),
    [(10.0, 10.0, False), (9.99, 10.0, False), (10.01, 10.0, True), (10.0, 0.0, False)],
)
def test_only_a_positive_gap_scores_as_a_gapper(
    close: float, prev_close: float, gapper: bool
) -> None:
    row, scores = build_row(
        aggregate("AAA", at_ms(DAY, 9, 0), close=close),
        DAY,
        reference=_reference("AAA", prev_close),
        session_open=None,
        halted=False,
    )
    assert (scores[1] is not None) is gapper
    assert scores[0] == 1_000.0  # volume lists every symbol
    if prev_close > 0:
        assert scores[1] is None or scores[1] == pytest.approx(
            (close - prev_close) / prev_close * 100
        )
        assert row.pct_change == round((close - prev_close) / prev_close * 100, 4)
        assert row.change == round(close - prev_close, 6)
    else:
        assert (row.change, row.pct_change) == (None, None)


@pytest.mark.parametrize(
    ("close", "session_open", "gainer"),
    [
        (10.0, 10.0, False),
        (9.0, 10.0, False),
        (10.5, 10.0, True),
        (10.0, 0.0, False),
        (10.0, None, False),
    ],
)
def test_only_a_positive_move_since_the_open_scores_as_a_gainer(
    close: float, session_open: float | None, gainer: bool
) -> None:
    row, scores = build_row(
        aggregate("AAA", at_ms(DAY, 10, 0), close=close),
        DAY,
        reference=None,
        session_open=session_open,
        halted=True,
    )
    assert (scores[2] is not None) is gainer
    assert scores[1] is None  # no reference: no gap
    assert row.halted
    if session_open:
        assert row.pct_change_since_open == round((close - session_open) / session_open * 100, 4)
        assert row.change_since_open == round(close - session_open, 6)
    else:
        assert (row.change_since_open, row.pct_change_since_open) == (None, None)


def test_relative_volume_needs_an_average() -> None:
    bar = aggregate("AAA", at_ms(DAY, 9, 0), accumulated_volume=1_500)
    with_avg, _ = build_row(
        bar, DAY, reference=_reference("AAA", 10.0), session_open=None, halted=False
    )
    assert with_avg.relative_volume == 1.5
    assert with_avg.avg_volume == 1_000.0
    assert with_avg.prev_close == 10.0
    no_avg, _ = build_row(
        bar, DAY, reference=_reference("AAA", 10.0, avg_volume=0.0), session_open=None, halted=False
    )
    assert no_avg.relative_volume is None


def test_a_board_that_is_not_live_has_no_rows_and_ranks_start_at_one() -> None:
    ranked = [RankedMember("A", 2.0, b'{"symbol":"A"}'), RankedMember("B", 1.0, b'{"symbol":"B"}')]
    live = msgspec.json.decode(
        compose_board(
            Board.TOP_GAPPERS, ranked, trading_day=DAY, session=Session.PRE_MARKET, as_of_ms=7
        )
    )
    assert [(r["rank"], r["symbol"]) for r in live["rows"]] == [(1, "A"), (2, "B")]
    assert (live["board"], live["status"], live["metric"], live["as_of_ms"]) == (
        "top_gappers", "live", "pct_change", 7,
    )  # fmt: skip
    closed = msgspec.json.decode(
        compose_board(
            Board.TOP_GAINERS, ranked, trading_day=DAY, session=Session.PRE_MARKET, as_of_ms=7,
            status=BoardStatus.PRE_OPEN,
        )
    )  # fmt: skip
    assert closed["rows"] == []
    assert closed["metric"] == "pct_change_since_open"


def _run(events: list[Any], now_ms: int) -> tuple[LeaderboardAnalyzer, MemoryState, dict[str, Any]]:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply(events, 0)
    for symbol, _ in analyzer.wanted_reference():
        analyzer.provide_reference(_reference(symbol, 10.0))
    output = analyzer.collect(now_ms * 1_000_000)
    state.apply_now(output.state)
    analyzer.refused(state.applied.refused)
    writes = [*output.widgets, *published(state.applied.accepted)]
    quotes = {w.name: msgspec.json.decode(w.payload) for w in writes if w.feed is FEED_QUOTE}
    return analyzer, state, quotes


def _boards(analyzer: LeaderboardAnalyzer, state: MemoryState, now_ms: int) -> dict[str, Any]:
    now_ns = now_ms * 1_000_000
    answers = [state.top_now(read) for read in analyzer.reads(now_ns)]
    return {w.name: msgspec.json.decode(w.payload) for w in analyzer.compose(now_ns, answers)}


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_of_two_bars_ending_together_the_one_with_more_volume_is_the_later(
    order: tuple[int, int],
) -> None:
    end = at_ms(DAY, 10, 0)
    bars = [
        aggregate("AAA", end, close=12.0, volume=9, accumulated_volume=1_000),
        aggregate("AAA", end, close=11.0, volume=8, accumulated_volume=1_001),
    ]
    _, _, quotes = _run([bars[i] for i in order], end)
    assert quotes[FEED_QUOTE.name(symbol="AAA")]["price"] == 11.0


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_same_time_and_volume_then_bar_volume_then_close_decide(order: tuple[int, int]) -> None:
    end = at_ms(DAY, 10, 0)
    by_volume = [
        aggregate("AAA", end, close=13.0, volume=5),
        aggregate("AAA", end, close=11.0, volume=6),
    ]
    _, _, quotes = _run([by_volume[i] for i in order], end)
    assert quotes[FEED_QUOTE.name(symbol="AAA")]["price"] == 11.0
    by_close = [aggregate("BBB", end, close=13.0), aggregate("BBB", end, close=14.0)]
    _, _, quotes = _run([by_close[i] for i in order], end)
    assert quotes[FEED_QUOTE.name(symbol="BBB")]["price"] == 14.0


def test_a_bar_ending_exactly_at_0930_measures_gainers_and_one_ending_before_does_not() -> None:
    at_open = aggregate("AAA", at_ms(DAY, 9, 30), close=12.0, official_open=10.0)
    before = aggregate("BBB", at_ms(DAY, 9, 29, 59.999), close=12.0, official_open=10.0)
    analyzer, state, quotes = _run([at_open, before], at_ms(DAY, 9, 30))
    assert quotes[FEED_QUOTE.name(symbol="AAA")]["session_open"] == 10.0
    assert quotes[FEED_QUOTE.name(symbol="BBB")]["session_open"] is None
    boards = _boards(analyzer, state, at_ms(DAY, 9, 30))
    gainers = boards[FEED_SCANNER_TOP_GAINERS.name()]
    assert gainers["status"] == "live"  # 09:30:00.000 is open
    assert [r["symbol"] for r in gainers["rows"]] == ["AAA"]
    early = _boards(analyzer, state, at_ms(DAY, 9, 29, 59.999))[FEED_SCANNER_TOP_GAINERS.name()]
    assert (early["status"], early["rows"]) == ("pre_open", [])
    assert {r["symbol"] for r in boards[FEED_SCANNER_TOP_GAPPERS.name()]["rows"]} == {"AAA", "BBB"}


def test_the_first_regular_bar_starts_at_0930_not_before() -> None:
    # The 09:29:59-09:30:00 bar is pre-market: its open is not the session open.
    pre = aggregate("AAA", at_ms(DAY, 9, 30), close=10.0, open_=9.0)
    first = aggregate("AAA", at_ms(DAY, 9, 30, 1), close=10.5, open_=10.0)
    later = aggregate("AAA", at_ms(DAY, 9, 31), close=11.0, open_=10.8)
    _, _, quotes = _run([later, pre, first], at_ms(DAY, 9, 31))
    assert quotes[FEED_QUOTE.name(symbol="AAA")]["session_open"] == 10.0


def test_a_row_carries_every_figure_of_its_inputs() -> None:
    from mdp_analyzers.board import SessionFigures

    bar = msgspec.structs.replace(
        aggregate("AAA", at_ms(DAY, 10, 0), close=1.23456789, accumulated_volume=1_234),
        day_vwap=1.2,
        average_size=33.0,
        official_open=0.5,
    )
    prev = DailyBar(
        day=date(2026, 3, 3), open=0.41, high=0.52, low=0.33, close=0.5, volume=77, vwap=0.44
    )
    reference = ReferenceData(
        symbol="AAA", trading_day=DAY, prev_day=prev, avg_volume=7.0, free_float=123_456
    )
    pre = SessionFigures(first_ms=1, high=1.1, high_ms=2, low=0.9, low_ms=3)
    regular = SessionFigures(first_ms=4, high=1.3, high_ms=5, low=1.0, low_ms=6)
    row, scores = build_row(
        bar,
        DAY,
        reference=reference,
        session_open=0.5,
        halted=False,
        news=True,
        sessions=(pre, regular, None),
    )
    assert (row.day_vwap, row.average_size, row.official_open) == (1.2, 33.0, 0.5)
    assert (row.prev_open, row.prev_high, row.prev_low, row.prev_close) == (0.41, 0.52, 0.33, 0.5)
    assert (row.prev_volume, row.prev_vwap, row.free_float) == (77, 0.44, 123_456)
    assert (row.news, row.pre_market, row.regular, row.after_hours) == (True, pre, regular, None)
    assert (row.day_high, row.day_low) == (1.3, 0.9)
    # A sub-dollar previous close and session open still give changes, rounded for display.
    assert (row.change, row.pct_change) == (0.734568, 146.9136)
    assert (row.change_since_open, row.pct_change_since_open) == (0.734568, 146.9136)
    assert row.relative_volume == 176.2857
    assert scores[1] == scores[2] == pytest.approx(146.913578)
    small_gain, small_scores = build_row(
        msgspec.structs.replace(bar, close=1.005),
        DAY,
        reference=None,
        session_open=1.0,
        halted=False,
    )
    assert small_scores[2] == pytest.approx(0.5)  # a gain under 1 % still ranks
    assert (small_gain.day_high, small_gain.day_low, small_gain.prev_close) == (None, None, None)


@pytest.mark.parametrize(
    ("ohlc", "problem"),
    [
        ((2.0, 2.0, 2.0, 2.0), None),  # a flat bar: low equal to high
        ((1.0, 3.0, 1.0, 3.0), None),  # open and close on the edges
        ((2.0, 3.0, 1.0, 2.5), None),
        ((2.0, 1.0, 3.0, 2.0), "high_below_low"),
        ((2.0, 2.0, 2.0000001, 2.0), "high_below_low"),
        ((0.0, 0.0, 0.0, 0.0), "non_positive_price"),
        ((1.0, 1.0, -1.0, 1.0), "non_positive_price"),
        ((0.9999, 3.0, 1.0, 2.0), "price_outside_bar"),
        ((3.0001, 3.0, 1.0, 2.0), "price_outside_bar"),
        ((2.0, 3.0, 1.0, 0.9999), "price_outside_bar"),
        ((2.0, 3.0, 1.0, 3.0001), "price_outside_bar"),
    ],
)
@pytest.mark.parametrize("minute", [False, True])
def test_bar_problem_names_what_is_wrong_with_a_bar(
    ohlc: tuple[float, float, float, float], problem: str | None, minute: bool
) -> None:
    open_, high, low, close = ohlc
    event = aggregate(
        "ACME", at_ms(DAY, 10, 0), close=close, open_=open_, high=high, low=low, minute=minute
    )
    assert bar_problem(event) == problem
