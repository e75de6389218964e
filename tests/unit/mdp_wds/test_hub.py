"""Dispatch by the hub without Redis: the link is never started, so it stays down."""

from mdp_wds.access import resolve_feed
from mdp_wds.hub import BoardFrame, Hub
from mdp_wds.protocol import Frame
from mdp_wds.stats import WdsStats


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, int, Frame]] = []
        self.resyncs = 0

    def deliver(self, key: str, seq: int, frame: Frame, board: BoardFrame | None = None) -> None:
        self.got.append((key, seq, frame))

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
