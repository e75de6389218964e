from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mdp_analyzers.halts import HaltBook, halts_read
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.notebook import boards_of, quotes_of, replay_leaderboards
from mdp_analyzers.registry import UnknownAnalyzer, create_analyzer, load_analyzer
from mdp_analyzers.replay import OfflineResult, read_replay, run_offline
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_analyzers.typing import Composer, Hydrating, Synchronized, published
from mdp_cache.keys import (
    FEED_HALTS,
    FEED_LATEST_LULD,
    FEED_LATEST_NBBO,
    FEED_QUOTE,
    FEED_TOP_TRADES,
    FEED_TRADE_STATS,
    KEY_LB_ROWS,
)
from mdp_core.calendar import MarketCalendar
from mdp_core.events import FairMarketValue
from mdp_core.wire import encode_events
from mdp_testing.conformance import aggregate, at_ms, luld, quote, trade

DAY = date(2026, 3, 4)


def test_router_keeps_only_the_latest_event_per_kind_and_symbol() -> None:
    router = MassiveDataAnalyzer()
    start = at_ms(DAY, 10, 0)
    router.apply([quote("AAA", start + s * 1_000, 10.0 + s, 10.5 + s) for s in range(100)], 0)
    router.apply([FairMarketValue(fair_value=1.0, symbol="AAA", timestamp_ns=1)], 0)
    writes = router.collect(0).widgets
    assert [w.name for w in writes] == [FEED_LATEST_NBBO.name(symbol="AAA")]
    assert msgspec.json.decode(writes[0].payload)["bp"] == 109.0
    assert router.unknown == {"FMV": 1}
    assert router.routed["Q"] == 100


def replica_flush(analyzer: Any, state: MemoryState, now_ns: int) -> dict[str, Any]:
    """One processor flush on a replica sharing ``state``: write, sync, compose."""
    output = analyzer.collect(now_ns)
    state.apply_now(output.state)
    writes = [*output.widgets, *published(state.applied.accepted)]
    if isinstance(analyzer, Hydrating):
        analyzer.refused(state.applied.refused)
    if isinstance(analyzer, Synchronized):
        analyzer.sync(now_ns, [state.answer_now(r) for r in analyzer.sync_reads(now_ns)])
    if isinstance(analyzer, Composer):
        answers = [state.answer_now(read) for read in analyzer.reads(now_ns)]
        writes.extend(analyzer.compose(now_ns, answers))
    return {w.name: msgspec.json.decode(w.payload) for w in writes}


def test_halts_reach_every_replica_whichever_received_them() -> None:
    state = MemoryState()
    first, second = MassiveDataAnalyzer(), MassiveDataAnalyzer()
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    first.apply([luld("AAA", at_ms(DAY, 10, 0), 17)], 0)
    writes = replica_flush(first, state, now_ns)
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["halted"] is True
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["T"] == "AAA"
    assert set(writes[FEED_HALTS.name()]["symbols"]) == {"AAA"}
    # The other replica learns it from the merged state: a band update it receives next
    # says halted, and its halts document (were it composing) agrees.
    replica_flush(second, state, now_ns)
    second.apply([luld("AAA", at_ms(DAY, 10, 0, 30))], 0)  # no halt/resume indicator
    writes = replica_flush(second, state, now_ns + 1)
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["halted"] is True
    # The resume arrives at the second replica; the first one's document follows.
    second.apply([luld("AAA", at_ms(DAY, 10, 5), 18)], 0)
    writes = replica_flush(second, state, now_ns + 2)
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["halted"] is False
    writes = replica_flush(first, state, now_ns + 3)
    assert writes[FEED_HALTS.name()]["symbols"] == {}
    # Nothing changed since: the document is not published again.
    assert FEED_HALTS.name() not in replica_flush(first, state, now_ns + 4)


def test_a_luld_record_written_before_the_halt_was_known_is_corrected() -> None:
    state = MemoryState()
    wdc = OfflineResult()
    first, second = MassiveDataAnalyzer(), MassiveDataAnalyzer()
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    name = FEED_LATEST_LULD.name(symbol="AAA")

    def flush(router: MassiveDataAnalyzer, at_ns: int) -> None:
        output = router.collect(at_ns)
        state.apply_now(output.state)
        wdc.record(output.widgets)
        router.sync(at_ns, [state.answer_now(r) for r in router.sync_reads(at_ns)])

    # A band update reaches the second replica after the halt reached the first one, but
    # before the second has read the merged halts: it writes "not halted".
    first.apply([luld("AAA", at_ms(DAY, 10, 0), 17)], 0)
    second.apply([luld("AAA", at_ms(DAY, 10, 0, 30))], 0)
    flush(second, now_ns)
    assert wdc.document(name)["halted"] is False
    flush(first, now_ns)
    # The halt event's own record is older than the band update: it does not replace it.
    assert wdc.document(name)["halted"] is False
    flush(second, now_ns + 1)  # reads the merged halt
    flush(second, now_ns + 2)  # rewrites its record, which now wins at its event time
    assert wdc.document(name)["halted"] is True
    assert wdc.document(name)["t"] == at_ms(DAY, 10, 0, 30)


def test_a_resume_learned_late_replaces_the_halted_row_at_the_same_bar() -> None:
    state = MemoryState()
    wdc = OfflineResult()
    with_bars, with_resume = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    quote_name = FEED_QUOTE.name(symbol="AAA")
    rows_key = KEY_LB_ROWS.name(day=DAY.isoformat())
    now_ns = at_ms(DAY, 10, 1) * 1_000_000

    def flush(analyzer: LeaderboardAnalyzer, at_ns: int) -> None:
        output = analyzer.collect(at_ns)
        state.apply_now(output.state)
        wdc.record([*output.widgets, *published(state.applied.accepted)])
        analyzer.refused(state.applied.refused)
        analyzer.sync(at_ns, [state.answer_now(r) for r in analyzer.sync_reads(at_ns)])

    # The last bar before a halt, and the halt, reach one replica: its row says halted.
    with_bars.apply([aggregate("AAA", at_ms(DAY, 10, 0, 10), accumulated_volume=5_000)], 0)
    with_bars.apply([luld("AAA", at_ms(DAY, 10, 0, 20), 17)], 0)
    flush(with_bars, now_ns)
    assert wdc.document(quote_name)["halted"] is True
    # The resume reaches the other replica; no new bar follows (a quiet symbol).
    with_resume.apply([luld("AAA", at_ms(DAY, 10, 5), 18)], 0)
    flush(with_resume, now_ns)
    flush(with_bars, now_ns + 1)  # learns the resume
    flush(with_bars, now_ns + 2)  # rewrites the same bar's row: the newer news wins
    assert wdc.document(quote_name)["halted"] is False
    assert msgspec.json.decode(state.rows[rows_key]["AAA"])["halted"] is False


def test_replicas_agree_on_halt_records_of_equal_time() -> None:
    halt = luld("AAA", at_ms(DAY, 10, 0), 17)
    resume = luld("AAA", at_ms(DAY, 10, 0), 18)  # same instant, other indicator
    books = [HaltBook(), HaltBook()]
    books[0].note(halt)
    books[0].note(resume)
    books[1].note(resume)
    books[1].note(halt)
    state = MemoryState()
    state.apply_now([*books[0].take_ops(), *books[1].take_ops()])
    merged = state.answer_now(halts_read())
    for book in books:
        book.merge(merged)
    assert books[0].halted("AAA") == books[1].halted("AAA")
    assert books[0].halted("AAA") is (msgspec.json.decode(merged[0].payload)["halted"])


def test_a_halt_flags_the_rows_every_replica_writes() -> None:
    state = MemoryState()
    seen_halt, seen_bars = LeaderboardAnalyzer(), LeaderboardAnalyzer()
    bar = aggregate("AAA", at_ms(DAY, 10, 0, 10), close=11.0, accumulated_volume=5_000)
    seen_bars.apply([bar], 0)
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    quote_name = FEED_QUOTE.name(symbol="AAA")
    assert replica_flush(seen_bars, state, now_ns)[quote_name]["halted"] is False
    seen_halt.apply([luld("AAA", at_ms(DAY, 10, 0, 20), 17)], 0)
    replica_flush(seen_halt, state, now_ns)
    # The replica holding the bar learns of the halt (sync) and rewrites the row on its next
    # flush, with a version that beats the unflagged one.
    assert quote_name not in replica_flush(seen_bars, state, now_ns + 1)
    writes = replica_flush(seen_bars, state, now_ns + 2)
    assert writes[quote_name]["halted"] is True
    day_rows = state.rows[KEY_LB_ROWS.name(day=DAY.isoformat())]
    assert msgspec.json.decode(day_rows["AAA"])["halted"] is True


def naive_stats(trades: list[tuple[int, int, float]], window: int) -> dict[str, float]:
    recent = trades[-window:]
    sizes = [size for _, size, _ in recent]
    stamps = [stamp for stamp, _, _ in recent]
    return {
        "trade_count": len(recent),
        "total_volume": sum(sizes),
        "max_size": max(sizes),
        "avg_size": round(sum(sizes) / len(sizes), 2),
        "time_span_ms": stamps[-1] - stamps[0],
    }


def flush(analyzer: TopTradesAnalyzer, state: MemoryState, now_ns: int) -> dict[str, Any]:
    """Apply one flush to ``state`` and compose: the written documents by name."""
    state.apply_now(analyzer.collect(now_ns).state)
    answers = [state.answer_now(read) for read in analyzer.reads(now_ns)]
    return {w.name: msgspec.json.decode(w.payload) for w in analyzer.compose(now_ns, answers)}


def test_window_parameters_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="window_trades must be at least 1"):
        TopTradesAnalyzer(window_trades=0)


def test_trade_statistics_match_a_recomputation_over_the_sliding_window() -> None:
    analyzer = TopTradesAnalyzer(window_trades=10)
    state = MemoryState()
    seen: list[tuple[int, int, float]] = []
    sizes = [5, 80, 3, 3, 90, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 70, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    name = FEED_TRADE_STATS.name(symbol="AAA")
    for i, size in enumerate(sizes):
        stamp = at_ms(DAY, 10, 0) + i * 250
        analyzer.apply([trade("AAA", stamp, 10.0 + i, size)], 0)
        seen.append((stamp, size, 10.0 + i))
        stats = flush(analyzer, state, stamp * 1_000_000)[name]
        assert {key: stats[key] for key in naive_stats(seen, 10)} == naive_stats(seen, 10)
        assert stats["latest_price"] == 10.0 + i
        assert stats["window"] == 10


def test_a_trade_delivered_twice_is_counted_once() -> None:
    state = MemoryState()
    replicas = [TopTradesAnalyzer(window_trades=10), TopTradesAnalyzer(window_trades=10)]
    trades = [trade("AAA", at_ms(DAY, 10, 0, s), 10.0, 100 + s) for s in range(4)]
    replicas[0].apply(trades, 0)
    replicas[1].apply(trades[2:], 0)  # redelivered to another replica
    replicas[0].apply(trades[:1], 0)  # and twice to the same one
    now_ns = at_ms(DAY, 10, 0, 5) * 1_000_000
    state.apply_now(replicas[0].collect(now_ns).state)
    documents = flush(replicas[1], state, now_ns)
    stats = documents[FEED_TRADE_STATS.name(symbol="AAA")]
    assert stats["trade_count"] == 4
    assert stats["total_volume"] == 100 + 101 + 102 + 103
    board = documents[FEED_TOP_TRADES.name()]["trades"]
    assert [t["size"] for t in board] == [103, 102, 101, 100]


def test_top_trades_rank_by_value_within_the_window() -> None:
    analyzer = TopTradesAnalyzer(top_n=2, window_seconds=60)
    state = MemoryState()
    start = at_ms(DAY, 10, 0)
    analyzer.apply(
        [
            trade("AAA", start, 10.0, 1_000),  # 10,000
            trade("BBB", start + 1_000, 100.0, 500),  # 50,000
            trade("CCC", start + 2_000, 5.0, 1_000),  # 5,000
        ],
        0,
    )
    documents = flush(analyzer, state, (start + 3_000) * 1_000_000)
    board = documents[FEED_TOP_TRADES.name()]
    assert [t["symbol"] for t in board["trades"]] == ["BBB", "AAA"]
    assert board["trades"][0]["value"] == 50_000.0
    analyzer.apply([trade("DDD", start + 90_000, 1.0, 100)], 0)
    documents = flush(analyzer, state, (start + 90_000) * 1_000_000)
    # The first three trades left the 60 s window; only DDD is recent.
    board = documents[FEED_TOP_TRADES.name()]
    assert [t["symbol"] for t in board["trades"]] == ["DDD"]
    # Nothing changed: the board is stored again (newest composition wins) but not published.
    now_ns = (start + 91_000) * 1_000_000
    state.apply_now(analyzer.collect(now_ns).state)
    answers = [state.answer_now(read) for read in analyzer.reads(now_ns)]
    (again,) = [w for w in analyzer.compose(now_ns, answers) if w.name == FEED_TOP_TRADES.name()]
    assert not again.publish
    assert again.version == start + 91_000


def test_registry_loads_by_name_and_lists_known_names_on_error() -> None:
    assert load_analyzer("leaderboard").__name__ == "LeaderboardAnalyzer"
    created = create_analyzer("top_stocks", calendar=MarketCalendar(), unrelated=1)
    assert isinstance(created, TopStocksAnalyzer)
    with pytest.raises(UnknownAnalyzer) as info:
        load_analyzer("nope")
    assert "leaderboard" in str(info.value)
    assert "router" in info.value.known


def test_run_offline_replays_a_jsonl_recording(tmp_path: Path) -> None:
    events = [
        aggregate("AAA", at_ms(DAY, 10, 0), close=11.0, accumulated_volume=500),
        aggregate("BBB", at_ms(DAY, 10, 0, 1), close=12.0, accumulated_volume=900),
        trade("AAA", at_ms(DAY, 10, 0, 2), 11.0, 300),
    ]
    path = tmp_path / "session.jsonl"
    lines = [
        encode_events(events[:2]).decode(),
        json.dumps({"frame": encode_events(events[2:]).decode()}),
    ]
    path.write_text("\n".join([*lines, "not json", ""]))
    assert len(list(read_replay(path))) == 3
    result = run_offline(path, [TopStocksAnalyzer(), TopTradesAnalyzer()])
    boards = boards_of(result)
    volume = boards["scanner:top_volume"]
    assert [row["symbol"] for row in volume["rows"]] == ["BBB", "AAA"]
    assert set(quotes_of(result)) == {"AAA", "BBB"}
    assert result.document(FEED_TOP_TRADES.name())["trades"][0]["size"] == 300
    documents = replay_leaderboards(events, with_trades=True)
    assert documents["scanner:top_volume"]["rows"][0]["symbol"] == "BBB"
    assert FEED_TOP_TRADES.name() in documents


def test_the_halts_document_lists_only_the_trading_days_own_halts() -> None:
    """No resume is sent for a pause the close ended: the next day's document drops it, down
    to the millisecond of the 04:00 boundary."""
    following = date(2026, 3, 5)
    day_start = at_ms(following, 4, 0)
    router = MassiveDataAnalyzer()
    state = MemoryState()
    router.apply([luld("AAA", at_ms(DAY, 15, 55), 17)], 0)
    writes = replica_flush(router, state, at_ms(DAY, 15, 56) * 1_000_000)
    assert set(writes[FEED_HALTS.name()]["symbols"]) == {"AAA"}
    router.apply([luld("BBB", day_start - 1, 17)], 0)  # still the trading day of 03-04
    writes = replica_flush(router, state, (day_start - 1) * 1_000_000)
    assert set(writes[FEED_HALTS.name()]["symbols"]) == {"AAA", "BBB"}
    router.apply([luld("CCC", day_start, 17)], 0)
    writes = replica_flush(router, state, day_start * 1_000_000)
    assert set(writes[FEED_HALTS.name()]["symbols"]) == {"CCC"}


def test_a_luld_record_of_the_next_day_is_not_flagged_by_yesterdays_pause() -> None:
    following = date(2026, 3, 5)
    router = MassiveDataAnalyzer()
    state = MemoryState()
    router.apply([luld("AAA", at_ms(DAY, 15, 55), 17)], 0)
    writes = replica_flush(router, state, at_ms(DAY, 15, 56) * 1_000_000)
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["halted"] is True
    router.apply([luld("AAA", at_ms(following, 4, 0) - 1)], 0)  # a band update, 03-04's day
    writes = replica_flush(router, state, at_ms(following, 4, 0) * 1_000_000)
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["halted"] is True
    router.apply([luld("AAA", at_ms(following, 4, 0))], 0)  # the first of 03-05's
    writes = replica_flush(router, state, at_ms(following, 4, 1) * 1_000_000)
    assert writes[FEED_LATEST_LULD.name(symbol="AAA")]["halted"] is False
