"""Dispatch by the hub without Redis: the link is never started, so it stays down."""

import json
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, SlotNotCoveredError

from mdp_wds.access import resolve_feed
from mdp_wds.deltas import apply_delta
from mdp_wds.hub import MAX_FIELD_SETS, BoardFrame, Hub, SnapshotUnavailable, TooManyFieldSets
from mdp_wds.protocol import Frame
from mdp_wds.stats import WdsStats


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, int, Frame]] = []
        self.boards: list[BoardFrame | None] = []
        self.resyncs = 0

    def deliver(self, key: str, seq: int, frame: Frame, board: BoardFrame | None = None) -> None:
        self.got.append((key, seq, frame))
        self.boards.append(board)

    def resync(self) -> None:
        self.resyncs += 1


async def test_exact_and_pattern_messages_reach_their_own_subscribers() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    exact, pattern, other = Recorder(), Recorder(), Recorder()
    assert await hub.add(exact, resolve_feed("quote:AAPL")) is False  # link down: made later
    await hub.add(pattern, resolve_feed("quote:*"))
    await hub.add(other, resolve_feed("news:ticker:*"))
    assert stats.redis_subscriptions == 3

    # Redis sends both a message (exact) and a pmessage (pattern) for one publish.
    hub._on_message(b"quote:AAPL", None, b'{"as_of_ms": 5}')
    hub._on_message(b"quote:AAPL", b"quote:*", b'{"as_of_ms": 5}')
    hub._on_message(b"quote:a:b", b"quote:*", b"{}")  # glob match outside the feed
    hub._on_message(b"quote:MSFT", b"quote:*", b"{not json")

    assert [(k, f.data) for k, _, f in exact.got] == [
        ("quote:AAPL", b'{"op":"update","feed":"quote:AAPL","data":{"as_of_ms": 5}}')
    ]
    assert [(k, f.as_of_ms) for k, _, f in pattern.got] == [("quote:*", 5.0)]
    assert other.got == []
    assert stats.bad_payloads == 1
    assert exact.got[0][1] < pattern.got[0][1] == hub.last_seq

    hub.remove(exact, resolve_feed("quote:AAPL"))
    hub._on_message(b"quote:AAPL", None, b"{}")
    assert len(exact.got) == 1
    assert hub.subscriber_count("quote:AAPL") == 0
    assert hub.subscriber_count("quote:*") == 1
    await hub.close()


async def test_resync_reaches_every_subscriber_once() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    both = Recorder()
    await hub.add(both, resolve_feed("quote:AAPL"))
    await hub.add(both, resolve_feed("alerts:hod"))
    hub._on_resync()
    assert both.resyncs == 1
    assert stats.redis_reconnects == 1
    await hub.close()


async def test_a_nested_payload_is_counted_and_the_next_one_delivered() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    client = Recorder()
    await hub.add(client, resolve_feed("quote:AAPL"))
    hub._on_message(b"quote:AAPL", None, b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}")
    hub._on_message(b"quote:AAPL", None, b'{"as_of_ms": 7}')
    assert stats.bad_payloads == 1
    assert [f.as_of_ms for _, _, f in client.got] == [7.0]
    assert hub._checked("quote:AAPL", b"[" * 5000) == b"null"
    assert stats.bad_payloads == 2
    await hub.close()


async def test_a_payload_that_is_not_utf8_is_counted_and_the_next_one_delivered() -> None:
    # Forwarded, it went out in a text frame every client must fail (1007); in a board or a
    # trace context it raised out of the link's read and reset the pub/sub of every feed.
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    quote, top = Recorder(), Recorder()
    await hub.add(quote, resolve_feed("quote:AAPL"))
    await hub.add(top, resolve_feed("scanner:top_volume"), fields=frozenset({"symbol"}))
    hub._on_message(b"quote:AAPL", None, b'{"note":"\xff","as_of_ms": 1}')
    hub._on_message(b"quote:AAPL", None, b'{"traceparent":"\xff"}')
    hub._on_message(b"scanner:top_volume", None, b'{"rows":[{"symbol":"\xff"}]}')
    assert stats.bad_payloads == 3
    hub._on_message(b"quote:AAPL", None, '{"note":"caf\u00e9","as_of_ms": 7}'.encode())
    assert [f.as_of_ms for _, _, f in quote.got] == [7.0]  # UTF-8 beyond ASCII is fine
    assert top.got == []
    assert hub._checked("quote:AAPL", b'{"note":"\xff"}') == b"null"  # a stored one too
    assert stats.bad_payloads == 4
    await hub.close()


BOARD = "scanner:top_gainers"
PRICE = frozenset({"price"})


def board(price: float, as_of_ms: int) -> bytes:
    rows = [{"symbol": "AA", "price": price, "vwap": 1.0}, {"symbol": "BB", "price": 2.0}]
    return json.dumps({"as_of_ms": as_of_ms, "rows": rows}).encode()


async def test_each_field_set_gets_its_projection_numbered_and_diffed_once() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    ref = resolve_feed(BOARD)
    whole, narrow, narrow2 = Recorder(), Recorder(), Recorder()
    await hub.add(whole, ref)
    await hub.add(narrow, ref, PRICE)
    await hub.add(narrow2, ref, frozenset({"price"}))
    assert hub.field_sets(BOARD) == 1
    assert hub.subscriber_count(BOARD) == 3
    assert stats.redis_subscriptions == 1

    hub._on_message(BOARD.encode(), None, board(1.0, 1))
    hub._on_message(BOARD.encode(), None, board(1.5, 2))
    first = json.loads(narrow.got[0][2].data)
    assert first == {
        "op": "update",
        "seq": 1,
        "feed": BOARD,
        "data": {
            "as_of_ms": 1,
            "rows": [{"symbol": "AA", "price": 1.0}, {"symbol": "BB", "price": 2.0}],
        },
    }
    assert json.loads(whole.got[0][2].data)["data"] == json.loads(board(1.0, 1))
    delta = narrow.boards[1]
    assert delta is not None
    assert delta.seq == 2
    assert delta.delta is not None
    assert delta.delta is narrow2.boards[1].delta  # type: ignore[union-attr]  # built once
    assert json.loads(delta.delta.data)["data"] == {
        "set": {"as_of_ms": 2},
        "rows": {},
        "patch": {"AA": {"price": 1.5}},
    }
    assert apply_delta(first["data"], json.loads(delta.delta.data)["data"], "symbol") == {
        "as_of_ms": 2,
        "rows": [{"symbol": "AA", "price": 1.5}, {"symbol": "BB", "price": 2.0}],
    }
    # one dispatch number per publication, whatever the views
    assert [s for _, s, _ in whole.got] == [s for _, s, _ in narrow.got] == [1, 2]
    assert hub.board_seq(BOARD, board(1.5, 2), PRICE) == 2
    assert hub.board_seq(BOARD, board(1.5, 2)) == 2
    assert hub.board_seq(BOARD, board(1.0, 1), PRICE) is None
    assert hub.board_seq(BOARD, board(1.5, 2), frozenset({"vwap"})) is None
    await hub.close()


async def test_a_view_is_released_with_its_last_client_and_the_link_with_the_last_view() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    ref = resolve_feed(BOARD)
    a, b, c = Recorder(), Recorder(), Recorder()
    await hub.add(a, ref, PRICE)
    await hub.add(b, ref, PRICE)
    await hub.add(c, ref, frozenset({"vwap"}))
    assert hub.field_sets(BOARD) == 2
    hub.remove(a, ref)
    assert hub.field_sets(BOARD) == 2
    hub.remove(b, ref)
    assert hub.field_sets(BOARD) == 1
    assert stats.redis_subscriptions == 1
    hub._on_message(BOARD.encode(), None, board(1.0, 1))
    assert (len(a.got), len(b.got), len(c.got)) == (0, 0, 1)
    hub._on_resync()
    assert (a.resyncs, c.resyncs) == (0, 1)
    hub.remove(c, ref)
    assert hub.field_sets(BOARD) == 0
    assert hub.subscriber_count(BOARD) == 0
    assert stats.redis_subscriptions == 0
    assert hub._views == {}
    assert hub._exact == {}
    hub.remove(c, ref)  # twice: nothing
    await hub.close()


async def test_whole_clients_leaving_keep_the_views() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    ref = resolve_feed(BOARD)
    whole, narrow = Recorder(), Recorder()
    await hub.add(whole, ref)
    await hub.add(narrow, ref, PRICE)
    hub.remove(whole, ref)
    assert stats.redis_subscriptions == 1
    assert hub.board_seq(BOARD, b"{}") is None
    hub._on_message(BOARD.encode(), None, board(1.0, 1))
    assert len(narrow.got) == 1
    assert whole.got == []
    await hub.add(whole, ref)  # back: a fresh whole tracker, numbered from its first
    hub._on_message(BOARD.encode(), None, board(1.0, 2))
    assert [b.seq for b in whole.boards if b is not None] == [1]
    assert [b.seq for b in narrow.boards if b is not None] == [1, 2]
    await hub.close()


async def test_field_sets_beyond_the_cap_are_refused_and_leave_nothing() -> None:
    assert MAX_FIELD_SETS == 16
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats, max_field_sets=2)
    ref = resolve_feed(BOARD)
    clients = [Recorder() for _ in range(4)]
    await hub.add(clients[0], ref, frozenset({"a"}))
    await hub.add(clients[1], ref, frozenset({"b"}))
    with pytest.raises(TooManyFieldSets):
        await hub.add(clients[2], ref, frozenset({"c"}))
    await hub.add(clients[3], ref, frozenset({"a"}))  # an existing set is always joined
    await hub.add(clients[2], ref)  # and so is the whole board
    assert hub.field_sets(BOARD) == 2
    assert hub.subscriber_count(BOARD) == 4
    hub.remove(clients[1], ref)
    await hub.add(clients[1], ref, frozenset({"c"}))  # a released set makes room
    assert hub.field_sets(BOARD) == 2
    await hub.close()


async def test_a_refusal_on_a_feed_nobody_follows_leaves_no_trace() -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats, max_field_sets=0)
    ref = resolve_feed(BOARD)
    with pytest.raises(TooManyFieldSets):
        await hub.add(Recorder(), ref, PRICE)
    assert hub._views == {}
    assert hub._exact == {}
    assert stats.redis_subscriptions == 0
    await hub.close()


@pytest.mark.parametrize("name", ["quote:AAPL", "quote:*"])
async def test_fields_are_only_for_a_board_by_name(name: str) -> None:
    hub = Hub("redis://127.0.0.1:1/0", WdsStats())
    with pytest.raises(ValueError, match="not a board by name"):
        await hub.add(Recorder(), resolve_feed(name), PRICE)
    assert hub.subscriber_count(name) == 0
    await hub.close()


class _FailingRedis:
    """A cache whose reads fail as a Redis Cluster's do while a lost master's slots are
    not covered yet."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def get(self, name: str) -> bytes | None:
        raise self.error

    async def lrange(self, name: str, start: int, end: int) -> list[bytes]:
        raise self.error

    def scan_iter(self, match: str, count: int) -> AsyncIterator[bytes]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "feed"),
    [
        (SlotNotCoveredError("Slot 5 is not covered by the cluster."), "quote:AAPL"),
        (RedisClusterException("No way to dispatch this command"), "alerts:hod"),
        (RedisConnectionError("refused"), "quote:AAPL"),
        (SlotNotCoveredError("Slot 5 is not covered by the cluster."), "quote:*"),
    ],
)
async def test_a_failed_snapshot_read_is_unavailable_and_counted(
    error: Exception, feed: str
) -> None:
    stats = WdsStats()
    hub = Hub("redis://127.0.0.1:1/0", stats)
    real = hub._redis
    hub._redis = _FailingRedis(error)  # type: ignore[assignment] # only the reads are used
    try:
        with pytest.raises(SnapshotUnavailable, match=type(error).__name__):
            await hub.snapshot(resolve_feed(feed), 10)
    finally:
        hub._redis = real
    assert stats.snapshot_errors == 1
    assert stats.as_dict()["snapshot_errors"] == 1
    await hub.close()
