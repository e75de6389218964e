"""The Massive websocket server against the real ``massive.WebSocketClient`` (and a raw socket)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from massive import WebSocketClient
from massive.exceptions import AuthError
from massive.websocket.models import (
    EquityAgg,
    EquityQuote,
    EquityTrade,
    FairMarketValue,
    Imbalance,
    LaunchpadValue,
    LimitUpLimitDown,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from mdp_sim import massive_ws
from mdp_sim.faults import MalformedKind
from mdp_sim.massive_ws import MassiveWsConfig, MassiveWsServer

KEY = "test-key"
WAIT = 10.0


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def server() -> AsyncIterator[MassiveWsServer]:
    config = MassiveWsConfig(keys=frozenset({KEY, "other-key"}), close_timeout=0.5)
    async with MassiveWsServer(config) as srv:
        srv.faults.massive.slow_consumer_seconds = 5.0
        yield srv


_seq = itertools.count(1)


def trade(symbol: str, price: float = 10.0) -> dict[str, object]:
    n = next(_seq)
    return {
        "ev": "T",
        "sym": symbol,
        "x": 4,
        "i": str(n),
        "z": 3,
        "p": price,
        "s": 100,
        "c": [12],
        "t": 1_700_000_000_000 + n,
        "q": n,
    }


ONE_OF_EACH: list[dict[str, object]] = [
    trade("AAPL"),
    {"ev": "Q", "sym": "AAPL", "bx": 1, "bp": 9.9, "bs": 2, "ax": 2, "ap": 10.1, "as": 3, "t": 1},
    {"ev": "A", "sym": "AAPL", "v": 100, "av": 1000, "o": 10.0, "c": 10.0, "s": 1, "e": 2},
    {"ev": "AM", "sym": "AAPL", "v": 500, "av": 1000, "o": 10.0, "c": 10.0, "s": 1, "e": 2},
    {"ev": "LULD", "T": "AAPL", "h": 11.0, "l": 9.0, "i": [], "z": 3, "t": 1, "q": 1},
    {"ev": "NOI", "T": "AAPL", "t": 1, "at": 930, "a": "M", "o": 1000, "p": 500, "b": 10.0},
    {"ev": "FMV", "sym": "AAPL", "fmv": 10.02, "t": 1_700_000_000_000_000_000},
    {"ev": "LV", "sym": "AAPL", "val": 10.01, "t": 1_700_000_000_000_000_000},
]
EXPECTED_MODELS = [
    EquityTrade,
    EquityQuote,
    EquityAgg,
    EquityAgg,
    LimitUpLimitDown,
    Imbalance,
    FairMarketValue,
    LaunchpadValue,
]


class Received:
    """Collects what the official client hands to its callback and signals on each batch."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    async def __call__(self, batch: list[Any]) -> None:
        self.items.extend(batch)
        self._changed.set()

    async def until(self, predicate: Callable[[list[Any]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()


def start_client(
    server: MassiveWsServer,
    processor: Callable[[Any], Awaitable[None]],
    subscriptions: list[str],
    *,
    key: str = KEY,
    max_reconnects: int | None = 5,
    **connect_kwargs: Any,
) -> tuple[WebSocketClient, asyncio.Task[None]]:
    client = WebSocketClient(
        api_key=key,
        feed=server.feed,
        secure=False,
        subscriptions=subscriptions,
        max_reconnects=max_reconnects,
    )
    connect_kwargs.setdefault("max_size", None)
    task = asyncio.create_task(client.connect(processor, proxy=None, **connect_kwargs))
    return client, task


async def stop_client(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, WAIT)


async def subscribed(server: MassiveWsServer, topics: set[str], count: int = 1) -> None:
    await server.watch.wait_for(lambda: server.subscriptions().count(topics) == count, WAIT)


# ------------------------------------------------------------------ handshake and routing


async def test_exact_subscription_gets_only_its_symbol(server: MassiveWsServer) -> None:
    received = Received()
    _, task = start_client(server, received, ["T.AAPL"])
    await subscribed(server, {"T.AAPL"})
    server.publish([trade("MSFT"), trade("AAPL", 11.5), trade("MSFT"), trade("AAPL", 12.0)])
    await received.until(lambda items: len(items) >= 2)
    assert [(t.symbol, t.price) for t in received.items] == [("AAPL", 11.5), ("AAPL", 12.0)]
    assert all(isinstance(t, EquityTrade) for t in received.items)
    await stop_client(task)


async def test_every_event_type_arrives_and_decodes(server: MassiveWsServer) -> None:
    received = Received()
    topics = ["T.*", "Q.*", "A.*", "AM.*", "LULD.*", "NOI.*", "FMV.*", "LV.*"]
    _, task = start_client(server, received, topics)
    await subscribed(server, set(topics))
    server.publish(ONE_OF_EACH)
    await received.until(lambda items: len(items) >= len(ONE_OF_EACH))
    assert [type(m) for m in received.items] == EXPECTED_MODELS
    assert received.items[4].symbol == "AAPL"  # LULD keys its ticker by capital T
    await stop_client(task)


async def test_wildcard_and_exact_overlap_deliver_once(server: MassiveWsServer) -> None:
    raw = await _raw_session(server, "T.*,T.AAPL")
    server.publish([trade("AAPL"), trade("ZZZ")])
    frame = json.loads(await raw.recv())
    assert [e["sym"] for e in frame] == ["AAPL", "ZZZ"]
    await raw.close()


async def test_unsubscribe_stops_delivery(server: MassiveWsServer) -> None:
    received = Received()
    client, task = start_client(server, received, ["T.AAPL", "T.MSFT"])
    await subscribed(server, {"T.AAPL", "T.MSFT"})
    client.unsubscribe("T.AAPL")
    await subscribed(server, {"T.MSFT"})
    server.publish([trade("AAPL"), trade("MSFT")])
    await received.until(lambda items: len(items) >= 1)
    assert [t.symbol for t in received.items] == ["MSFT"]
    await stop_client(task)


async def test_frames_are_batched_arrays_under_the_cap(server: MassiveWsServer) -> None:
    raw = await _raw_session(server, "T.*")
    server.publish([trade(f"S{i % 7}") for i in range(1_234)])
    sizes: list[int] = []
    async with asyncio.timeout(WAIT):
        while sum(sizes) < 1_234:
            frame = json.loads(await raw.recv())
            assert isinstance(frame, list)
            sizes.append(len(frame))
    assert max(sizes) <= server.config.max_events_per_frame
    assert len(sizes) >= 3
    await raw.close()


# ------------------------------------------------------------------ protocol details (raw socket)


async def _raw_connect(server: MassiveWsServer) -> ClientConnection:
    ws = await connect(server.url, proxy=None, max_size=None)
    greeting = json.loads(await ws.recv())
    assert greeting == [
        {"ev": "status", "status": "connected", "message": "Connected Successfully"}
    ]
    return ws


async def _raw_session(server: MassiveWsServer, params: str) -> ClientConnection:
    ws = await _raw_connect(server)
    await ws.send(json.dumps({"action": "auth", "params": KEY}))
    assert json.loads(await ws.recv())[0]["status"] == "auth_success"
    await ws.send(json.dumps({"action": "subscribe", "params": params}))
    statuses = json.loads(await ws.recv())
    assert all(s["status"] == "success" for s in statuses)
    return ws


async def test_status_replies_follow_the_vendor_vocabulary(server: MassiveWsServer) -> None:
    ws = await _raw_connect(server)
    await ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL"}))
    assert json.loads(await ws.recv())[0]["status"] == "auth_required"
    await ws.send(json.dumps({"action": "auth", "params": KEY}))
    assert json.loads(await ws.recv())[0]["status"] == "auth_success"
    await ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL,Q.*,XX.AAPL"}))
    replies = json.loads(await ws.recv())
    assert [(r["status"], r["message"]) for r in replies] == [
        ("success", "subscribed to: T.AAPL"),
        ("success", "subscribed to: Q.*"),
        ("error", "unknown topic: XX.AAPL"),
    ]
    await ws.send(json.dumps({"action": "unsubscribe", "params": "T.AAPL"}))
    assert json.loads(await ws.recv()) == [
        {"ev": "status", "status": "success", "message": "unsubscribed to: T.AAPL"}
    ]
    assert server.subscriptions() == [{"Q.*"}]
    await ws.close()


async def test_auth_timeout_closes_a_silent_connection() -> None:
    config = MassiveWsConfig(keys=frozenset({KEY}), auth_timeout=0.2)
    async with MassiveWsServer(config) as server:
        ws = await _raw_connect(server)
        assert json.loads(await ws.recv())[0]["status"] == "auth_timeout"
        await ws.wait_closed()
        assert ws.close_code == 1008
        assert server.metrics.auth_timeouts == 1


async def test_bad_key_raises_auth_error(server: MassiveWsServer) -> None:
    client = WebSocketClient(api_key="wrong", feed=server.feed, secure=False, subscriptions=[])
    with pytest.raises(AuthError):
        await asyncio.wait_for(client.connect(Received(), proxy=None), WAIT)
    assert server.metrics.auth_failures == 1


async def test_unknown_market_path_is_refused(server: MassiveWsServer) -> None:
    with pytest.raises(Exception, match="404"):
        await connect(f"ws://{server.feed}/crypto", proxy=None)


# ------------------------------------------------------------------ one connection per key


async def test_second_connection_kicks_the_older_one(server: MassiveWsServer) -> None:
    first, second = Received(), Received()
    _, first_task = start_client(server, first, ["T.AAPL"], max_reconnects=0)
    await subscribed(server, {"T.AAPL"})
    _, second_task = start_client(server, second, ["T.MSFT"])
    with pytest.raises(ConnectionClosedError) as closed:
        await asyncio.wait_for(first_task, WAIT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert server.metrics.max_connections_kicks == 1
    await subscribed(server, {"T.MSFT"})
    server.publish([trade("MSFT")])
    await second.until(lambda items: len(items) == 1)
    await stop_client(second_task)


async def test_different_keys_may_connect_together(server: MassiveWsServer) -> None:
    _, a = start_client(server, Received(), ["T.AAPL"])
    _, b = start_client(server, Received(), ["T.AAPL"], key="other-key")
    await subscribed(server, {"T.AAPL"}, count=2)
    assert server.metrics.max_connections_kicks == 0
    await stop_client(a)
    await stop_client(b)


# ------------------------------------------------------------------ fault modes


@pytest.mark.parametrize("code", [1011, None], ids=["close-1011", "tcp-abort"])
async def test_abrupt_close_makes_the_client_reconnect(
    server: MassiveWsServer, code: int | None
) -> None:
    received = Received()
    _, task = start_client(server, received, ["T.AAPL"])
    await subscribed(server, {"T.AAPL"})
    assert await server.drop(code) == 1
    await server.watch.wait_for(lambda: server.metrics.authenticated == 2, WAIT)
    await subscribed(server, {"T.AAPL"})  # the client re-sent its subscriptions
    server.publish([trade("AAPL")])
    await received.until(lambda items: len(items) == 1)
    await stop_client(task)


async def test_kick_makes_the_client_reconnect(server: MassiveWsServer) -> None:
    _, task = start_client(server, Received(), ["T.AAPL"])
    await subscribed(server, {"T.AAPL"})
    assert await server.kick(KEY) == 1
    await server.watch.wait_for(lambda: server.metrics.authenticated == 2, WAIT)
    await subscribed(server, {"T.AAPL"})
    assert server.metrics.max_connections_kicks == 1
    await stop_client(task)


async def test_stall_keeps_the_socket_open_but_silent(server: MassiveWsServer) -> None:
    ws = await _raw_session(server, "T.*")
    server.faults.massive.stall = True
    server.publish([trade("STALLED") for _ in range(10)])
    latency = await asyncio.wait_for(await ws.ping(), WAIT)  # pings still answered
    assert latency >= 0
    assert server.metrics.events_dropped_stalled == 10
    server.faults.massive.stall = False
    server.publish([trade("AFTER")])
    frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert [e["sym"] for e in frame] == ["AFTER"]
    assert server.metrics.connections_opened == 1
    await ws.close()


async def test_stalled_massive_client_stays_connected(server: MassiveWsServer) -> None:
    received = Received()
    _, task = start_client(server, received, ["T.*"])
    await subscribed(server, {"T.*"})
    server.faults.massive.stalled_keys.add(KEY)
    server.publish([trade("STALLED")])
    server.faults.massive.stalled_keys.clear()
    server.publish([trade("AFTER")])
    await received.until(lambda items: len(items) >= 1)
    assert [t.symbol for t in received.items] == ["AFTER"]
    assert server.metrics.connections_opened == 1
    await stop_client(task)


async def test_slow_consumer_is_dropped_when_the_client_stops_reading(
    server: MassiveWsServer,
) -> None:
    server.faults.massive.slow_consumer_bytes = 64 * 1024
    release = asyncio.Event()
    batches = 0

    async def stuck(batch: list[Any]) -> None:
        nonlocal batches
        batches += 1
        await release.wait()

    _, task = start_client(server, stuck, ["T.*"])
    await subscribed(server, {"T.*"})

    async def flood() -> None:
        while True:
            server.publish([trade(f"S{i}") for i in range(500)])
            await asyncio.sleep(0)

    flooding = asyncio.create_task(flood())
    await server.watch.wait_for(lambda: server.metrics.slow_consumer_kicks == 1, WAIT)
    flooding.cancel()
    release.set()
    # The client sees the close (1008 or an aborted socket) and reconnects.
    await server.watch.wait_for(lambda: server.metrics.authenticated == 2, WAIT)
    assert batches >= 1
    await stop_client(task)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (MalformedKind.OBJECT, TypeError),
        (MalformedKind.MISSING_EV, KeyError),
        (MalformedKind.BAD_JSON, ValueError),
    ],
)
async def test_malformed_frames_end_the_official_client(
    server: MassiveWsServer, kind: MalformedKind, error: type[Exception]
) -> None:
    _, task = start_client(server, Received(), ["T.*"])
    await subscribed(server, {"T.*"})
    server.faults.massive.malformed_ratio = 1.0
    server.faults.massive.malformed_kinds = (kind,)
    server.publish([trade("AAPL")])
    with pytest.raises(error):
        await asyncio.wait_for(task, WAIT)
    assert server.metrics.malformed_frames >= 1


@pytest.mark.parametrize("kind", [MalformedKind.WRONG_TYPES, MalformedKind.NAN_STRINGS])
async def test_badly_typed_events_reach_the_application(
    server: MassiveWsServer, kind: MalformedKind
) -> None:
    received = Received()
    _, task = start_client(server, received, ["T.*"])
    await subscribed(server, {"T.*"})
    server.faults.massive.malformed_ratio = 1.0
    server.faults.massive.malformed_kinds = (kind,)
    server.publish([trade("AAPL", 12.5)])
    await received.until(lambda items: len(items) >= 2)
    bad, good = received.items[0], received.items[1]
    assert isinstance(bad.price, str)
    assert good.price == 12.5
    await stop_client(task)


def _quick_retries() -> Iterator[float]:
    return itertools.repeat(0.05)


async def test_refused_connections_fail_then_succeed(server: MassiveWsServer) -> None:
    server.refuse_for(3600)
    _, task = start_client(server, Received(), ["T.AAPL"], reconnect_delays=_quick_retries)
    await server.watch.wait_for(lambda: server.metrics.refused_upgrades >= 2, WAIT)
    assert server.metrics.authenticated == 0
    server.refuse_for(0)
    await subscribed(server, {"T.AAPL"})
    await stop_client(task)


async def test_oversized_frame_trips_the_default_client_limit(server: MassiveWsServer) -> None:
    received = Received()
    _, task = start_client(server, received, ["T.AAPL"], max_size=2**20)
    await subscribed(server, {"T.AAPL"})
    server.publish([trade("AAPL")])
    await received.until(lambda items: len(items) == 1)
    assert await server.send_oversized() == 1
    # The client closes with 1009 (message too big) and reconnects.
    await server.watch.wait_for(lambda: server.metrics.authenticated == 2, WAIT)
    await stop_client(task)


async def test_stop_makes_the_client_return(server: MassiveWsServer) -> None:
    _, task = start_client(server, Received(), ["T.AAPL"])
    await subscribed(server, {"T.AAPL"})
    await server.stop()
    await asyncio.wait_for(task, WAIT)  # returns normally: 1001 means "stop", not "retry"
    assert task.exception() is None


async def test_each_event_is_encoded_once_for_all_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = MassiveWsConfig(keys=frozenset({KEY}), one_connection_per_key=False)
    async with MassiveWsServer(config) as server:
        await _encode_once(server, monkeypatch)


async def _encode_once(server: MassiveWsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sockets = [await _raw_session(server, "LULD.AAPL") for _ in range(3)]
    calls: list[object] = []
    real_encode = massive_ws._encode

    def counting(obj: object) -> bytes:
        calls.append(obj)
        return real_encode(obj)

    monkeypatch.setattr(massive_ws, "_encode", counting)
    band = {"ev": "LULD", "T": "AAPL", "h": 11.0, "l": 9.0, "t": 1}
    other = {"ev": "LULD", "T": "MSFT", "h": 11.0, "l": 9.0, "t": 1}
    assert server.publish([other, band]) == 3
    assert calls == [band]  # MSFT matched nobody, so it was never encoded
    for ws in sockets:
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT)) == [band]
        await ws.close()


async def test_an_unencodable_event_is_skipped_not_fatal(server: MassiveWsServer) -> None:
    ws = await _raw_session(server, "T.*")
    assert server.publish([{"ev": "T", "sym": "BAD", "p": object()}, trade("OK")]) == 1
    frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert [e["sym"] for e in frame] == ["OK"]
    assert server.metrics.events_unencodable == 1
    await ws.close()


async def test_events_encoded_beforehand_reach_the_official_client_as_published_ones(
    server: MassiveWsServer,
) -> None:
    received = Received()
    _, task = start_client(server, received, ["T.AAPL", "LULD.*"])
    await subscribed(server, {"T.AAPL", "LULD.*"})
    band = {"ev": "LULD", "T": "MSFT", "h": 11.0, "l": 9.0, "i": [], "z": 3, "t": 1, "q": 1}
    events = [trade("MSFT", 9.0), trade("AAPL", 11.5), band, trade("AAPL", 12.0)]
    encoded = [
        (str(e["ev"]), str(e.get("sym", e.get("T"))), json.dumps(e).encode()) for e in events
    ]
    # Routed by the code and symbol given: MSFT's trade has no subscriber, its band has one.
    assert server.publish_encoded(encoded, flush=True) == 3
    await received.until(lambda items: len(items) >= 3)
    assert [(type(m).__name__, m.symbol) for m in received.items] == [
        ("EquityTrade", "AAPL"),
        ("LimitUpLimitDown", "MSFT"),
        ("EquityTrade", "AAPL"),
    ]
    assert [t.price for t in received.items if isinstance(t, EquityTrade)] == [11.5, 12.0]
    await stop_client(task)


async def test_events_encoded_beforehand_skip_a_stalled_connection(
    server: MassiveWsServer,
) -> None:
    ws = await _raw_session(server, "T.*")
    server.faults.massive.stall = True
    assert server.publish_encoded([("T", "AAPL", json.dumps(trade("AAPL")).encode())]) == 0
    assert server.metrics.events_dropped_stalled == 1
    await ws.close()
