from __future__ import annotations

import random
from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.board import Board
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.typing import published
from mdp_cache.keys import (
    FEED_QUOTE,
    FEED_SCANNER_TOP_GAINERS,
    FEED_SCANNER_TOP_GAPPERS,
    FEED_SCANNER_TOP_VOLUME,
    KEY_LB_ROWS,
)
from mdp_cache.records import DailyBar, ReferenceData
from mdp_cache.volume_profile import SLOTS, VolumeProfile
from mdp_core.events import MinuteAggregate, SecondAggregate
from mdp_testing.conformance import aggregate, at_ms, luld

Aggregate = SecondAggregate | MinuteAggregate

DAY = date(2026, 3, 4)  # a Wednesday
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
PREV_CLOSE = {"AAA": 10.0, "BBB": 20.0, "CCC": 5.0, "DDD": 8.0}  # EEE: no reference at all
OPEN_MS = at_ms(DAY, 9, 30)


def reference(symbol: str, day: date = DAY) -> ReferenceData:
    prev = PREV_CLOSE.get(symbol)
    bar = None
    if prev is not None:
        bar = DailyBar(day=date(2026, 3, 3), open=prev, high=prev, low=prev, close=prev, volume=1)
    return ReferenceData(
        symbol=symbol,
        trading_day=day,
        prev_day=bar,
        avg_volume=1_000.0 if prev else None,
        free_float=None,
    )


def usual_profile() -> VolumeProfile:
    """The usual day: 1,000 shares in every 5-minute slot from 04:00, so 66,000 by 09:30."""
    slots = tuple(1_000.0 * (i + 1) for i in range(SLOTS))
    return VolumeProfile(trading_day=DAY, days=20, cumulative=slots)


def feed_all(analyzer: Any) -> None:
    for symbol, day in analyzer.wanted_reference():
        analyzer.provide_reference(reference(symbol, day))


def compose(analyzer: LeaderboardAnalyzer, state: MemoryState, now_ms: int) -> dict[str, Any]:
    now_ns = now_ms * 1_000_000
    answers = [state.top_now(read) for read in analyzer.reads(now_ns)]
    return {w.name: msgspec.json.decode(w.payload) for w in analyzer.compose(now_ns, answers)}


def flush(analyzer: LeaderboardAnalyzer, state: MemoryState, now_ms: int) -> list[Any]:
    """One flush as the processor does it: write, publish what was stored, hand back refusals."""
    return flush_ops(analyzer, state, now_ms)[1]


def flush_ops(
    analyzer: LeaderboardAnalyzer, state: MemoryState, now_ms: int
) -> tuple[int, list[Any]]:
    """:func:`flush`, also saying how many state operations it wrote."""
    output = analyzer.collect(now_ms * 1_000_000)
    state.apply_now(output.state)
    analyzer.refused(state.applied.refused)
    return len(output.state), [*output.widgets, *published(state.applied.accepted)]


def drain(analyzers: list[LeaderboardAnalyzer], state: MemoryState, now_ms: int) -> None:
    """Flush every replica until none has anything left to write (refusals re-send rows)."""
    for _ in range(10):
        if not sum(flush_ops(analyzer, state, now_ms)[0] for analyzer in analyzers):
            return
    raise AssertionError("the replicas did not settle within 10 rounds")


# --- a straightforward recomputation -------------------------------------------------------


def expected_boards(events: list[Aggregate], now_ms: int) -> dict[str, list[tuple[str, Any]]]:
    latest: dict[str, Aggregate] = {}
    for event in events:
        old = latest.get(event.symbol)
        if old is None or event.end_ms > old.end_ms:
            latest[event.symbol] = event
    volume: list[tuple[float, str, float]] = []
    gap: list[tuple[float, str, float]] = []
    gain: list[tuple[float, str, float]] = []
    for symbol, event in latest.items():
        volume.append((event.accumulated_volume, symbol, event.accumulated_volume))
        prev = PREV_CLOSE.get(symbol)
        if prev:
            pct = (event.close - prev) / prev * 100  # ranked exact, shown rounded
            if pct > 0:
                gap.append((pct, symbol, round(pct, 4)))
        if event.end_ms >= OPEN_MS and event.official_open:
            pct = (event.close - event.official_open) / event.official_open * 100
            if pct > 0:
                gain.append((pct, symbol, round(pct, 4)))
    boards: dict[str, list[tuple[str, Any]]] = {
        FEED_SCANNER_TOP_VOLUME.name(): [(s, v) for _, s, v in sorted(volume, reverse=True)],
        FEED_SCANNER_TOP_GAPPERS.name(): [(s, v) for _, s, v in sorted(gap, reverse=True)],
        FEED_SCANNER_TOP_GAINERS.name(): [(s, v) for _, s, v in sorted(gain, reverse=True)],
    }
    if now_ms < OPEN_MS:
        boards[FEED_SCANNER_TOP_GAINERS.name()] = []
    return boards


def board_rows(documents: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    return {
        name: [(row["symbol"], row[doc["metric"]]) for row in doc["rows"]]
        for name, doc in documents.items()
    }


@st.composite
def sessions(draw: st.DrawFn) -> list[Aggregate]:
    events: list[Aggregate] = []
    for symbol in draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=5, unique=True)):
        seconds = draw(st.lists(st.integers(0, 4 * 3600), min_size=1, max_size=6, unique=True))
        for offset in seconds:
            end_ms = at_ms(DAY, 8, 0) + offset * 1_000  # 08:00 to 12:00 ET: both sides of 09:30
            close = draw(st.floats(1.0, 30.0).map(lambda x: round(x, 2)))
            official = draw(st.floats(1.0, 30.0).map(lambda x: round(x, 2)))
            events.append(
                aggregate(
                    symbol,
                    end_ms,
                    close=close,
                    accumulated_volume=draw(st.integers(0, 10**7)),
                    official_open=official if end_ms >= OPEN_MS else None,
                )
            )
    return events


@given(
    events=sessions(),
    replicas=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    now_offset_seconds=st.integers(0, 5 * 3600),
)
def test_boards_equal_recomputation_under_any_order_duplication_and_replicas(
    events: list[Aggregate], replicas: int, seed: int, now_offset_seconds: int
) -> None:
    rng = random.Random(seed)
    messages = [events[i : i + 3] for i in range(0, len(events), 3)]
    messages += [rng.choice(messages) for _ in range(rng.randint(0, len(messages)))]
    rng.shuffle(messages)
    state = MemoryState()
    analyzers = [LeaderboardAnalyzer(board_size=50) for _ in range(replicas)]
    last_ms = max(e.end_ms for e in events)
    for message in messages:
        analyzer = rng.choice(analyzers)
        analyzer.apply(message, 0)
        feed_all(analyzer)
        if rng.random() < 0.3:
            flush(analyzer, state, last_ms)
    drain(analyzers, state, last_ms)
    now_ms = at_ms(DAY, 8, 0) + now_offset_seconds * 1_000
    got = board_rows(compose(analyzers[0], state, now_ms))
    assert got == expected_boards(events, now_ms)


def test_gainers_are_empty_before_the_open_and_live_after_without_a_new_event() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=12.0, open_=10.0)], 0)
    feed_all(analyzer)
    flush(analyzer, state, at_ms(DAY, 9, 0))
    before = compose(analyzer, state, at_ms(DAY, 9, 29, 59))
    gainers = before[FEED_SCANNER_TOP_GAINERS.name()]
    assert gainers["status"] == "pre_open"
    assert gainers["rows"] == []
    assert before[FEED_SCANNER_TOP_GAPPERS.name()]["rows"][0]["symbol"] == "AAA"
    # No event lands at 09:30: the switch is clock-driven, and a pre-market bar is no gainer.
    after = compose(analyzer, state, at_ms(DAY, 9, 30, 5))
    assert after[FEED_SCANNER_TOP_GAINERS.name()]["status"] == "live"
    assert after[FEED_SCANNER_TOP_GAINERS.name()]["session"] == "regular"
    assert after[FEED_SCANNER_TOP_GAINERS.name()]["rows"] == []
    analyzer.apply([aggregate("AAA", at_ms(DAY, 9, 45), close=12.0, official_open=11.0)], 0)
    flush(analyzer, state, at_ms(DAY, 9, 45))
    rows = compose(analyzer, state, at_ms(DAY, 9, 46))[FEED_SCANNER_TOP_GAINERS.name()]["rows"]
    assert [(r["symbol"], r["pct_change_since_open"]) for r in rows] == [("AAA", 9.0909)]


def test_gainers_fall_back_to_the_first_regular_bar_open_without_an_official_open() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply(
        [
            aggregate("AAA", at_ms(DAY, 9, 30, 1), close=10.5, open_=10.0),
            aggregate("AAA", at_ms(DAY, 9, 40), close=11.0, open_=10.9),
        ],
        0,
    )
    flush(analyzer, state, at_ms(DAY, 9, 40))
    rows = compose(analyzer, state, at_ms(DAY, 9, 41))[FEED_SCANNER_TOP_GAINERS.name()]["rows"]
    assert rows[0]["session_open"] == 10.0
    assert rows[0]["pct_change_since_open"] == 10.0


def test_trading_day_starts_at_0400_et_not_midnight() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    next_day = date(2026, 3, 5)
    analyzer.apply([aggregate("AAA", at_ms(DAY, 19, 0), accumulated_volume=500)], 0)
    # 00:30 and 03:59 ET on the next calendar day still belong to DAY's trading day.
    analyzer.apply([aggregate("BBB", at_ms(next_day, 0, 30), accumulated_volume=700)], 0)
    analyzer.apply([aggregate("CCC", at_ms(next_day, 3, 59), accumulated_volume=900)], 0)
    flush(analyzer, state, at_ms(next_day, 3, 59))
    old = compose(analyzer, state, at_ms(next_day, 3, 59, 30))[FEED_SCANNER_TOP_VOLUME.name()]
    assert old["trading_day"] == DAY.isoformat()
    assert [r["symbol"] for r in old["rows"]] == ["CCC", "BBB", "AAA"]
    # 04:00: a new day, new keys; nothing from yesterday shows, with or without an event.
    fresh = compose(analyzer, state, at_ms(next_day, 4, 0))[FEED_SCANNER_TOP_VOLUME.name()]
    assert fresh["trading_day"] == next_day.isoformat()
    assert fresh["rows"] == []
    analyzer.apply([aggregate("DDD", at_ms(next_day, 4, 0, 1), accumulated_volume=10)], 0)
    flush(analyzer, state, at_ms(next_day, 4, 1))
    rows = compose(analyzer, state, at_ms(next_day, 4, 1))[FEED_SCANNER_TOP_VOLUME.name()]["rows"]
    assert [r["symbol"] for r in rows] == ["DDD"]
    assert KEY_LB_ROWS.name(day=next_day.isoformat()) in state.rows


def test_late_events_of_a_finished_day_are_counted_and_skipped() -> None:
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([aggregate("AAA", at_ms(date(2026, 3, 5), 10, 0))], 0)
    analyzer.apply([aggregate("BBB", at_ms(DAY, 15, 0))], 0)
    assert analyzer.stale_events == 1


def test_holiday_events_belong_to_the_previous_trading_day() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    holiday = date(2026, 1, 19)  # Martin Luther King Jr. Day
    analyzer.apply([aggregate("AAA", at_ms(holiday, 10, 0))], 0)
    flush(analyzer, state, at_ms(holiday, 10, 0))
    doc = compose(analyzer, state, at_ms(holiday, 10, 1))[FEED_SCANNER_TOP_VOLUME.name()]
    assert doc["trading_day"] == "2026-01-16"
    assert doc["session"] == "closed"


def test_rows_fill_in_when_reference_data_arrives_later() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply([aggregate("AAA", at_ms(DAY, 10, 0), close=11.0, accumulated_volume=2_000)], 0)
    first = flush(analyzer, state, at_ms(DAY, 10, 0))
    row = msgspec.json.decode(first[0].payload)
    assert row["prev_close"] is None
    assert row["pct_change"] is None
    feed_all(analyzer)  # arrives after the event; no new event needed
    second = flush(analyzer, state, at_ms(DAY, 10, 0, 1))
    assert [w.name for w in second] == [FEED_QUOTE.name(symbol="AAA")]
    row = msgspec.json.decode(second[0].payload)
    assert row["prev_close"] == 10.0
    assert row["pct_change"] == 10.0
    assert row["relative_volume"] == 2.0
    gappers = compose(analyzer, state, at_ms(DAY, 10, 1))[FEED_SCANNER_TOP_GAPPERS.name()]
    assert gappers["rows"][0]["rank"] == 1


def test_halts_flag_the_row() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply([aggregate("AAA", at_ms(DAY, 10, 0))], 0)
    flush(analyzer, state, at_ms(DAY, 10, 0))
    analyzer.apply([luld("AAA", at_ms(DAY, 10, 1), 17)], 0)
    (quote,) = flush(analyzer, state, at_ms(DAY, 10, 1))
    assert msgspec.json.decode(quote.payload)["halted"] is True
    analyzer.apply([luld("AAA", at_ms(DAY, 10, 6), 18)], 0)
    (quote,) = flush(analyzer, state, at_ms(DAY, 10, 6))
    assert msgspec.json.decode(quote.payload)["halted"] is False


def test_a_halt_does_not_outlast_its_trading_day() -> None:
    """No resume is sent for a pause the close ended: the next day's rows are not halted,
    down to the millisecond of the 04:00 boundary."""
    following = date(2026, 3, 5)
    day_start = at_ms(following, 4, 0)

    def halted_after(news_ms: int) -> bool:
        analyzer = LeaderboardAnalyzer()
        state = MemoryState()
        analyzer.apply([aggregate("AAA", at_ms(DAY, 15, 50)), luld("AAA", news_ms, 17)], 0)
        flush(analyzer, state, at_ms(DAY, 15, 56))
        analyzer.apply([aggregate("AAA", day_start + 1_000)], 0)
        (quote,) = flush(analyzer, state, day_start + 1_000)
        row = msgspec.json.decode(quote.payload)
        assert row["trading_day"] == following.isoformat()
        return bool(row["halted"])

    assert not halted_after(at_ms(DAY, 15, 55))
    assert not halted_after(day_start - 1)  # still the previous trading day's news
    assert halted_after(day_start)


def test_quote_records_are_coalesced_per_flush() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply(
        [aggregate("AAA", at_ms(DAY, 10, 0, s), accumulated_volume=s * 10) for s in range(50)], 0
    )
    writes = flush(analyzer, state, at_ms(DAY, 10, 1))
    assert len(writes) == 1
    assert msgspec.json.decode(writes[0].payload)["accumulated_volume"] == 490


def test_top_stocks_publishes_the_same_documents_as_the_shared_path() -> None:
    events = [
        aggregate(
            "AAA", at_ms(DAY, 10, 0), close=11.0, accumulated_volume=3_000, official_open=10.0
        ),
        aggregate(
            "BBB", at_ms(DAY, 10, 0, 1), close=19.0, accumulated_volume=9_000, official_open=20.0
        ),
        aggregate(
            "CCC", at_ms(DAY, 10, 0, 2), close=6.0, accumulated_volume=100, official_open=5.5
        ),
    ]
    now_ms = at_ms(DAY, 10, 1)
    shared = LeaderboardAnalyzer()
    state = MemoryState()
    shared.apply(events, 0)
    feed_all(shared)
    flush(shared, state, now_ms)
    expected = compose(shared, state, now_ms)
    embedded = TopStocksAnalyzer()
    embedded.apply(events, 0)
    feed_all(embedded)
    output = embedded.collect(now_ms * 1_000_000)
    got = {w.name: msgspec.json.decode(w.payload) for w in output.widgets if "scanner" in w.name}
    assert got == expected
    assert [r["symbol"] for r in got[FEED_SCANNER_TOP_GAINERS.name()]["rows"]] == ["AAA", "CCC"]
    assert {board.value for board in Board} == {d["board"] for d in got.values()}


def test_rows_carry_time_of_day_rvol_from_the_reference_volume_profile() -> None:
    profile = usual_profile()
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    # A second bar ending 09:30:00 with 198,000 shares traded today: 3x.
    bar = aggregate("AAA", at_ms(DAY, 9, 30), close=11.0, accumulated_volume=198_000)
    analyzer.apply([bar], 0)
    row = msgspec.json.decode(flush(analyzer, state, at_ms(DAY, 9, 30))[0].payload)
    assert row["rvol_tod"] is None  # no profile yet
    for symbol, day in analyzer.wanted_reference():
        analyzer.provide_reference(
            msgspec.structs.replace(reference(symbol, day), volume_profile=profile)
        )
    row = msgspec.json.decode(flush(analyzer, state, at_ms(DAY, 9, 30, 1))[0].payload)
    assert row["rvol_tod"] == 3.0
    assert row["relative_volume"] != row["rvol_tod"]  # the whole-day figure stays as it was


def test_a_profile_arriving_after_the_rest_fills_in_from_the_next_bar() -> None:
    profile = usual_profile()
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply([aggregate("AAA", at_ms(DAY, 9, 30), accumulated_volume=66_000)], 0)
    feed_all(analyzer)
    row = msgspec.json.decode(flush(analyzer, state, at_ms(DAY, 9, 30))[0].payload)
    assert (row["prev_close"], row["rvol_tod"]) == (10.0, None)
    # The profile alone: no second payload for the same bar (replicas would tie on version).
    analyzer.provide_reference(msgspec.structs.replace(reference("AAA"), volume_profile=profile))
    assert flush(analyzer, state, at_ms(DAY, 9, 30, 1)) == []
    analyzer.apply([aggregate("AAA", at_ms(DAY, 9, 35), accumulated_volume=134_000)], 0)
    row = msgspec.json.decode(flush(analyzer, state, at_ms(DAY, 9, 35))[0].payload)
    assert row["rvol_tod"] == 2.0  # 134,000 by 09:35 against the usual 67,000


def test_of_two_bars_ending_together_mdc_keeps_the_later_whichever_replica_writes_last() -> None:
    """A minute bar and its minute's last second bar end together; two replicas (a handoff)
    each wrote one, with the same session figures (an earlier bar set every extreme). MDC
    keeps the later by the analyzer's own order (accumulated volume, volume, close), as one
    replica would, not the one whose payload digest is greater."""
    opening = aggregate("AAA", OPEN_MS + 1_000, close=10.0, high=20.0, low=5.0, volume=50)
    end = OPEN_MS + 120_000
    # Several closes of each: the second bar's row has the greater digest for some pairs.
    minutes = [
        aggregate("AAA", end, close=close, accumulated_volume=1_000, volume=300, minute=True)
        for close in (10.5, 10.75, 11.0)
    ]
    seconds = [
        aggregate("AAA", end, close=close, accumulated_volume=900, volume=10)
        for close in (10.25, 10.3, 10.35, 10.4)
    ]
    pairs = [(s, m) for s in seconds for m in minutes] + [(m, s) for s in seconds for m in minutes]
    for first_bar, then_bar in pairs:
        minute = first_bar if first_bar.accumulated_volume == 1_000 else then_bar
        replicas = [LeaderboardAnalyzer(), LeaderboardAnalyzer()]
        state = MemoryState()
        for analyzer in replicas:
            analyzer.apply([opening], 0)
            feed_all(analyzer)
        drain(replicas, state, OPEN_MS + 1_000)
        for analyzer, bar in zip(replicas, (first_bar, then_bar), strict=True):
            analyzer.apply([bar], 0)
            flush(analyzer, state, end)  # the first replica's row, then the second's
        drain(replicas, state, end)
        row = msgspec.json.decode(state.rows[KEY_LB_ROWS.name(day=DAY.isoformat())]["AAA"])
        assert (row["price"], row["accumulated_volume"]) == (minute.close, 1_000), first_bar


def stored_row(state: MemoryState, symbol: str) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(
        state.rows[KEY_LB_ROWS.name(day=DAY.isoformat())][symbol]
    )
    return decoded


def test_a_new_owner_keeps_the_stored_reference_data_until_its_own_lookup_lands() -> None:
    """A handoff: the new owner's first row is refused for the figures it lacks; the row it
    offers next (a later bar, so it wins) carries the stored row's previous day and averages,
    not nulls, and the symbol stays on the gappers with the right change."""
    state = MemoryState()
    old_owner, new_owner = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    old_owner.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=11.0, high=11.5, low=10.5)], 0)
    yesterday = DailyBar(day=date(2026, 3, 3), open=9.5, high=10.5, low=9.0, close=10.0,
                         volume=800, vwap=9.75)  # fmt: skip
    old_owner.provide_reference(
        ReferenceData(symbol="AAA", trading_day=DAY, prev_day=yesterday, avg_volume=1_000.0)
    )
    drain([old_owner], state, at_ms(DAY, 9, 0))
    assert stored_row(state, "AAA")["prev_close"] == 10.0
    later = aggregate("AAA", at_ms(DAY, 9, 5), close=12.0, accumulated_volume=3_000)
    new_owner.apply([later], 0)
    assert new_owner.wanted_reference() == [("AAA", DAY)]  # asked for, not landed yet
    drain([new_owner], state, at_ms(DAY, 9, 5))
    row = stored_row(state, "AAA")
    assert (row["price"], row["end_ms"]) == (12.0, later.end_ms)
    assert (row["prev_open"], row["prev_high"], row["prev_low"]) == (9.5, 10.5, 9.0)
    assert (row["prev_close"], row["prev_volume"], row["prev_vwap"]) == (10.0, 800, 9.75)
    assert (row["change"], row["pct_change"]) == (2.0, 20.0)
    assert (row["avg_volume"], row["relative_volume"], row["free_float"]) == (1_000.0, 3.0, None)
    assert (row["day_high"], row["day_low"]) == (12.0, 10.5)  # the old owner's extremes
    gappers = compose(new_owner, state, at_ms(DAY, 9, 6))[FEED_SCANNER_TOP_GAPPERS.name()]
    assert [(r["symbol"], r["pct_change"]) for r in gappers["rows"]] == [("AAA", 20.0)]
    # A lookup that then fails (knows nothing) takes nothing away, and writes nothing.
    new_owner.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY))
    assert flush_ops(new_owner, state, at_ms(DAY, 9, 6))[0] == 0
    new_owner.apply([aggregate("AAA", at_ms(DAY, 9, 7), close=9.0, accumulated_volume=4_000)], 0)
    drain([new_owner], state, at_ms(DAY, 9, 7))
    row = stored_row(state, "AAA")
    assert (row["price"], row["prev_close"], row["pct_change"]) == (9.0, 10.0, -10.0)


def test_a_time_of_day_profile_still_lands_after_the_stored_reference_was_adopted() -> None:
    """The profile comes after the rest; a lookup knowing less than the adopted reference
    but carrying the profile adds the profile and keeps the rest."""
    state = MemoryState()
    old_owner, new_owner = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    old_owner.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=11.0, high=11.5, low=10.5)], 0)
    feed_all(old_owner)
    drain([old_owner], state, at_ms(DAY, 9, 0))
    new_owner.apply([aggregate("AAA", at_ms(DAY, 9, 5), close=12.0)], 0)
    drain([new_owner], state, at_ms(DAY, 9, 5))
    profile = usual_profile()
    new_owner.provide_reference(
        ReferenceData(symbol="AAA", trading_day=DAY, volume_profile=profile)
    )
    # A bar ending 09:30:00 with 198,000 shares traded: 3x the usual 66,000 by then.
    new_owner.apply([aggregate("AAA", at_ms(DAY, 9, 30), accumulated_volume=198_000)], 0)
    drain([new_owner], state, at_ms(DAY, 9, 30))
    row = stored_row(state, "AAA")
    assert (row["rvol_tod"], row["prev_close"], row["avg_volume"]) == (3.0, 10.0, 1_000.0)


@pytest.mark.parametrize(
    ("own_average", "own_float", "average", "free_float"),
    [(None, 9_000, 500.0, 9_000), (1_000.0, None, 1_000.0, 7_000)],
)
def test_a_stored_row_fills_only_the_reference_parts_a_replica_lacks(
    own_average: float | None, own_float: int | None, average: float, free_float: int
) -> None:
    """The stored row knows an average of 500 and a float of 7,000, not the previous day;
    the new owner's lookup brought the previous day and one of the others: its own parts
    are kept, and only the one it lacks comes from the row."""
    state = MemoryState()
    old_owner, new_owner = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    old_owner.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=11.0, high=11.5, low=10.5)], 0)
    old_owner.provide_reference(
        ReferenceData(symbol="AAA", trading_day=DAY, avg_volume=500.0, free_float=7_000)
    )
    drain([old_owner], state, at_ms(DAY, 9, 0))
    new_owner.apply([aggregate("AAA", at_ms(DAY, 9, 5), close=12.0, accumulated_volume=3_000)], 0)
    own = msgspec.structs.replace(reference("AAA"), avg_volume=own_average, free_float=own_float)
    new_owner.provide_reference(own)
    drain([new_owner], state, at_ms(DAY, 9, 5))
    row = stored_row(state, "AAA")
    assert (row["prev_close"], row["avg_volume"], row["free_float"]) == (
        10.0,
        average,
        free_float,
    )
    assert row["relative_volume"] == 3_000 / average


def test_a_lookup_landing_after_an_adoption_keeps_the_parts_only_the_row_had() -> None:
    """The stored row knew only the free float; the new owner's lookup then brings the
    previous day and average but no float: the row keeps all three."""
    state = MemoryState()
    old_owner, new_owner = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    old_owner.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=11.0, high=11.5, low=10.5)], 0)
    old_owner.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY, free_float=7_000))
    drain([old_owner], state, at_ms(DAY, 9, 0))
    new_owner.apply([aggregate("AAA", at_ms(DAY, 9, 5), close=12.0, accumulated_volume=3_000)], 0)
    drain([new_owner], state, at_ms(DAY, 9, 5))
    assert stored_row(state, "AAA")["free_float"] == 7_000
    new_owner.provide_reference(reference("AAA"))  # previous day and average, no float
    drain([new_owner], state, at_ms(DAY, 9, 6))
    row = stored_row(state, "AAA")
    assert (row["prev_close"], row["avg_volume"], row["free_float"]) == (10.0, 1_000.0, 7_000)


def test_a_lookup_without_the_profile_keeps_the_profile_already_attached() -> None:
    profile = usual_profile()
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    analyzer.apply([aggregate("AAA", at_ms(DAY, 9, 29), accumulated_volume=1_000)], 0)
    analyzer.provide_reference(msgspec.structs.replace(reference("AAA"), volume_profile=profile))
    analyzer.provide_reference(reference("AAA"))  # asked again, the profile not yet
    analyzer.apply([aggregate("AAA", at_ms(DAY, 9, 30), accumulated_volume=198_000)], 0)
    row = msgspec.json.decode(flush(analyzer, state, at_ms(DAY, 9, 30))[0].payload)
    assert row["rvol_tod"] == 3.0


def test_a_replica_whose_lookup_failed_never_replaces_a_row_that_had_the_previous_close() -> None:
    """Two consumers of one queue. B's lookup failed; A's row, with the previous close, is
    stored. B's later bar sets a new high and low, so B holds every session figure: the
    reference completeness is one too (``rf``), so B is refused, takes the stored row's
    reference and its row keeps the previous close."""
    state = MemoryState()
    a, b = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    b.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=11.0, high=11.0, low=11.0)], 0)
    b.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY))  # failed: nothing
    drain([b], state, at_ms(DAY, 9, 0))
    a.apply([aggregate("AAA", at_ms(DAY, 9, 1), close=11.5, high=11.5, low=11.5)], 0)
    feed_all(a)
    drain([a], state, at_ms(DAY, 9, 1))
    assert stored_row(state, "AAA")["prev_close"] == 10.0
    b.apply([aggregate("AAA", at_ms(DAY, 9, 2), close=12.0, high=12.0, low=10.5)], 0)
    drain([b], state, at_ms(DAY, 9, 2))
    row = stored_row(state, "AAA")
    assert (row["price"], row["prev_close"], row["pct_change"]) == (12.0, 10.0, 20.0)
    assert b.hydrations >= 1


def test_a_completeness_no_stored_row_carries_never_blocks_a_replica() -> None:
    """A's offer, with reference data, was refused and A never offered again (it stopped):
    MDC's figures say complete, but no stored row has the parts. B, whose lookup failed,
    cannot take them; it still gets its later bars stored."""
    state = MemoryState()
    a, b = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    b.apply([aggregate("AAA", at_ms(DAY, 9, 0), close=11.0, high=11.0, low=11.0)], 0)
    b.provide_reference(ReferenceData(symbol="AAA", trading_day=DAY))
    drain([b], state, at_ms(DAY, 9, 0))
    a.apply([aggregate("AAA", at_ms(DAY, 8, 59), close=10.5, high=10.5, low=10.5)], 0)
    feed_all(a)
    flush(a, state, at_ms(DAY, 8, 59))  # refused (B's high is missing), and never again
    assert stored_row(state, "AAA")["prev_close"] is None
    b.apply([aggregate("AAA", at_ms(DAY, 9, 2), close=12.0, accumulated_volume=2_000)], 0)
    drain([b], state, at_ms(DAY, 9, 2))
    row = stored_row(state, "AAA")
    assert (row["price"], row["prev_close"], row["day_low"]) == (12.0, None, 10.5)
