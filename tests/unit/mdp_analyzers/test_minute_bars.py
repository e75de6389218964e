"""Minute bars for the chart: seconds folded once, the vendor's minute bar wins, day numbers."""

from __future__ import annotations

from datetime import date

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.minute_bars import MinuteBook, trading_day_number
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_cache.keys import FEED_MINUTE_BARS
from mdp_core.events import SecondAggregate
from mdp_testing.conformance import aggregate, at_ms

DAY = date(2026, 12, 2)
MINUTE = at_ms(DAY, 9, 31)  # 09:31:00 ET, a minute start


def bars(book: MinuteBook) -> list[dict[str, float]]:
    return [msgspec.json.decode(w.payload) for w in book.take()]


def second(offset: int, close: float, volume: int = 100) -> SecondAggregate:
    event = aggregate("ZR", MINUTE + (offset + 1) * 1_000, close=close, volume=volume)
    assert isinstance(event, SecondAggregate)
    return event


def test_seconds_build_the_minute_in_progress() -> None:
    book = MinuteBook()
    for event in (second(0, 3.0), second(1, 3.2, 50), second(2, 2.9, 25)):
        book.fold(event)
    [bar] = bars(book)
    assert bar == {
        "t": MINUTE, "d": 20261202, "n": 2 * (MINUTE + 3_000),
        "o": 3.0, "h": 3.2, "l": 2.9, "c": 2.9, "v": 175.0,
    }  # fmt: skip
    assert book.take() == []  # nothing changed since


@given(st.permutations(list(range(6))), st.lists(st.integers(0, 5), max_size=6))
def test_order_and_duplicates_of_seconds_do_not_change_the_bar(
    order: list[int], again: list[int]
) -> None:
    book = MinuteBook()
    for offset in [*order, *again]:
        book.fold(second(offset, 3.0 + offset / 10, 10 + offset))
    [bar] = bars(book)
    assert (bar["o"], bar["c"], bar["h"], bar["l"]) == (3.0, 3.5, 3.5, 3.0)
    assert bar["v"] == sum(10 + k for k in range(6))
    assert bar["n"] == 2 * (MINUTE + 6_000)


def test_the_minute_bar_beats_every_bar_built_from_seconds() -> None:
    book = MinuteBook()
    book.fold(second(58, 3.0))
    built = bars(book)[0]
    book.fold(aggregate("ZR", MINUTE + 60_000, close=3.1, volume=900, minute=True))
    book.fold(second(59, 3.3))  # a late second of the same minute, after the minute bar
    [final] = bars(book)
    assert final["n"] == 2 * (MINUTE + 60_000) + 1 > built["n"]
    assert (final["c"], final["v"]) == (3.1, 900.0)


def test_a_second_of_a_minute_left_behind_is_ignored() -> None:
    book = MinuteBook()
    book.fold(second(61, 4.0))  # the next minute started
    bars(book)
    book.fold(second(5, 9.0))
    assert book.take() == []


def test_trading_day_numbers_are_new_york_dates() -> None:
    assert trading_day_number(at_ms(DAY, 4, 0)) == 20261202
    assert trading_day_number(at_ms(DAY, 19, 59)) == 20261202
    assert trading_day_number(at_ms(DAY, 23, 59)) == 20261202  # 04:59 UTC the next day


def test_the_router_writes_the_series() -> None:
    router = MassiveDataAnalyzer()
    router.apply([second(0, 3.0)], 0)
    writes = [w for w in router.collect(0).widgets if w.feed is FEED_MINUTE_BARS]
    assert [w.name for w in writes] == ["bars:ZR"]


def corrected(offset: int, close: float, volume: int, late_ms: int) -> SecondAggregate:
    """Second ``offset`` of the minute as sent ``late_ms`` after its end (a later version)."""
    start = MINUTE + offset * 1_000
    return SecondAggregate(
        symbol="ZR", volume=volume, accumulated_volume=1_000, official_open=None, vwap=close,
        open=close - 0.05, high=close + 0.1, low=close - 0.1, close=close,
        start_ms=start, end_ms=start + 1_000 + late_ms,
    )  # fmt: skip


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from([2.0, 3.0, 3.5]),
            st.integers(1, 50),
            st.sampled_from([0, 0, 200]),
            st.booleans(),
        ),
        min_size=1,
        max_size=14,
    )
)
def test_the_minute_in_progress_follows_every_second_and_correction(
    steps: list[tuple[int, float, int, int, bool]],
) -> None:
    """Taken after any second, the bar is that of the latest version of each second so far."""
    book = MinuteBook()
    held: dict[int, SecondAggregate] = {}  # start -> the version the bar must hold
    changed = False  # since the last take: an older version changes nothing
    for offset, close, volume, late_ms, take in steps:
        event = corrected(offset, close, volume, late_ms)
        book.fold(event)
        old = held.get(event.start_ms)
        if old is None or event.end_ms >= old.end_ms:
            held[event.start_ms] = event
            changed = True
        if not take:
            continue
        got = bars(book)
        if not changed:
            assert got == []
            continue
        changed = False
        seconds = sorted(held.values(), key=lambda e: e.start_ms)
        assert got == [
            {
                "t": MINUTE, "d": 20261202, "n": 2 * max(e.end_ms for e in seconds),
                "o": seconds[0].open, "h": max(e.high for e in seconds),
                "l": min(e.low for e in seconds), "c": seconds[-1].close,
                "v": sum(e.volume for e in seconds),
            }
        ]  # fmt: skip


def test_bars_the_leaderboard_drops_never_reach_the_chart() -> None:
    book = MinuteBook()
    book.fold(second(0, 3.0))
    end = MINUTE + 2_000
    for bad in (
        aggregate("ZR", end, close=3.0, high=2.0, low=4.0),  # a low above the high
        aggregate("ZR", end, close=0.0, high=3.0, low=0.0),  # a price of 0
        aggregate("ZR", end, close=3.5, open_=9.0, high=3.5, low=3.0),  # open outside the bar
        aggregate("ZR", end, close=9.0, open_=3.0, high=3.5, low=3.0),  # close outside it
        aggregate("ZR", end, close=3.0, high=2.0, low=4.0, minute=True),
    ):
        book.fold(bad)
    [bar] = bars(book)
    assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"]) == (3.0, 3.0, 3.0, 3.0, 100.0)
    assert book.rejected == {"high_below_low": 2, "non_positive_price": 1, "price_outside_bar": 2}
    # The boundaries are bars: low equal to high, open and close on the edges.
    book.fold(aggregate("ZR", end, close=3.5, open_=2.5, high=3.5, low=2.5))
    [bar] = bars(book)
    assert (bar["h"], bar["l"], bar["c"]) == (3.5, 2.5, 3.5)
    assert sum(book.rejected.values()) == 5
