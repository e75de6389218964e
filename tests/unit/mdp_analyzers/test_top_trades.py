"""Top trades against a simple reference: horizon edges, ties at the top-N cut, trade identity.

Pinned by mutation testing (issue 21). Trades go to two replicas (some to both, as a
redelivery would), are flushed into one shared ``MemoryState`` at two moments, and the board
must be exactly the reference's top ``top_n`` of the distinct trades inside the window.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.state import AppendTrades, KeepTop, MemoryState, RankedMember, WindowStats
from mdp_analyzers.top_trades import TopTradesAnalyzer, trade_identity
from mdp_cache.keys import FEED_TOP_TRADES, FEED_TRADE_STATS, KEY_TT_WINDOW
from mdp_core.events import Trade
from mdp_testing.conformance import aggregate, at_ms, trade

DAY = date(2026, 11, 23)
START_SECONDS = at_ms(DAY, 10, 0) // 1000
WINDOW_SECONDS = 5


def _flush(analyzer: TopTradesAnalyzer, state: MemoryState, now_ns: int) -> dict[str, Any]:
    state.apply_now(analyzer.collect(now_ns).state)
    answers = [state.answer_now(read) for read in analyzer.reads(now_ns)]
    return {w.name: msgspec.json.decode(w.payload) for w in analyzer.compose(now_ns, answers)}


def _member(t: Trade) -> bytes:
    """The board's JSON of a trade, written out by hand: ``sequence`` only without an id."""
    fields: dict[str, Any] = {
        "symbol": t.symbol,
        "price": t.price,
        "size": t.size,
        "value": round(t.price * t.size, 2),
        "exchange": t.exchange,
        "timestamp_ms": t.timestamp_ms,
        "trade_id": t.trade_id,
    }
    if not t.trade_id and t.sequence is not None:
        fields["sequence"] = t.sequence
    return msgspec.json.encode(fields)


def _reference_board(trades: list[Trade], now_seconds: int, top_n: int) -> list[dict[str, Any]]:
    """Distinct trades whose second lies in [now - window, now + 5], best (price x size, member)
    first."""
    members = {
        _member(t): t.price * t.size
        for t in trades
        if now_seconds - WINDOW_SECONDS <= t.timestamp_ms // 1000 <= now_seconds + 5
    }
    ranked = sorted(members.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return [msgspec.json.decode(member) for member, _ in ranked[:top_n]]


_trades = st.builds(
    lambda symbol, second, ms, price, size, exchange, trade_id, sequence: msgspec.structs.replace(
        trade(symbol, (START_SECONDS + second) * 1000 + ms, price, size, exchange=exchange),
        trade_id=trade_id,
        sequence=sequence,
    ),
    st.sampled_from(["AAA", "BBB"]),
    st.integers(min_value=-WINDOW_SECONDS - 2, max_value=12),
    st.sampled_from([0, 999]),
    st.sampled_from([1.0, 2.0]),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 2]),
    st.sampled_from(["1", "2", ""]),
    st.sampled_from([None, 1, 2]),
)


@given(
    st.lists(st.tuples(_trades, st.sampled_from([0, 1, 2])), max_size=25),
    st.lists(st.tuples(_trades, st.sampled_from([0, 1, 2])), max_size=25),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=3),
)
def test_the_board_is_the_top_n_distinct_trades_inside_the_window(
    first: list[tuple[Trade, int]],
    second: list[tuple[Trade, int]],
    top_n: int,
    later_seconds: int,
) -> None:
    state = MemoryState()
    replicas = [TopTradesAnalyzer(top_n=top_n, window_seconds=WINDOW_SECONDS) for _ in range(2)]
    seen: list[Trade] = []
    for batch, now_seconds in ((first, START_SECONDS), (second, START_SECONDS + later_seconds)):
        for t, where in batch:
            for index in (0, 1) if where == 2 else (where,):
                replicas[index].apply([t], 0)
            seen.append(t)
        state.apply_now(replicas[0].collect(now_seconds * 1_000_000_000).state)
        board = _flush(replicas[1], state, now_seconds * 1_000_000_000)[FEED_TOP_TRADES.name()]
        expected = _reference_board(seen, now_seconds, top_n)
        assert board["trades"] == expected, (now_seconds - START_SECONDS, top_n)
        assert board["window_s"] == WINDOW_SECONDS


def test_the_oldest_second_of_the_window_still_counts_and_the_one_before_does_not() -> None:
    analyzer = TopTradesAnalyzer(top_n=5, window_seconds=WINDOW_SECONDS)
    state = MemoryState()
    now_seconds = START_SECONDS + 20
    edge = trade("EDGE", (now_seconds - WINDOW_SECONDS) * 1000, 1.0, 1, trade_id="1")
    gone = trade("GONE", (now_seconds - WINDOW_SECONDS) * 1000 - 1, 1.0, 1, trade_id="2")
    ahead = trade("AHEAD", (now_seconds + 5) * 1000 + 999, 1.0, 1, trade_id="3")
    too_far = trade("FAR", (now_seconds + 6) * 1000, 1.0, 1, trade_id="4")
    analyzer.apply([edge, gone, ahead, too_far], 0)
    board = _flush(analyzer, state, now_seconds * 1_000_000_000 + 999_999_999)[
        FEED_TOP_TRADES.name()
    ]
    assert sorted(t["symbol"] for t in board["trades"]) == ["AHEAD", "EDGE"]


def test_ties_at_the_cut_are_decided_by_the_member_on_every_replica() -> None:
    state = MemoryState()
    replicas = [TopTradesAnalyzer(top_n=2, window_seconds=WINDOW_SECONDS) for _ in range(2)]
    ties = [
        trade(s, START_SECONDS * 1000, 2.0, 5, trade_id="1") for s in ("AAA", "BBB", "CCC", "DDD")
    ]
    replicas[0].apply([ties[0], ties[2]], 0)
    replicas[1].apply([ties[3], ties[1]], 0)
    state.apply_now(replicas[0].collect(START_SECONDS * 1_000_000_000).state)
    board = _flush(replicas[1], state, START_SECONDS * 1_000_000_000)[FEED_TOP_TRADES.name()]
    assert [t["symbol"] for t in board["trades"]] == ["DDD", "CCC"]
    # A local heap already full of ties keeps the larger member, drops the smaller.
    replicas[0].apply([ties[3], ties[1]], 0)
    assert sorted(m for _, m in replicas[0]._buckets[START_SECONDS].heap) == sorted(
        [_member(ties[2]), _member(ties[3])]
    )


def test_trade_identity_is_exchange_id_and_time() -> None:
    base = msgspec.structs.replace(
        trade("AAA", 1_000, 1.0, 1, exchange=4, trade_id="77"), sequence=9
    )
    assert trade_identity(base) == "4:77:1000"
    # Without an id, the ticker's sequence number and the time; with neither, nothing.
    no_id = msgspec.structs.replace(base, trade_id="")
    assert trade_identity(no_id) == "q9:1000"
    assert trade_identity(msgspec.structs.replace(no_id, sequence=0)) == "q0:1000"
    assert trade_identity(msgspec.structs.replace(no_id, sequence=None)) == ""


def test_a_trade_without_an_id_is_counted_once_by_its_sequence_number() -> None:
    analyzer = TopTradesAnalyzer(window_trades=50)
    state = MemoryState()
    stamp = START_SECONDS * 1000

    def print_(stamp_ms: int, size: int, trade_id: str, sequence: int | None) -> Trade:
        made = trade("AAA", stamp_ms, 1.0, size, exchange=4)
        return msgspec.structs.replace(made, trade_id=trade_id, sequence=sequence)

    first = print_(stamp, 10, "", 5)
    analyzer.apply(
        [
            first,
            first,  # redelivered: counted once
            print_(stamp, 20, "", 6),  # the next one
            print_(stamp + 1, 40, "", 5),  # another time (a new day's q5)
            print_(stamp, 80, "5", 7),  # id "5" is not sequence 5
            print_(stamp, 160, "", None),  # no identity at all ...
            print_(stamp, 160, "", None),  # ... so counted each time
        ],
        0,
    )
    stats = _flush(analyzer, state, (stamp + 5) * 1_000_000)[FEED_TRADE_STATS.name(symbol="AAA")]
    assert (stats["trade_count"], stats["total_volume"]) == (6, 470)


def test_two_trades_without_an_id_that_differ_only_in_sequence_both_make_the_board() -> None:
    stamp = START_SECONDS * 1000

    def print_(trade_id: str, sequence: int | None) -> Trade:
        made = trade("AAA", stamp, 2.0, 100, exchange=4)
        return msgspec.structs.replace(made, trade_id=trade_id, sequence=sequence)

    analyzer = TopTradesAnalyzer(top_n=5, window_seconds=WINDOW_SECONDS)
    analyzer.apply([print_("", 5), print_("", 6), print_("", 5), print_("9", 7)], 0)
    board = _flush(analyzer, MemoryState(), START_SECONDS * 1_000_000_000)
    listed = board[FEED_TOP_TRADES.name()]["trades"]
    # Each id-less trade once (the redelivered q5 too), told apart by its sequence; a trade
    # with an id carries no sequence, so its member is the one it always was.
    assert sorted((t["trade_id"], t.get("sequence")) for t in listed) == [
        ("", 5),
        ("", 6),
        ("9", None),
    ]
    assert all(t["value"] == 200.0 for t in listed)


def test_the_window_counts_one_trade_per_identity() -> None:
    analyzer = TopTradesAnalyzer(window_trades=50)
    state = MemoryState()
    stamp = START_SECONDS * 1000
    same = trade("AAA", stamp, 1.0, 10, exchange=4, trade_id="1")
    analyzer.apply(
        [
            same,
            same,  # the same trade twice: counted once
            trade("AAA", stamp, 1.0, 20, exchange=5, trade_id="1"),  # another exchange
            trade("AAA", stamp + 1, 1.0, 40, exchange=4, trade_id="1"),  # another time
            trade("AAA", stamp, 1.0, 80, exchange=4, trade_id="2"),  # another id
        ],
        0,
    )
    stats = _flush(analyzer, state, (stamp + 5) * 1_000_000)[FEED_TRADE_STATS.name(symbol="AAA")]
    assert (stats["trade_count"], stats["total_volume"]) == (4, 150)


@pytest.mark.parametrize("label", ["window_trades", "top_n", "window_seconds", "stats_per_compose"])
def test_every_window_parameter_must_be_at_least_one(label: str) -> None:
    with pytest.raises(ValueError, match=f"^{label} must be at least 1; it was 0$"):
        TopTradesAnalyzer(**{label: 0})
    assert getattr(TopTradesAnalyzer(**{label: 1}), label) == 1


def test_defaults_and_counters() -> None:
    analyzer = TopTradesAnalyzer()
    assert (analyzer.window_trades, analyzer.top_n, analyzer.window_seconds) == (1_000, 50, 300)
    assert (analyzer.compose_interval_ns, analyzer.stats_per_compose) == (10**9, 10_000)
    assert TopTradesAnalyzer(publish_interval_seconds=0.25).compose_interval_ns == 250_000_000
    stamp = START_SECONDS * 1000
    quote_like = aggregate("AAA", stamp)
    analyzer.apply(
        [quote_like, trade("AAA", stamp, 1.0, 1), quote_like, trade("B", stamp, 1.0, 2)], 0
    )
    assert (analyzer.trades, analyzer.ignored_events) == (2, 2)


def test_state_operations_carry_the_catalogue_ttls() -> None:
    analyzer = TopTradesAnalyzer(window_seconds=WINDOW_SECONDS)
    analyzer.apply([trade("AAA", START_SECONDS * 1000, 1.0, 1)], 0)
    ops = analyzer.collect(START_SECONDS * 1_000_000_000).state
    appends = [op for op in ops if isinstance(op, AppendTrades)]
    tops = [op for op in ops if isinstance(op, KeepTop)]
    assert [op.ttl for op in appends] == [KEY_TT_WINDOW.ttl]
    assert [(op.ttl, op.cap) for op in tops] == [(WINDOW_SECONDS + 60, 50)]


def test_values_are_rounded_to_cents_and_a_smaller_trade_replaces_the_smallest() -> None:
    analyzer = TopTradesAnalyzer(top_n=2, window_seconds=WINDOW_SECONDS)
    state = MemoryState()
    stamp = START_SECONDS * 1000
    big = trade("BIG", stamp, 0.123, 100)  # 12.3
    analyzer.apply([trade("ONE", stamp, 1.0, 1), big, big, trade("TWO", stamp, 0.001, 2_000)], 0)
    board = _flush(analyzer, state, START_SECONDS * 1_000_000_000)[FEED_TOP_TRADES.name()]
    assert [(t["symbol"], t["value"]) for t in board["trades"]] == [("BIG", 12.3), ("TWO", 2.0)]
    tiny = TopTradesAnalyzer(top_n=1)
    tiny.apply([trade("T", stamp, 0.1234, 1)], 0)
    board = _flush(tiny, MemoryState(), START_SECONDS * 1_000_000_000)[FEED_TOP_TRADES.name()]
    assert board["trades"][0]["value"] == 0.12


def test_the_board_ranks_by_the_exact_value_not_the_cents_it_shows() -> None:
    """1,000.01 and 1,000.009 both show as 1,000.01; the larger ranks first, and is kept."""
    stamp = START_SECONDS * 1000
    larger = trade("AAA", stamp, 10.0001, 100)
    smaller = trade("BBB", stamp, 1000.009, 1)  # the greater member: first if values tied
    for top_n, expected in ((2, ["AAA", "BBB"]), (1, ["AAA"])):
        analyzer = TopTradesAnalyzer(top_n=top_n, window_seconds=WINDOW_SECONDS)
        analyzer.apply([smaller, larger], 0)
        board = _flush(analyzer, MemoryState(), START_SECONDS * 1_000_000_000)
        shown = board[FEED_TOP_TRADES.name()]["trades"]
        assert [t["symbol"] for t in shown] == expected
        assert {t["value"] for t in shown} == {1000.01}


def test_a_trade_seen_twice_takes_one_place_in_the_local_top() -> None:
    state = MemoryState()
    analyzer = TopTradesAnalyzer(top_n=2, window_seconds=WINDOW_SECONDS)
    stamp = START_SECONDS * 1000
    large = trade("LARGE", stamp, 5.0, 1)
    analyzer.apply([large], 0)
    analyzer.apply([large, trade("SMALL", stamp, 3.0, 1)], 0)
    board = _flush(analyzer, state, START_SECONDS * 1_000_000_000)[FEED_TOP_TRADES.name()]
    assert [t["symbol"] for t in board["trades"]] == ["LARGE", "SMALL"]


def test_the_board_is_published_only_when_it_changes_and_stamped_with_the_time() -> None:
    analyzer = TopTradesAnalyzer(window_seconds=WINDOW_SECONDS)
    state = MemoryState()
    now_ns = START_SECONDS * 1_000_000_000 + 123_456_789

    def compose() -> list[Any]:
        state.apply_now(analyzer.collect(now_ns).state)
        return list(analyzer.compose(now_ns, [state.answer_now(r) for r in analyzer.reads(now_ns)]))

    first = compose()
    assert [(w.name, w.publish, w.version) for w in first] == [
        ("trades:top", True, now_ns // 10**6)
    ]
    assert compose()[0].publish is False
    analyzer.apply([trade("AAA", START_SECONDS * 1000, 1.0, 1)], 0)
    writes = compose()
    stats, board = writes
    assert board.publish is True
    assert msgspec.json.decode(board.payload)["as_of_ms"] == now_ns // 10**6
    assert msgspec.json.decode(stats.payload)["as_of_ms"] == now_ns // 10**6
    assert msgspec.json.decode(stats.payload)["symbol"] == "AAA"


def test_a_statistics_document_carries_the_latest_trade_and_the_window_sequence() -> None:
    analyzer = TopTradesAnalyzer(window_seconds=WINDOW_SECONDS)
    state = MemoryState()
    stamp = START_SECONDS * 1000
    now_ns = START_SECONDS * 1_000_000_000
    analyzer.apply(
        [
            trade("AAA", stamp + 7, 10.0, 300, exchange=11, trade_id="2"),
            trade("AAA", stamp, 9.0, 100, exchange=4, trade_id="1"),  # older, arrives later
        ],
        0,
    )
    state.apply_now(analyzer.collect(now_ns).state)
    [stats, _] = analyzer.compose(now_ns, [state.answer_now(r) for r in analyzer.reads(now_ns)])
    assert stats.name == FEED_TRADE_STATS.of("AAA")
    assert msgspec.json.decode(stats.payload) == {
        "symbol": "AAA",
        "as_of_ms": now_ns // 10**6,
        "window": 1_000,
        "trade_count": 2,
        "total_volume": 400,
        "avg_size": 200.0,
        "max_size": 300,
        "time_span_ms": 7,
        "latest_price": 10.0,
        "latest_size": 300,
        "latest_exchange": 11,
        "latest_timestamp_ms": stamp + 7,
    }
    # The window's sequence starts at its first batch's newest time x 1,000, one per trade.
    assert stats.version == (stamp + 7) * 1000 + 2


def test_an_empty_window_shows_no_average_rather_than_failing() -> None:
    """No backend reports a window without a trade, but a composition must survive one."""
    analyzer = TopTradesAnalyzer(window_seconds=WINDOW_SECONDS)
    now_ns = START_SECONDS * 1_000_000_000
    empty = msgspec.msgpack.encode(WindowStats(7, 0, 0, 0, 0, 0, 0, 0, 0, 0.0))
    writes = analyzer.compose(now_ns, [[RankedMember("AAA", 0.0, empty)], []])
    [stats] = [w for w in writes if w.name == FEED_TRADE_STATS.of("AAA")]
    document = msgspec.json.decode(stats.payload)
    assert (document["trade_count"], document["avg_size"], stats.version) == (0, 0.0, 7)
