"""Sharded pub/sub of the WDS without Redis: slot maps, routing, and the link fed raw bytes.

The link tests run the real :class:`~mdp_wds.link.PubSubLink` against a loopback socket that
plays Redis: the test reads the commands the link writes and answers with the exact bytes a
Redis 7 cluster node sends (``ssubscribe`` confirmations, ``smessage``, ``-MOVED``, a
server-initiated ``sunsubscribe``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from mdp_cache.client import slot_of
from mdp_core.backoff import BackoffPolicy
from mdp_wds.link import PubSubLink, RespError, moved_slot
from mdp_wds.resp import RespParser
from mdp_wds.shards import ClusterPubSub, SlotMap, parse_cluster_slots

FAST = BackoffPolicy(initial_seconds=0.01, max_seconds=0.05, jitter=0.0)
WAIT = 5.0


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def push(*items: bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(items)]
    out += [b":%d\r\n" % i if isinstance(i, int) else bulk(i) for i in items]
    return b"".join(out)


# A CLUSTER SLOTS reply of a three-master cluster, as Redis 7.0 sends it (replica, node ids).
CLUSTER_SLOTS = (
    b"*3\r\n"
    b"*4\r\n:0\r\n:5460\r\n"
    b"*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nm1\r\n"
    b"*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nr1\r\n"
    b"*4\r\n:10923\r\n:16383\r\n"
    b"*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nm3\r\n"
    b"*3\r\n$1\r\n?\r\n:7006\r\n$2\r\nr3\r\n"
    b"*3\r\n:5461\r\n:10922\r\n"
    b"*3\r\n$0\r\n\r\n:7002\r\n$2\r\nm2\r\n"
)


def slot_map() -> SlotMap:
    (reply,) = RespParser().feed(CLUSTER_SLOTS)
    return parse_cluster_slots(reply, "10.0.0.9")


# --- slot maps and routing ---------------------------------------------------------------


def test_cluster_slots_reply_gives_each_range_its_master() -> None:
    slots = slot_map()
    assert slots.master_of(0) == ("127.0.0.1", 7001)
    assert slots.master_of(5460) == ("127.0.0.1", 7001)
    assert slots.master_of(5461) == ("10.0.0.9", 7002)  # an empty endpoint: the node asked
    assert slots.master_of(10922) == ("10.0.0.9", 7002)
    assert slots.master_of(10923) == ("127.0.0.1", 7003)
    assert slots.master_of(16383) == ("127.0.0.1", 7003)
    assert set(slots.nodes) == {
        ("127.0.0.1", 7001),
        ("127.0.0.1", 7004),
        ("127.0.0.1", 7003),
        ("10.0.0.9", 7006),
        ("10.0.0.9", 7002),
    }


def test_a_slot_no_range_covers_has_no_master() -> None:
    (reply,) = RespParser().feed(b"*1\r\n*3\r\n:100\r\n:200\r\n*2\r\n$1\r\nh\r\n:1\r\n")
    slots = parse_cluster_slots(reply, "seed")
    assert slots.master_of(99) is None
    assert slots.master_of(150) == ("h", 1)
    assert slots.master_of(201) is None


@pytest.mark.parametrize(
    "name", ["quote:AAPL", "bars:MSFT", "scanner:top:volume", "alerts:hod", "{AAPL}:x"]
)
def test_a_name_goes_to_the_master_of_its_crc16_slot(name: str) -> None:
    slots = slot_map()
    assert slots.route(name) == slots.master_of(slot_of(name))
    assert slots.route(name.encode()) == slots.route(name)


def test_a_hash_tag_routes_by_the_tag_only() -> None:
    slots = slot_map()
    assert slots.route("{AAPL}:quote") == slots.route("{AAPL}:bars") == slots.route("AAPL")


@pytest.mark.parametrize(
    "reply",
    [
        b"-ERR This instance has cluster support disabled\r\n",
        b"*1\r\n*2\r\n:0\r\n:10\r\n",
        b"*1\r\n*3\r\n:0\r\n:10\r\n*1\r\n$1\r\nh\r\n",
        b"*1\r\n*3\r\n$1\r\n0\r\n:10\r\n*2\r\n$1\r\nh\r\n:1\r\n",
    ],
)
def test_a_reply_that_is_not_a_slot_map_is_refused(reply: bytes) -> None:
    (value,) = RespParser().feed(reply)
    with pytest.raises(ValueError, match="CLUSTER SLOTS"):
        parse_cluster_slots(value, "seed")


@pytest.mark.parametrize(
    ("error", "slot"),
    [
        ("MOVED 3999 127.0.0.1:6381", 3999),
        ("ASK 12 10.0.0.2:7000", 12),
        ("ERR unknown command", None),
        ("MOVED x 127.0.0.1:6381", None),
        ("CLUSTERDOWN The cluster is down", None),
    ],
)
def test_redirections_name_their_slot(error: str, slot: int | None) -> None:
    assert moved_slot(error) == slot


# --- the RESP replies of sharded pub/sub -------------------------------------------------


def test_sharded_pub_sub_replies_parse_in_any_chunking() -> None:
    stream = (
        push(b"ssubscribe", b"quote:AAPL", 1)
        + push(b"smessage", b"quote:AAPL", b'{"p":1.5}')
        + push(b"sunsubscribe", b"quote:AAPL", 0)
        + b"-MOVED 3999 127.0.0.1:7002\r\n"
    )
    expected = [
        [b"ssubscribe", b"quote:AAPL", 1],
        [b"smessage", b"quote:AAPL", b'{"p":1.5}'],
        [b"sunsubscribe", b"quote:AAPL", 0],
    ]
    for cut in range(len(stream) + 1):
        parser = RespParser()
        replies = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert replies[:3] == expected
        assert len(replies) == 4
        assert getattr(replies[3], "message", None) == "MOVED 3999 127.0.0.1:7002"


# --- the link against a loopback "Redis" ---------------------------------------------------


@dataclass
class FakeNode:
    """A socket that plays one Redis node: records commands, sends what the test says."""

    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    commands: asyncio.Queue[list[bytes]] = field(default_factory=asyncio.Queue)
    #: Connections the client closed (the node read their end).
    ended: int = 0

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        parser = RespParser()  # a client's commands are RESP arrays of bulk strings too
        while data := await reader.read(65536):
            for command in parser.feed(data):
                assert isinstance(command, list)
                await self.commands.put([c for c in command if isinstance(c, bytes)])
        self.ended += 1

    async def command(self) -> list[bytes]:
        return await asyncio.wait_for(self.commands.get(), WAIT)

    def send(self, data: bytes) -> None:
        self.writers[-1].write(data)

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()
    await fake.start()
    yield fake
    await fake.close()


@dataclass
class Events:
    messages: list[tuple[bytes, bytes | None, bytes]] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    resyncs: int = 0


def sharded_link(node: FakeNode, events: Events) -> PubSubLink:
    def resynced() -> None:
        events.resyncs += 1

    return PubSubLink(
        f"redis://127.0.0.1:{node.port}",
        lambda channel, pattern, payload: events.messages.append((channel, pattern, payload)),
        on_resync=resynced,
        backoff=FAST,
        sharded=True,
        on_moved=events.moved.append,
    )


async def until(condition: Callable[[], object]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_a_sharded_link_ssubscribes_and_delivers_smessages(node: FakeNode) -> None:
    events = Events()
    link = sharded_link(node, events)
    link.start()
    try:
        assert await link.wait_connected(WAIT)
        pending = asyncio.ensure_future(link.subscribe("quote:AAPL", "channel"))
        assert await node.command() == [b"SSUBSCRIBE", b"quote:AAPL"]
        assert not pending.done()
        node.send(push(b"ssubscribe", b"quote:AAPL", 1))
        assert await asyncio.wait_for(pending, WAIT) is True
        assert link.is_active("quote:AAPL", "channel")
        node.send(push(b"smessage", b"quote:AAPL", b'{"p":1}'))
        await until(lambda: events.messages)
        assert events.messages == [(b"quote:AAPL", None, b'{"p":1}')]
        link.unsubscribe("quote:AAPL", "channel")
        assert await node.command() == [b"SUNSUBSCRIBE", b"quote:AAPL"]
        node.send(push(b"sunsubscribe", b"quote:AAPL", 0))  # the answer: not a move
        await asyncio.sleep(0.05)
        assert events.moved == []
    finally:
        await link.stop()


async def test_a_moved_answer_is_reported_and_the_link_stays_up(node: FakeNode) -> None:
    events = Events()
    link = sharded_link(node, events)
    link.start()
    try:
        assert await link.wait_connected(WAIT)
        pending = asyncio.ensure_future(link.subscribe("quote:AAPL", "channel"))
        await node.command()
        node.send(b"-MOVED %d 127.0.0.1:7002\r\n" % slot_of("quote:AAPL"))
        assert await asyncio.wait_for(pending, WAIT) is False
        assert events.moved == [slot_of("quote:AAPL")]
        assert link.connected
        assert not link.is_active("quote:AAPL", "channel")
        assert not link.is_pending("quote:AAPL", "channel")
    finally:
        await link.stop()


async def test_a_server_sent_sunsubscribe_is_a_move(node: FakeNode) -> None:
    events = Events()
    link = sharded_link(node, events)
    link.start()
    try:
        assert await link.wait_connected(WAIT)
        pending = asyncio.ensure_future(link.subscribe("bars:MSFT", "channel"))
        await node.command()
        node.send(push(b"ssubscribe", b"bars:MSFT", 1))
        assert await asyncio.wait_for(pending, WAIT)
        node.send(push(b"sunsubscribe", b"bars:MSFT", 0))  # the slot migrated away
        await until(lambda: events.moved)
        assert events.moved == [slot_of("bars:MSFT")]
        assert not link.is_active("bars:MSFT", "channel")
        link.unsubscribe("bars:MSFT", "channel")  # ended by Redis: nothing to send (MOVED)
        link.unsubscribe("never:subscribed", "channel")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(node.commands.get(), 0.1)
    finally:
        await link.stop()


async def test_a_reconnect_resubscribes_one_ssubscribe_per_channel(node: FakeNode) -> None:
    events = Events()
    link = sharded_link(node, events)
    link.start()
    try:
        assert await link.wait_connected(WAIT)
        names = [b"quote:AAPL", b"quote:MSFT"]  # different slots: one command each
        pending = [asyncio.ensure_future(link.subscribe(n.decode(), "channel")) for n in names]
        for name in names:
            assert await node.command() == [b"SSUBSCRIBE", name]
            node.send(push(b"ssubscribe", name, 1))
        assert all(await asyncio.gather(*pending))
        node.drop()
        await until(lambda: not link.connected)
        again = {tuple(await node.command()) for _ in names}
        assert again == {(b"SSUBSCRIBE", n) for n in names}
        assert not link.connected  # not before Redis confirmed them all
        for name in names:
            node.send(push(b"ssubscribe", name, 1))
        await until(lambda: link.connected)
        assert events.resyncs == 1
    finally:
        await link.stop()


async def test_a_moved_answer_while_resubscribing_does_not_hold_the_link_down(
    node: FakeNode,
) -> None:
    events = Events()
    link = sharded_link(node, events)
    link.start()
    try:
        assert await link.wait_connected(WAIT)
        pending = asyncio.ensure_future(link.subscribe("quote:AAPL", "channel"))
        await node.command()
        node.send(push(b"ssubscribe", b"quote:AAPL", 1))
        assert await pending
        node.drop()
        assert await node.command() == [b"SSUBSCRIBE", b"quote:AAPL"]
        node.send(b"-MOVED %d 127.0.0.1:7002\r\n" % slot_of("quote:AAPL"))
        await until(lambda: link.connected)
        assert events.moved == [slot_of("quote:AAPL")]
    finally:
        await link.stop()


async def test_any_other_error_ends_the_connection(node: FakeNode) -> None:
    events = Events()
    link = sharded_link(node, events)
    link.start()
    try:
        assert await link.wait_connected(WAIT)
        pending = asyncio.ensure_future(link.subscribe("quote:AAPL", "channel"))
        await node.command()
        node.send(b"-CLUSTERDOWN The cluster is down\r\n")
        assert await asyncio.wait_for(pending, WAIT) is False  # dropped; retried on reconnect
        assert await node.command() == [b"SSUBSCRIBE", b"quote:AAPL"]
    finally:
        await link.stop()


async def test_a_link_closes_its_connection_however_the_session_ends(node: FakeNode) -> None:
    """Even a callback failing as the link comes up (before it reads a reply) closes the
    connection: a writer left open is a socket leaked until the garbage collector warns."""

    def on_state(up: bool) -> None:
        if up:
            raise RuntimeError("a callback failed")

    link = PubSubLink(f"redis://127.0.0.1:{node.port}", lambda *_: None, on_state=on_state)
    link.start()
    await until(lambda: node.ended == 1)
    with pytest.raises(RuntimeError, match="a callback failed"):
        await link.stop()


async def test_stopping_a_link_keeps_the_callers_own_cancellation(node: FakeNode) -> None:
    """A caller cancelled while it waits for a link to stop is cancelled, not resumed: the
    cluster's map keeper, cancelled while it stopped a demoted master's link, went on opening
    links after its own stop."""
    link = sharded_link(node, Events())
    link.start()
    assert await link.wait_connected(WAIT)
    stopping = asyncio.ensure_future(link.stop())
    await asyncio.sleep(0)  # it is waiting for the link's task now
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await until(lambda: node.ended == 1)


def test_a_plain_link_still_raises_on_a_moved_answer() -> None:
    link = PubSubLink("redis://127.0.0.1:1", lambda *_: None)
    (error,) = RespParser().feed(b"-MOVED 1 127.0.0.1:7002\r\n")
    with pytest.raises(RespError, match="MOVED"):
        link._handle(error)


# --- the cluster coordinator: routing and no double delivery -------------------------------


async def test_names_follow_their_slot_and_only_the_owner_delivers() -> None:
    got: list[bytes] = []
    cluster = ClusterPubSub(
        "redis+cluster://127.0.0.1:1", lambda c, p, m: got.append(m), backoff=FAST
    )
    try:
        name = "quote:AAPL"
        slot = slot_of(name)
        before = SlotMap((0,), (16383,), (("127.0.0.1", 2),), (("127.0.0.1", 2),))
        await cluster._apply(before)
        assert await cluster.subscribe(name, "channel") is False  # nobody listens on port 2
        assert cluster.owner(name) == ("127.0.0.1", 2)
        after = SlotMap(
            (0, slot, slot + 1),
            (slot - 1, slot, 16383),
            (("127.0.0.1", 2), ("127.0.0.1", 3), ("127.0.0.1", 2)),
            (("127.0.0.1", 2), ("127.0.0.1", 3)),
        )
        await cluster._apply(after)
        assert cluster.owner(name) == ("127.0.0.1", 3)
        assert set(cluster.shards) == {("127.0.0.1", 2), ("127.0.0.1", 3)}
        cluster._shard_messages(("127.0.0.1", 2))(name.encode(), None, b"late, old shard")
        cluster._shard_messages(("127.0.0.1", 3))(name.encode(), None, b"new shard")
        assert got == [b"new shard"]
        assert cluster.subscription_count == 1
        cluster.unsubscribe(name, "channel")
        cluster._shard_messages(("127.0.0.1", 3))(name.encode(), None, b"after leaving")
        assert got == [b"new shard"]
        # A master that is no longer one loses its link.
        await cluster._apply(SlotMap((0,), (16383,), (("127.0.0.1", 3),), (("127.0.0.1", 3),)))
        assert set(cluster.shards) == {("127.0.0.1", 3)}
        assert not cluster.connected
    finally:
        await cluster.stop()


@dataclass
class ConfirmingNode(FakeNode):
    """A node that confirms every subscribe on its own connection, unless its kind is held."""

    #: Subscribe commands (b"SSUBSCRIBE", b"PSUBSCRIBE") whose confirmations wait for release.
    held: set[bytes] = field(default_factory=set)
    parked: list[tuple[bytes, asyncio.StreamWriter, bytes]] = field(default_factory=list)
    #: The connection that last sent each subscribe command.
    sender: dict[bytes, asyncio.StreamWriter] = field(default_factory=dict)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        parser = RespParser()
        while data := await reader.read(65536):
            for command in parser.feed(data):
                assert isinstance(command, list)
                verb, *names = [c for c in command if isinstance(c, bytes)]
                if verb not in {b"SSUBSCRIBE", b"PSUBSCRIBE"}:
                    continue
                self.sender[verb] = writer
                reply = b"".join(push(verb.lower(), n, i) for i, n in enumerate(names, 1))
                if verb in self.held:
                    self.parked.append((verb, writer, reply))
                else:
                    writer.write(reply)
        self.ended += 1

    def release(self, verb: bytes) -> None:
        self.held.discard(verb)
        for _, writer, reply in [p for p in self.parked if p[0] == verb]:
            writer.write(reply)
        self.parked = [p for p in self.parked if p[0] != verb]


async def test_links_that_come_back_together_re_send_the_snapshots_once() -> None:
    """A gap closes with one re-send, once every link is active again, not one per link.

    The node plays a master that serves both the pattern link (the URL's node) and the
    shard link of a name, as when the URL's master fails over: both links drop together.
    """
    node = ConfirmingNode()
    await node.start()
    resyncs: list[bool] = []
    cluster = ClusterPubSub(
        f"redis+cluster://127.0.0.1:{node.port}",
        lambda c, p, m: None,
        on_resync=lambda: resyncs.append(cluster.connected),
        backoff=FAST,
    )
    both = {b"SSUBSCRIBE", b"PSUBSCRIBE"}
    try:
        here = ("127.0.0.1", node.port)
        cluster._patterns.start()  # what start() does, without the slot-map reader
        await cluster._apply(SlotMap((0,), (16383,), (here,), (here,)))
        await until(lambda: cluster.connected)
        assert await cluster.subscribe("quote:*", "pattern")
        assert await cluster.subscribe("quote:AAPL", "channel")
        assert cluster.connected
        assert resyncs == []  # first subscriptions are no gap

        node.held = set(both)
        node.drop()  # both links at once
        await until(lambda: len(node.parked) == 2)  # both reconnected, neither confirmed
        assert resyncs == []
        node.release(b"SSUBSCRIBE")
        shard = cluster.shards[here]
        await until(lambda: shard.connected)
        assert shard.is_active("quote:AAPL", "channel")
        assert resyncs == []  # the name is back, the patterns are not: no re-send yet
        node.release(b"PSUBSCRIBE")
        await until(lambda: cluster.connected)
        assert resyncs == [True]  # one re-send, with everything active

        node.held = set(both)
        node.sender[b"SSUBSCRIBE"].transport.abort()  # the shard link alone
        await until(lambda: len(node.parked) == 1)
        assert resyncs == [True]
        node.release(b"SSUBSCRIBE")
        await until(lambda: cluster.connected)
        assert resyncs == [True, True]  # one link alone: one re-send too
    finally:
        await cluster.stop()
        await node.close()
