"""Session figures on leaderboard rows: every bar folded, bad bars refused, exact ranking.

The independent recomputations here use only the bars themselves (no analyzer code).
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import published
from mdp_cache.keys import FEED_SCANNER_TOP_GAINERS, FEED_SCANNER_TOP_GAPPERS, KEY_LB_ROWS
from mdp_cache.ops import PutMerged
from mdp_cache.records import DailyBar, ReferenceData
from mdp_core.events import SecondAggregate
from mdp_testing.conformance import aggregate, at_ms

DAY = date(2026, 3, 4)  # a Wednesday
ROWS = KEY_LB_ROWS.name(day=DAY.isoformat())


def flush(analyzer: LeaderboardAnalyzer, state: MemoryState, now_ms: int) -> int:
    """One processor flush; the number of state operations written."""
    output = analyzer.collect(now_ms * 1_000_000)
    state.apply_now(output.state)
    analyzer.refused(state.applied.refused)
    return len(output.state)


def drain(replicas: list[LeaderboardAnalyzer], state: MemoryState, now_ms: int) -> None:
    for _ in range(10):
        if not sum(flush(replica, state, now_ms) for replica in replicas):
            return
    raise AssertionError("the replicas did not settle")


def row(state: MemoryState, symbol: str) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(state.rows[ROWS][symbol])
    return decoded


def bar(start_ms: int, *, low: float, high: float, open_: float | None = None) -> SecondAggregate:
    return SecondAggregate(
        symbol="AAA", volume=100, accumulated_volume=start_ms % 10_000_000, vwap=low,
        open=low if open_ is None else open_, high=high, low=low, close=high,
        start_ms=start_ms, end_ms=start_ms + 1_000,
    )  # fmt: skip


def test_every_bar_of_a_flush_reaches_the_session_figures() -> None:
    analyzer, state = LeaderboardAnalyzer(), MemoryState()
    analyzer.apply(
        [
            bar(at_ms(DAY, 9, 0), low=9.0, high=9.5),
            bar(at_ms(DAY, 9, 10), low=8.5, high=11.0),  # the pre-market extremes
            bar(at_ms(DAY, 9, 20), low=9.9, high=10.0),  # the latest bar: neither
            bar(at_ms(DAY, 9, 30), low=10.1, high=10.2),  # 09:30:00 starts the regular session
        ],
        0,
    )
    flush(analyzer, state, at_ms(DAY, 9, 31))
    got = row(state, "AAA")
    assert got["pre_market"] == {
        "first_ms": at_ms(DAY, 9, 0, 1), "high": 11.0, "high_ms": at_ms(DAY, 9, 10, 1),
        "low": 8.5, "low_ms": at_ms(DAY, 9, 10, 1),
    }  # fmt: skip
    assert got["regular"] == {
        "first_ms": at_ms(DAY, 9, 30, 1), "high": 10.2, "high_ms": at_ms(DAY, 9, 30, 1),
        "low": 10.1, "low_ms": at_ms(DAY, 9, 30, 1),
    }  # fmt: skip
    assert got["after_hours"] is None
    assert (got["day_high"], got["day_low"]) == (11.0, 8.5)
    # The bar's own range stays the latest bar's.
    assert (got["high"], got["low"]) == (10.2, 10.1)


def test_a_bar_belongs_to_the_session_it_starts_in() -> None:
    analyzer, state = LeaderboardAnalyzer(), MemoryState()
    analyzer.apply(
        [
            bar(at_ms(DAY, 9, 29, 59), low=5.0, high=5.0),  # ends 09:30:00: still pre-market
            bar(at_ms(DAY, 15, 59, 59), low=6.0, high=6.0),  # the last regular second
            bar(at_ms(DAY, 16, 0), low=7.0, high=7.0),  # after-hours
            bar(at_ms(DAY, 19, 59, 59), low=8.0, high=8.0),  # the last after-hours second
        ],
        0,
    )
    flush(analyzer, state, at_ms(DAY, 20, 0))
    got = row(state, "AAA")
    assert got["pre_market"]["high"] == 5.0
    assert got["regular"]["high"] == got["regular"]["low"] == 6.0
    assert (got["after_hours"]["low"], got["after_hours"]["high"]) == (7.0, 8.0)


def test_ties_keep_the_earliest_bar_that_reached_the_extreme() -> None:
    analyzer, state = LeaderboardAnalyzer(), MemoryState()
    late, early = at_ms(DAY, 10, 5), at_ms(DAY, 10, 1)
    analyzer.apply([bar(late, low=9.0, high=10.0), bar(early, low=9.0, high=10.0)], 0)
    flush(analyzer, state, at_ms(DAY, 10, 6))
    regular = row(state, "AAA")["regular"]
    # Times are bar ends (one-second bars here).
    ends = (early + 1_000,) * 3
    assert (regular["high_ms"], regular["low_ms"], regular["first_ms"]) == ends


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"high": 9.0, "low": 10.0}, "high_below_low"),
        ({"high": 10.0, "low": 0.0}, "non_positive_price"),
        ({"high": 10.0, "low": 9.0, "close": 10.5}, "price_outside_bar"),
        ({"high": 10.0, "low": 9.0, "open": 8.0}, "price_outside_bar"),
    ],
)
def test_bars_that_cannot_be_right_are_counted_and_never_folded(
    fields: dict[str, float], reason: str
) -> None:
    analyzer, state = LeaderboardAnalyzer(), MemoryState()
    good = bar(at_ms(DAY, 10, 0), low=9.5, high=9.6)
    values = {"open": 9.5, "close": 9.5, **fields}
    bad = msgspec.structs.replace(
        bar(at_ms(DAY, 10, 1), low=9.5, high=9.6), **values
    )  # a later bar that would win as the latest
    analyzer.apply([good, bad], 0)
    flush(analyzer, state, at_ms(DAY, 10, 2))
    assert analyzer.take_rejected() == {reason: 1}
    assert analyzer.take_rejected() == {}  # taken once
    got = row(state, "AAA")
    assert got["end_ms"] == good.end_ms
    assert (got["regular"]["high"], got["regular"]["low"]) == (9.6, 9.5)


def test_a_bar_of_a_finished_day_is_counted_as_stale() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([aggregate("AAA", at_ms(date(2026, 3, 5), 10, 0))], 0)
    analyzer.apply([aggregate("BBB", at_ms(DAY, 15, 0))], 0)
    assert analyzer.take_rejected() == {"stale_day": 1}


def test_boards_rank_by_the_exact_change_not_the_rounded_one() -> None:
    analyzer, state = LeaderboardAnalyzer(), MemoryState()
    # +0.257271 % and +0.257308 %: both show 0.2573, the second is the greater gap.
    prev = {"LOW": 100.0, "HIGH": 100.0}
    analyzer.apply(
        [
            aggregate("LOW", at_ms(DAY, 10, 0), close=100.257271),
            aggregate("HIGH", at_ms(DAY, 10, 0), close=100.257308),
        ],
        0,
    )
    for symbol, day in analyzer.wanted_reference():
        previous = DailyBar(
            day=date(2026, 3, 3), open=1, high=1, low=1, close=prev[symbol], volume=1
        )
        analyzer.provide_reference(ReferenceData(symbol=symbol, trading_day=day, prev_day=previous))
    flush(analyzer, state, at_ms(DAY, 10, 1))
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    answers = [state.top_now(read) for read in analyzer.reads(now_ns)]
    boards = {w.name: msgspec.json.decode(w.payload) for w in analyzer.compose(now_ns, answers)}
    rows = boards[FEED_SCANNER_TOP_GAPPERS.name()]["rows"]
    assert [(r["symbol"], r["pct_change"]) for r in rows] == [("HIGH", 0.2573), ("LOW", 0.2573)]


@st.composite
def regular_bars(draw: st.DrawFn) -> list[SecondAggregate]:
    starts = draw(st.lists(st.integers(0, 3 * 3600), min_size=1, max_size=12, unique=True))
    out = []
    for offset in starts:
        low = draw(st.sampled_from([9.0, 9.5, 10.0]))
        high = low + draw(st.sampled_from([0.0, 0.25, 1.0]))
        out.append(bar(at_ms(DAY, 9, 30) + offset * 1_000, low=low, high=high))
    return out


@given(events=regular_bars(), replicas=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_replicas_agree_on_figures_and_the_gainers_open_in_any_order(
    events: list[SecondAggregate], replicas: int, seed: int
) -> None:
    rng = random.Random(seed)
    messages = [[event] for event in events] + [[rng.choice(events)] for _ in range(3)]
    rng.shuffle(messages)
    analyzers = [LeaderboardAnalyzer() for _ in range(replicas)]
    state = MemoryState()
    published_rows: list[dict[str, Any]] = []
    for message in messages:
        analyzer = rng.choice(analyzers)
        analyzer.apply(message, 0)
        if rng.random() < 0.5:
            flush(analyzer, state, at_ms(DAY, 13, 0))
            published_rows += [
                msgspec.json.decode(w.payload) for w in published(state.applied.accepted)
            ]
    drain(analyzers, state, at_ms(DAY, 13, 0))
    got = row(state, "AAA")
    first = min(events, key=lambda e: e.start_ms)
    latest = max(events, key=lambda e: e.end_ms)
    assert got["regular"]["high"] == max(e.high for e in events)
    assert got["regular"]["low"] == min(e.low for e in events)
    assert got["regular"]["first_ms"] == min(e.end_ms for e in events)
    assert got["end_ms"] == latest.end_ms
    # No official open on these bars: the gainers measure from the first regular bar's open.
    assert got["session_open"] == first.open
    # Whatever was published, in order, never went back in time.
    ends = [r["end_ms"] for r in published_rows]
    assert ends == sorted(ends) or not ends


def test_gainers_use_the_first_regular_bar_even_when_another_replica_saw_it() -> None:
    state = MemoryState()
    saw_open, saw_rest = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    saw_open.apply([bar(at_ms(DAY, 9, 30), low=10.0, high=10.0)], 0)
    saw_rest.apply([bar(at_ms(DAY, 10, 0), low=11.0, high=11.0, open_=11.0)], 0)
    for analyzer in (saw_rest, saw_open):
        flush(analyzer, state, at_ms(DAY, 10, 1))
    drain([saw_open, saw_rest], state, at_ms(DAY, 10, 1))
    got = row(state, "AAA")
    assert (got["session_open"], got["pct_change_since_open"]) == (10.0, 10.0)
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    answers = [state.top_now(read) for read in saw_rest.reads(now_ns)]
    boards = {w.name: msgspec.json.decode(w.payload) for w in saw_rest.compose(now_ns, answers)}
    assert [r["symbol"] for r in boards[FEED_SCANNER_TOP_GAINERS.name()]["rows"]] == ["AAA"]


def offers(analyzer: LeaderboardAnalyzer, now_ms: int) -> list[PutMerged]:
    ops = analyzer.collect(now_ms * 1_000_000).state
    assert all(isinstance(op, PutMerged) for op in ops)
    return [op for op in ops if isinstance(op, PutMerged)]


def test_each_offer_names_the_figures_mdc_holds_as_far_as_the_replica_knows() -> None:
    state = MemoryState()
    alone, other = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    alone.apply([bar(at_ms(DAY, 10, 0), low=10.0, high=11.0)], 0)
    (first,) = offers(alone, at_ms(DAY, 10, 1))
    assert first.base == ""  # nothing offered yet: unknown
    state.apply_now([first])
    alone.apply([bar(at_ms(DAY, 10, 1), low=10.5, high=12.0)], 0)
    (second,) = offers(alone, at_ms(DAY, 10, 2))
    assert second.base == first.figures  # what it offered last, which MDC now holds
    state.apply_now([second])
    # Another replica's extreme reaches MDC; this replica's next row is refused for it...
    other.apply([bar(at_ms(DAY, 10, 1), low=9.0, high=10.0)], 0)
    flush(other, state, at_ms(DAY, 10, 2))
    flush(alone, state, at_ms(DAY, 10, 2))
    alone.apply([bar(at_ms(DAY, 10, 2), low=10.6, high=10.9)], 0)
    (third,) = offers(alone, at_ms(DAY, 10, 3))
    assert third.base == second.figures
    state.apply_now([third])
    assert state.applied.refused
    alone.refused(state.applied.refused)
    # ...after which it does not know what MDC holds until its next offer lands.
    (fourth,) = offers(alone, at_ms(DAY, 10, 3))
    assert fourth.base == ""
    assert "9.0" in fourth.figures
