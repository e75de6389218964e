"""Leaderboard rules pinned at their edges: day and session boundaries, ties, offers, refusals.

Expected values come from the bars themselves or from a small reference fold written here,
never from analyzer code.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.board import BOARD_FEEDS, Board
from mdp_analyzers.halts import HALT_RECENCY_BITS
from mdp_analyzers.leaderboard import DEFAULT_BOARD_SIZE, LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_cache import lattice
from mdp_cache.keys import (
    FEED_QUOTE,
    FEED_SCANNER_TOP_GAINERS,
    KEY_LB_BOARD,
    KEY_LB_FIGURES,
    KEY_LB_ROWS,
    KEY_LB_VERSIONS,
)
from mdp_cache.ops import PutMerged, Refused
from mdp_cache.records import DailyBar, ReferenceData
from mdp_core.calendar import MarketCalendar
from mdp_core.events import SecondAggregate
from mdp_testing.conformance import aggregate, at_ms, luld, trade

DAY = date(2026, 3, 4)  # a Wednesday
NEXT = date(2026, 3, 5)
ROWS = KEY_LB_ROWS.name(day=DAY.isoformat())


def bar(
    start_ms: int,
    *,
    low: float = 10.0,
    high: float = 10.0,
    open_: float | None = None,
    symbol: str = "AAA",
    acc: int = 1_000,
    official_open: float | None = None,
) -> SecondAggregate:
    return SecondAggregate(
        symbol=symbol, volume=100, accumulated_volume=acc, vwap=low, official_open=official_open,
        open=low if open_ is None else open_, high=high, low=low, close=high,
        start_ms=start_ms, end_ms=start_ms + 1_000,
    )  # fmt: skip


def offers(analyzer: LeaderboardAnalyzer, now_ms: int) -> list[PutMerged]:
    ops = [op for op in analyzer.collect(now_ms * 1_000_000).state if isinstance(op, PutMerged)]
    return ops


def decoded(op: PutMerged) -> dict[str, Any]:
    got: dict[str, Any] = msgspec.json.decode(op.payload)
    return got


def test_defaults_and_counters_count_exactly() -> None:
    analyzer = LeaderboardAnalyzer()
    assert analyzer.board_size == DEFAULT_BOARD_SIZE == 100
    assert analyzer.compose_interval_ns == analyzer.sync_interval_ns == 1_000_000_000
    assert LeaderboardAnalyzer(compose_interval_seconds=0.25).sync_interval_ns == 250_000_000
    assert (analyzer.events, analyzer.ignored_events, analyzer.stale_events) == (0, 0, 0)
    assert (analyzer.hydrations, analyzer.rejected) == (0, {})
    assert analyzer.collect(at_ms(DAY, 10, 0) * 1_000_000).state == []
    analyzer.apply(
        [bar(at_ms(DAY, 10, 0)), trade("AAA", at_ms(DAY, 10, 0), 10.0, 5), bar(at_ms(DAY, 10, 1))],
        0,
    )
    assert (analyzer.events, analyzer.ignored_events, analyzer.stale_events) == (2, 1, 0)
    reads = analyzer.reads(at_ms(DAY, 10, 0) * 1_000_000)
    assert [r.limit for r in reads] == [100, 100, 100]
    assert {r.rows_key for r in reads} == {ROWS}
    assert [r.board_key for r in reads] == [
        KEY_LB_BOARD.name(day=DAY.isoformat(), board=b.value) for b in Board
    ]


def test_the_trading_day_starts_at_0400_et() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 10, 0), symbol="OLD")], 0)
    assert analyzer.wanted_reference() == [("OLD", DAY)]
    # A bar ending a millisecond before 04:00 of the next day is still today's.
    late = aggregate("LATE", at_ms(NEXT, 4, 0) - 1)
    analyzer.apply([late], 0)
    assert analyzer.wanted_reference() == [("LATE", DAY)]
    # One ending at 04:00:00 starts the next day: yesterday's symbols are forgotten.
    analyzer.apply([aggregate("NEW", at_ms(NEXT, 4, 0))], 0)
    assert analyzer.wanted_reference() == [("NEW", NEXT)]
    (op,) = offers(analyzer, at_ms(NEXT, 4, 1))
    assert (op.member, op.rows_key) == ("NEW", KEY_LB_ROWS.name(day=NEXT.isoformat()))
    # A bar of the finished day is now stale, at the boundary too.
    analyzer.apply([aggregate("LATE", at_ms(NEXT, 4, 0) - 1)], 0)
    assert (analyzer.stale_events, analyzer.take_rejected()) == (1, {"stale_day": 1})
    assert offers(analyzer, at_ms(NEXT, 4, 2)) == []


def test_collect_rolls_the_day_only_once_it_is_over() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 10, 0))], 0)
    (first,) = offers(analyzer, at_ms(NEXT, 4, 0) - 1)  # still today: no roll
    analyzer.apply([bar(at_ms(DAY, 10, 1), high=11.0)], 0)
    (second,) = offers(analyzer, at_ms(NEXT, 4, 0))  # the last rows of the day, then the roll
    assert second.base == first.figures
    assert second.rows_key == ROWS
    analyzer.apply([bar(at_ms(DAY, 10, 2))], 0)
    assert analyzer.stale_events == 1
    assert offers(analyzer, at_ms(NEXT, 4, 1)) == []


@pytest.mark.parametrize(
    ("hour", "minute", "second", "session"),
    [
        (3, 59, 59.0, None),
        (4, 0, 0.0, "pre_market"),
        (9, 29, 59.0, "pre_market"),
        (9, 30, 0.0, "regular"),
        (15, 59, 59.0, "regular"),
        (16, 0, 0.0, "after_hours"),
        (19, 59, 59.0, "after_hours"),
        (20, 0, 0.0, None),
    ],
)
def test_a_bar_belongs_to_the_session_it_starts_in(
    hour: int, minute: int, second: float, session: str | None
) -> None:
    analyzer = LeaderboardAnalyzer()
    start = at_ms(DAY, hour, minute, second)
    analyzer.apply([bar(at_ms(DAY, 12, 0), low=50.0, high=50.0)], 0)  # fixes the day
    analyzer.apply([bar(start, low=7.0, high=8.0)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 21, 0))
    got = decoded(op)
    for name in ("pre_market", "after_hours"):
        figures = got[name]
        if name == session:
            expected = (7.0, 8.0, start + 1000)
            assert (figures["low"], figures["high"], figures["first_ms"]) == expected
        else:
            assert figures is None
    if session == "regular":
        assert (got["regular"]["low"], got["regular"]["high"]) == (7.0, 50.0)
    else:
        assert (got["regular"]["low"], got["regular"]["high"]) == (50.0, 50.0)


Figures = tuple[int, float, int, float, int]


def reference_fold(bars: list[tuple[int, float, float]]) -> Figures:
    """first end, high, earliest end at the high, low, earliest end at the low."""
    high = max(h for _, _, h in bars)
    low = min(lo for _, lo, _ in bars)
    return (
        min(e for e, _, _ in bars),
        high,
        min(e for e, _, h in bars if h == high),
        low,
        min(e for e, lo, _ in bars if lo == low),
    )


@st.composite
def session_bars(draw: st.DrawFn) -> list[SecondAggregate]:
    offsets = draw(st.lists(st.integers(0, 40), min_size=1, max_size=8))
    out = []
    for offset in offsets:
        low = draw(st.sampled_from([9.0, 9.5, 10.0]))
        high = low + draw(st.sampled_from([0.0, 0.5]))
        open_ = draw(st.sampled_from([low, high]))
        out.append(bar(at_ms(DAY, 9, 30) + offset * 1_000, low=low, high=high, open_=open_))
    return out


@given(events=session_bars(), split=st.integers(0, 8), reverse=st.booleans())
def test_figures_and_session_open_match_a_reference_fold_across_replicas(
    events: list[SecondAggregate], split: int, reverse: bool
) -> None:
    ordered = list(reversed(events)) if reverse else events
    one, two = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    one.apply(ordered[:split], 0)
    two.apply(ordered[split:], 0)
    state = MemoryState()
    now = at_ms(DAY, 11, 0)
    for _ in range(6):
        for analyzer in (one, two):
            output = analyzer.collect(now * 1_000_000)
            state.apply_now(output.state)
            analyzer.refused(state.applied.refused)
    got: dict[str, Any] = msgspec.json.decode(state.rows[ROWS]["AAA"])
    regular = got["regular"]
    expected = reference_fold([(e.end_ms, e.low, e.high) for e in events])
    assert (
        regular["first_ms"], regular["high"], regular["high_ms"], regular["low"], regular["low_ms"]
    ) == expected  # fmt: skip
    first_start = min(e.start_ms for e in events)
    assert got["session_open"] == min(e.open for e in events if e.start_ms == first_start)
    latest = max(events, key=lambda e: (e.end_ms, e.accumulated_volume, e.volume, e.close))
    assert got["end_ms"] == latest.end_ms


def test_the_first_regular_open_ties_to_the_lower_price_and_earlier_start_wins() -> None:
    analyzer = LeaderboardAnalyzer()
    start = at_ms(DAY, 9, 30)
    analyzer.apply(
        [
            bar(start + 1_000, low=5.0, high=12.0, open_=5.0),
            bar(start, low=9.0, high=12.0, open_=11.0),
            bar(start, low=9.0, high=12.0, open_=10.0),
            bar(start, low=9.0, high=12.0, open_=10.5),
        ],
        0,
    )
    (op,) = offers(analyzer, at_ms(DAY, 9, 40))
    assert decoded(op)["session_open"] == 10.0


@pytest.mark.parametrize(
    ("end", "official", "expected"),
    [
        ((9, 29, 59.999), 12.0, None),
        ((9, 30, 0.0), 12.0, 12.0),
        ((9, 30, 0.0), None, None),
        ((9, 30, 1.0), 0.0, 10.0),
        ((9, 30, 1.0), None, 10.0),
    ],
)
def test_the_session_open_counts_from_the_bar_ending_at_0930(
    end: tuple[int, int, float], official: float | None, expected: float | None
) -> None:
    analyzer = LeaderboardAnalyzer()
    end_ms = at_ms(DAY, *end)
    start_ms = end_ms - 1_000
    analyzer.apply([bar(start_ms, low=10.0, high=10.0, official_open=official)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 9, 31))
    got = decoded(op)
    assert (got["end_ms"], got["session_open"]) == (end_ms, expected)


def test_at_equal_bar_ends_the_larger_running_totals_win() -> None:
    analyzer = LeaderboardAnalyzer()
    start = at_ms(DAY, 10, 0)
    analyzer.apply([bar(start, acc=2_000), bar(start, acc=1_000, high=10.5)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 10, 1))
    assert decoded(op)["accumulated_volume"] == 2_000
    analyzer.apply([bar(start, acc=3_000, high=10.5)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 10, 1))
    assert decoded(op)["accumulated_volume"] == 3_000
    analyzer.apply([bar(start, acc=3_000, high=10.5)], 0)  # a duplicate changes nothing
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []


def test_an_offer_carries_the_day_keys_version_and_quote_name() -> None:
    analyzer = LeaderboardAnalyzer()
    event = bar(at_ms(DAY, 10, 0))
    analyzer.apply([event], 0)
    reference = ReferenceData(symbol="AAA", trading_day=DAY, avg_volume=10.0)
    analyzer.provide_reference(reference)
    (op,) = offers(analyzer, at_ms(DAY, 10, 1))
    day = DAY.isoformat()
    assert op.rows_key == ROWS
    assert op.versions_key == KEY_LB_VERSIONS.name(day=day)
    assert op.figures_key == KEY_LB_FIGURES.name(day=day)
    assert op.score_keys == tuple(KEY_LB_BOARD.name(day=day, board=b.value) for b in Board)
    assert op.ttl == KEY_LB_ROWS.ttl
    assert op.publish == FEED_QUOTE.name(symbol="AAA")
    assert op.epoch == DAY.toordinal()
    assert op.member == "AAA"
    assert op.version == (event.end_ms << (HALT_RECENCY_BITS + 3)) + reference.completeness
    assert reference.completeness > 0
    start, end = event.start_ms, event.end_ms
    assert op.figures == f"op-{start}@10.0,rf+2@0,rgf-{end}@0,rgh+10.0@{end},rgl-10.0@{end}"
    assert lattice.render(lattice.parse(op.figures)) == op.figures  # canonical order


def test_reference_arrival_re_emits_only_what_changes_the_row() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 10, 0))], 0)
    assert len(offers(analyzer, at_ms(DAY, 10, 1))) == 1
    prev = DailyBar(day=date(2026, 3, 3), open=1, high=1, low=1, close=8.0, volume=1)
    analyzer.provide_reference(ReferenceData(symbol="AAA", trading_day=NEXT, prev_day=prev))
    analyzer.provide_reference(ReferenceData(symbol="ZZZ", trading_day=DAY, prev_day=prev))
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []
    analyzer.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY, prev_day=prev))
    (op,) = offers(analyzer, at_ms(DAY, 10, 1))
    assert decoded(op)["pct_change"] == 25.0
    analyzer.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY, prev_day=prev))
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []  # the same again: nothing new
    more = ReferenceData(symbol="AAA", trading_day=DAY, prev_day=prev, avg_volume=100.0)
    analyzer.provide_reference(more)
    (op,) = offers(analyzer, at_ms(DAY, 10, 1))  # not only a profile: re-emitted
    assert decoded(op)["avg_volume"] == 100.0
    analyzer.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY))  # failed: no loss
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []


def refusal(member: str, figures: str, payload: bytes | None, rows_key: str = ROWS) -> Refused:
    return Refused(rows_key=rows_key, member=member, figures=figures, payload=payload, version=1)


def test_refusals_hydrate_count_and_ignore_what_is_not_theirs() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.refused([refusal("AAA", "", None)])  # no day yet
    assert analyzer.hydrations == 0
    analyzer.apply([bar(at_ms(DAY, 10, 0), low=10.0, high=10.0)], 0)
    (mine,) = offers(analyzer, at_ms(DAY, 10, 1))
    other = LeaderboardAnalyzer()
    other.apply([bar(at_ms(DAY, 10, 5), low=8.0, high=12.0, acc=9_000)], 0)
    (theirs,) = offers(other, at_ms(DAY, 10, 6))
    analyzer.refused(
        [
            refusal("AAA", theirs.figures, theirs.payload, KEY_LB_ROWS.name(day="2026-03-03")),
            refusal("ZZZ", theirs.figures, theirs.payload),
        ]
    )
    assert analyzer.hydrations == 0
    assert offers(analyzer, at_ms(DAY, 10, 6)) == []
    analyzer.refused([refusal("AAA", "not lattice text", None)])
    assert (analyzer.hydrations, analyzer.take_rejected()) == (1, {"bad_snapshot": 1})
    analyzer.refused([refusal("AAA", mine.figures, None)])  # adds nothing: not re-sent
    assert analyzer.hydrations == 2
    assert offers(analyzer, at_ms(DAY, 10, 6)) == []
    analyzer.refused([refusal("AAA", theirs.figures, theirs.payload)])
    assert analyzer.hydrations == 3
    (again,) = offers(analyzer, at_ms(DAY, 10, 6))
    assert again.base == ""
    got = decoded(again)
    assert (got["end_ms"], got["accumulated_volume"]) == (at_ms(DAY, 10, 5, 1), 9_000)
    assert (got["regular"]["low"], got["regular"]["high"]) == (8.0, 12.0)
    assert got["regular"]["first_ms"] == at_ms(DAY, 10, 0, 1)
    # The adopted bar is the stored row's, field by field (not this replica's, nor empty).
    stored = decoded(theirs)
    for name in ("open", "high", "low", "vwap", "start_ms", "end_ms", "price"):
        assert got[name] == stored[name] != decoded(mine)[name], name
    # An older stored row is not adopted over the replica's own later bar.
    analyzer.apply([bar(at_ms(DAY, 11, 0), acc=10_000)], 0)
    offers(analyzer, at_ms(DAY, 11, 1))
    analyzer.refused([refusal("AAA", theirs.figures, theirs.payload)])
    assert offers(analyzer, at_ms(DAY, 11, 1)) == []


@pytest.mark.parametrize(
    ("now", "status"),
    [((9, 29, 59.999), "pre_open"), ((9, 30, 0.0), "live"), ((15, 0, 0.0), "live")],
)
def test_the_gainers_board_opens_at_0930_by_the_clock(
    now: tuple[int, int, float], status: str
) -> None:
    analyzer = LeaderboardAnalyzer()
    now_ms = at_ms(DAY, *now)
    writes = analyzer.compose(now_ms * 1_000_000, [[], [], []])
    assert len(writes) == 3
    for write in writes:
        payload = msgspec.json.decode(write.payload)
        assert write.version == payload["as_of_ms"] == now_ms
        assert payload["trading_day"] == DAY.isoformat()
        gainers = write.name == FEED_SCANNER_TOP_GAINERS.name()
        assert payload["status"] == (status if gainers else "live")
        assert payload["session"] == ("pre_market" if now < (9, 30, 0.0) else "regular")


def test_a_fresh_analyzer_takes_its_calendar_and_wants_nothing_yet() -> None:
    calendar = MarketCalendar()
    analyzer = LeaderboardAnalyzer(calendar)
    assert analyzer.calendar is calendar
    assert analyzer.wanted_reference() == []
    analyzer.apply([luld("AAA", at_ms(DAY, 10, 0), 17)], 0)  # a halt before any bar: no row
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []


def test_every_skipped_input_is_counted_and_the_rest_of_the_batch_goes_on() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(NEXT, 10, 0), symbol="NEW")], 0)
    late = bar(at_ms(DAY, 10, 0), symbol="OLD")
    other = trade("AAA", at_ms(NEXT, 10, 1), 10.0, 5)  # not an input of this analyzer
    bad = [
        bar(at_ms(NEXT, 10, 1), low=0.0, high=0.0),  # non-positive, not high below low
        bar(at_ms(NEXT, 10, 1), low=0.0, high=0.0),
        bar(at_ms(NEXT, 10, 1), low=10.0, high=9.0),
        bar(at_ms(NEXT, 10, 1), low=10.0, high=9.0),
        bar(at_ms(NEXT, 10, 1), low=9.0, high=10.0, open_=11.0),
        bar(at_ms(NEXT, 10, 1), low=9.0, high=10.0, open_=11.0),
    ]
    (offers_before,) = offers(analyzer, at_ms(NEXT, 10, 1))
    analyzer.apply([late, late, other, other, *bad, bar(at_ms(NEXT, 10, 2), symbol="GO")], 0)
    assert (analyzer.stale_events, analyzer.ignored_events) == (2, 2)
    assert analyzer.take_rejected() == {
        "stale_day": 2, "non_positive_price": 2, "high_below_low": 2, "price_outside_bar": 2
    }  # fmt: skip
    # The bad bars of NEW changed nothing; the good bar after them was folded.
    assert [op.member for op in offers(analyzer, at_ms(NEXT, 10, 3))] == ["GO"]
    assert offers_before.member == "NEW"


def test_an_older_bar_that_only_moves_a_figure_or_the_open_re_emits_the_row() -> None:
    analyzer = LeaderboardAnalyzer()
    start = at_ms(DAY, 9, 30)
    analyzer.apply([bar(start + 60_000, low=9.0, high=11.0, open_=10.0, acc=9_000)], 0)
    assert len(offers(analyzer, at_ms(DAY, 9, 32))) == 1
    # A pre-market bar, older than the latest: only the pre-market figures are new.
    analyzer.apply([bar(at_ms(DAY, 9, 0), low=9.5, high=9.6, acc=1)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 9, 32))
    assert decoded(op)["pre_market"]["high"] == 9.6
    # An earlier pre-market bar inside its range: only the session's first time moves.
    analyzer.apply([bar(at_ms(DAY, 8, 0), low=9.55, high=9.55, acc=1)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 9, 32))
    assert decoded(op)["pre_market"]["first_ms"] == at_ms(DAY, 8, 0, 1)
    # An earlier regular bar inside the range: only the session's first time (and open) move.
    analyzer.apply([bar(start, low=9.5, high=10.5, open_=10.0, acc=2)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 9, 32))
    assert decoded(op)["regular"]["first_ms"] == start + 1_000
    # The same start with a lower open and no new extreme: only the session open moves.
    analyzer.apply([bar(start, low=9.5, high=10.5, open_=9.7, acc=1)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 9, 32))
    assert decoded(op)["session_open"] == 9.7
    analyzer.apply([bar(start, low=9.5, high=10.5, open_=9.8, acc=1)], 0)
    assert offers(analyzer, at_ms(DAY, 9, 32)) == []


def test_a_row_without_reference_has_completeness_zero_in_its_version() -> None:
    analyzer = LeaderboardAnalyzer()
    event = bar(at_ms(DAY, 10, 0))
    analyzer.apply([event], 0)
    (op,) = offers(analyzer, at_ms(DAY, 10, 1))
    assert op.version == event.end_ms << (HALT_RECENCY_BITS + 3)


def test_a_small_positive_official_open_is_the_session_open() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 9, 30), low=10.0, high=10.0, official_open=0.5)], 0)
    (op,) = offers(analyzer, at_ms(DAY, 9, 31))
    assert decoded(op)["session_open"] == 0.5


def test_partial_figures_in_a_refusal_are_skipped_and_bad_ones_counted_each_time() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 10, 0), low=10.0, high=10.0)], 0)
    (mine,) = offers(analyzer, at_ms(DAY, 10, 1))
    t = at_ms(DAY, 9, 0)
    analyzer.refused(
        [
            refusal("AAA", f"pmf-{t}@0,pmh+20.0@{t}", None),  # no low
            refusal("AAA", f"pmh+20.0@{t},pml-1.0@{t}", None),  # no first
            refusal("AAA", "bad", None),
            refusal("AAA", "bad", None),
            refusal("AAA", mine.figures, mine.payload),  # adds nothing, not even the bar
        ]
    )
    assert analyzer.take_rejected() == {"bad_snapshot": 2}
    assert analyzer.hydrations == 5
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []


def test_a_later_stored_bar_is_adopted_with_every_field() -> None:
    analyzer, other = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 10, 0), low=10.0, high=10.0)], 0)
    (mine,) = offers(analyzer, at_ms(DAY, 10, 1))
    later = aggregate("AAA", at_ms(DAY, 10, 5), close=10.0, official_open=9.0)
    later = msgspec.structs.replace(later, day_vwap=9.9, average_size=42.0, accumulated_volume=77)
    other.apply([later], 0)
    (theirs,) = offers(other, at_ms(DAY, 10, 6))
    # Figures that add nothing: only the stored bar is news.
    analyzer.refused([refusal("ZZZ", "", None), refusal("AAA", mine.figures, theirs.payload)])
    (op,) = offers(analyzer, at_ms(DAY, 10, 6))
    got = decoded(op)
    assert (got["end_ms"], got["accumulated_volume"]) == (later.end_ms, 77)
    assert (got["official_open"], got["day_vwap"], got["average_size"]) == (9.0, 9.9, 42.0)


def test_halts_learned_from_other_replicas_rewrite_the_flagged_rows() -> None:
    state = MemoryState()
    told, other = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    for analyzer in (told, other):
        analyzer.apply([bar(at_ms(DAY, 10, 0)), bar(at_ms(DAY, 10, 0), symbol="BBB")], 0)
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    for analyzer in (told, other):
        state.apply_now(analyzer.collect(now_ns).state)
    told.apply([luld("AAA", at_ms(DAY, 10, 0, 0.5), 17)], 0)
    state.apply_now(told.collect(now_ns).state)
    other.sync(now_ns, [state.answer_now(r) for r in other.sync_reads(now_ns)])
    (op,) = offers(other, at_ms(DAY, 10, 1))
    assert (op.member, decoded(op)["halted"]) == ("AAA", True)


def test_compose_wants_one_answer_per_board_and_integer_times() -> None:
    analyzer = LeaderboardAnalyzer()
    now_ms = at_ms(DAY, 10, 0) + 7
    with pytest.raises(ValueError, match="zip"):
        analyzer.compose(now_ms * 1_000_000 + 1, [[], []])
    writes = analyzer.compose(now_ms * 1_000_000 + 1, [[], [], []])
    assert [w.feed for w in writes] == [BOARD_FEEDS[b] for b in Board]
    for write in writes:
        assert type(write.version) is int
        assert write.version == now_ms
        assert type(msgspec.json.decode(write.payload)["as_of_ms"]) is int


def test_weekend_bars_belong_to_fridays_trading_day() -> None:
    friday, saturday = date(2026, 3, 6), date(2026, 3, 7)
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(friday, 15, 0), symbol="FRI")], 0)
    # Saturday noon is outside Friday's 04:00-to-04:00 range yet still Friday's trading day:
    # neither a new day (Friday's symbols stay) nor stale.
    analyzer.apply([bar(at_ms(saturday, 12, 0), symbol="SAT")], 0)
    analyzer.apply([bar(at_ms(saturday, 12, 1), symbol="SAT")], 0)
    assert analyzer.stale_events == 0
    assert analyzer.wanted_reference() == [("FRI", friday), ("SAT", friday)]
    got = offers(analyzer, at_ms(saturday, 12, 2))
    assert sorted(op.member for op in got) == ["FRI", "SAT"]
    assert {op.rows_key for op in got} == {KEY_LB_ROWS.name(day=friday.isoformat())}


#: Session name and (start, end) in ET minutes of the day, as the lattice text names them.
SESSION_SPANS = (
    ("pm", 4 * 60, 9 * 60 + 30),
    ("rg", 9 * 60 + 30, 16 * 60),
    ("ah", 16 * 60, 20 * 60),
)


def expected_figures_text(events: list[SecondAggregate]) -> str:
    """The lattice text of ``events``' figures, written out here from the bars alone."""
    terms: list[str] = []
    for name, start, end in SESSION_SPANS:
        mine = [
            e for e in events
            if at_ms(DAY, start // 60, start % 60) <= e.start_ms < at_ms(DAY, end // 60, end % 60)
        ]  # fmt: skip
        if not mine:
            continue
        bars = [(e.end_ms, e.low, e.high) for e in mine]
        first, high, high_ms, low, low_ms = reference_fold(bars)
        terms += [f"{name}f-{first}@0", f"{name}h+{high!r}@{high_ms}", f"{name}l-{low!r}@{low_ms}"]
        if name == "rg":
            start_ms = min(e.start_ms for e in mine)
            opening = min(e.open for e in mine if e.start_ms == start_ms)
            terms.append(f"op-{start_ms}@{opening!r}")
    return ",".join(sorted(terms))


@st.composite
def day_bars(draw: st.DrawFn) -> list[SecondAggregate]:
    """Bars across the day's three sessions, some on the session boundaries."""
    starts = [
        at_ms(DAY, 4, 0), at_ms(DAY, 9, 29, 59), at_ms(DAY, 9, 30), at_ms(DAY, 12, 0),
        at_ms(DAY, 15, 59, 59), at_ms(DAY, 16, 0), at_ms(DAY, 19, 59, 59),
    ]  # fmt: skip
    out = []
    for _ in range(draw(st.integers(1, 10))):
        start = draw(st.sampled_from(starts)) + draw(st.integers(0, 3)) * 1_000
        low = draw(st.sampled_from([9.0, 9.25, 10.0, 0.1 + 0.2]))
        high = low + draw(st.sampled_from([0.0, 0.5, 1 / 3]))
        out.append(bar(start, low=low, high=high, open_=draw(st.sampled_from([low, high]))))
    return out


@given(events=day_bars(), split=st.integers(0, 10))
def test_every_offer_carries_the_figures_of_every_bar_so_far(
    events: list[SecondAggregate], split: int
) -> None:
    """The offered figures text follows each bar and each refusal: never a stale rendering."""
    mine, theirs = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    now = at_ms(DAY, 20, 0)
    theirs.apply(events[split:], 0)
    their_offers = offers(theirs, now)
    last = ""
    for n, event in enumerate(events[:split], start=1):
        mine.apply([event], 0)
        expected = expected_figures_text(events[:n])
        got = offers(mine, now)
        if got:
            assert got[0].figures == expected
            last = expected
        else:  # the bar moved nothing (a repeat): no offer, and nothing to render
            assert expected == last
    if their_offers and split:
        mine.refused([refusal("AAA", their_offers[0].figures, their_offers[0].payload)])
        expected = expected_figures_text(events)
        got = offers(mine, now)
        assert [op.figures for op in got] == [expected] * len(got)
        assert got or expected == last  # new figures are offered (an adopted bar may be too)
        for op in got:
            row = decoded(op)
            for name, key in (("pm", "pre_market"), ("rg", "regular"), ("ah", "after_hours")):
                assert (row[key] is not None) == (f"{name}f-" in expected)


def version_of(analyzer: LeaderboardAnalyzer, now_ms: int) -> int:
    (op,) = offers(analyzer, now_ms)
    return op.version


@pytest.mark.parametrize("quiet_seconds", [0, 1, 126, 127, 128, 3_600])
def test_a_resume_outranks_its_halt_however_long_since_the_last_bar(quiet_seconds: int) -> None:
    """A clamped offset from the bar made a halt and its resume equal past 127 s."""
    analyzer = LeaderboardAnalyzer()
    end = at_ms(DAY, 11, 0)
    analyzer.apply([bar(end)], 0)
    plain = version_of(analyzer, end)
    halt_at = end + quiet_seconds * 1_000
    analyzer.apply([luld("AAA", halt_at, 17)], 0)
    halted = version_of(analyzer, halt_at)
    analyzer.apply([luld("AAA", halt_at + 300_000, 18)], 0)
    resumed = version_of(analyzer, halt_at + 300_000)
    assert plain < halted < resumed
    # The next bar after the resume outranks it; a late bar from before the news does not,
    # but outranks the resume's row of an older bar.
    late = LeaderboardAnalyzer()
    late.apply([bar(end), luld("AAA", halt_at, 17), luld("AAA", halt_at + 300_000, 18)], 0)
    late.apply([bar(halt_at + 299_000)], 0)
    assert resumed < version_of(late, halt_at + 300_000) < (halt_at + 300_001) << 11
    analyzer.apply([bar(halt_at + 301_000)], 0)
    assert version_of(analyzer, halt_at + 301_000) > resumed


def test_the_version_packs_time_order_and_completeness_below_2_53() -> None:
    analyzer = LeaderboardAnalyzer()
    start = at_ms(DAY, 11, 0)
    end = start + 1_000  # a second bar's end
    analyzer.apply([bar(start), luld("AAA", end - 5_000, 17)], 0)  # news before the bar
    assert version_of(analyzer, end) == ((end << HALT_RECENCY_BITS) + 123) << 3
    analyzer.apply([luld("AAA", end, 18)], 0)  # news at the bar's end: the bar's own time
    assert version_of(analyzer, end) == ((end << HALT_RECENCY_BITS) + 255) << 3
    later = end + 130_000  # news 130 s after the bar: its time, and the farthest bar's order
    analyzer.apply([luld("AAA", later, 17)], 0)
    assert version_of(analyzer, later) == ((later << HALT_RECENCY_BITS) + 129) << 3
    analyzer.apply([luld("AAA", end + 2_000, 18)], 0)  # 2 s after it: older news, no row
    assert offers(analyzer, later) == []
    far = at_ms(date(2109, 1, 1), 11, 0)
    assert (((far << HALT_RECENCY_BITS) + 255) << 3) + 7 < 2**53


@pytest.mark.parametrize(
    ("news_after_bar_ms", "order"),
    [
        (-200_000, 1),
        (-127_000, 1),
        (-126_000, 2),
        (-1_001, 126),
        (-1_000, 127),
        (-1, 127),
        (0, 255),
        (999, 255),
        (1_000, 254),
        (100_000, 155),
        (125_000, 130),
        (126_000, 129),
        (3_600_000, 129),
    ],
)
def test_the_order_among_equal_times_at_its_boundaries(news_after_bar_ms: int, order: int) -> None:
    analyzer = LeaderboardAnalyzer()
    start = at_ms(DAY, 11, 0)
    end = start + 1_000
    analyzer.apply([bar(start), luld("AAA", end + news_after_bar_ms, 17)], 0)
    time_ms = max(end, end + news_after_bar_ms)
    assert version_of(analyzer, time_ms) == ((time_ms << HALT_RECENCY_BITS) + order) << 3


def test_the_reference_completeness_figure_re_sends_only_what_it_changes() -> None:
    """``rf`` in MDC's figures: greater than what a replica knows, its row goes again with the
    join (even with no stored row to take the parts from); not greater, nothing is re-sent."""
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([bar(at_ms(DAY, 10, 0))], 0)
    analyzer.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY, free_float=5))
    (mine,) = offers(analyzer, at_ms(DAY, 10, 1))
    assert "rf+1@0" in mine.figures
    analyzer.refused([refusal("AAA", mine.figures, None)])  # the same completeness
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []
    more = lattice.join(mine.figures, "rf+6@0")
    analyzer.refused([refusal("AAA", more, None)])  # another's row knew more; none stored
    (again,) = offers(analyzer, at_ms(DAY, 10, 1))
    assert again.figures == more
    analyzer.refused([refusal("AAA", more, None)])  # now known: nothing new
    assert offers(analyzer, at_ms(DAY, 10, 1)) == []
    bare = LeaderboardAnalyzer()  # no reference at all: the least completeness counts
    bare.apply([bar(at_ms(DAY, 10, 0))], 0)
    (first,) = offers(bare, at_ms(DAY, 10, 1))
    assert "rf" not in first.figures
    bare.refused([refusal("AAA", lattice.join(first.figures, "rf+1@0"), None)])
    (second,) = offers(bare, at_ms(DAY, 10, 1))
    assert "rf+1@0" in second.figures
