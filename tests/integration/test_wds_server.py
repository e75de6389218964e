"""The WDS against the real Redis: streaming, snapshots, security rules, slow clients, recovery."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from mdp_cache.keys import FEED_SCANNER_TOP_VOLUME, KEY_WDS_REVOKED
from mdp_core.settings import Secret, load
from mdp_core.token import issue_token
from mdp_testing.proxy import TcpProxy
from mdp_wds import WdsSettings, WidgetServer
from mdp_wds.deltas import apply_delta

SECRET = "integration-secret"
ORIGIN = Origin("http://dashboard.test")
WAIT = 10.0

ServerFactory = Callable[..., Awaitable[WidgetServer]]


def token(feeds: list[str] | None = None, ttl: float = 300, now: float | None = None) -> str:
    issued = time.time() if now is None else now
    return issue_token(SECRET, "tester", feeds or ["*"], ttl, issued)


@pytest.fixture
async def redis_client(redis_db_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_db_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def make_server(redis_db_url: str) -> AsyncIterator[ServerFactory]:
    servers: list[WidgetServer] = []

    async def factory(**overrides: Any) -> WidgetServer:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "wdc_redis_url": redis_db_url,
            "token_secret": Secret(SECRET),
            "allowed_origins": (ORIGIN,),
            "auth_timeout_seconds": 1.0,
            "close_timeout_seconds": 0.5,
            "redis_backoff_initial_seconds": 0.02,
            "redis_backoff_max_seconds": 0.2,
        }
        values.update(overrides)
        server = WidgetServer(load(WdsSettings, environ={}, **values))
        await server.start()
        servers.append(server)
        assert await server.hub.wait_connected(WAIT)
        return server

    try:
        yield factory
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> WidgetServer:
    return await make_server()


async def recv(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), within)
    assert isinstance(message, str), "the WDS sends text frames"
    decoded: dict[str, Any] = json.loads(message)
    return decoded


async def recv_op(ws: ClientConnection, op: str, within: float = WAIT) -> dict[str, Any]:
    """The next message with ``op``, skipping others (returns them via the assertion text)."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await recv(ws, within)
        if message["op"] == op:
            return message
        seen.append(message)
        assert len(seen) < 100, seen


async def closed_with(ws: ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    except ConnectionClosed:
        return ws.close_code


async def open_client(
    server: WidgetServer, feeds: list[str] | None = None, **kwargs: Any
) -> ClientConnection:
    ws = await connect(server.url, origin=ORIGIN, **kwargs)
    await ws.send(json.dumps({"op": "auth", "token": token(feeds)}))
    reply = await recv(ws)
    assert reply["op"] == "auth_ok", reply
    return ws


async def open_slow_client(server: WidgetServer) -> ClientConnection:
    """A client that reads only when asked: a 4 KiB receive buffer and a one-message queue."""
    small = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    small.connect(("127.0.0.1", server.port))
    return await open_client(server, sock=small, max_queue=1)


async def subscribe(ws: ClientConnection, *feeds: str, **extra: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"op": "subscribe", "id": 1, "feeds": list(feeds), **extra}))
    return await recv_op(ws, "subscribed")


async def wait_until(condition: Callable[[], bool], within: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# --- streaming -------------------------------------------------------------------------------


async def test_exact_value_feed_snapshot_stream_unsubscribe(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    await redis_client.set("quote:AAPL", json.dumps({"symbol": "AAPL", "price": 1.0}))
    async with await open_client(server) as ws:
        reply = await subscribe(ws, "quote:AAPL")
        assert reply == {"op": "subscribed", "id": 1, "feeds": ["quote:AAPL"]}
        snap = await recv(ws)
        assert snap == {
            "op": "snapshot",
            "feed": "quote:AAPL",
            "data": {"symbol": "AAPL", "price": 1.0},
        }
        await redis_client.publish("quote:AAPL", json.dumps({"symbol": "AAPL", "price": 2.0}))
        update = await recv(ws)
        assert update == {
            "op": "update",
            "feed": "quote:AAPL",
            "data": {"symbol": "AAPL", "price": 2.0},
        }
        assert server.hub.subscriber_count("quote:AAPL") == 1

        await ws.send(json.dumps({"op": "unsubscribe", "id": 2, "feeds": ["quote:AAPL"]}))
        assert await recv(ws) == {"op": "unsubscribed", "id": 2, "feeds": ["quote:AAPL"]}
        assert server.hub.subscriber_count("quote:AAPL") == 0
        await wait_until(lambda: server.stats.redis_subscriptions == 0)
        # Still connected, and nothing arrives for the dropped feed: a ping is answered first.
        await redis_client.publish("quote:AAPL", b'{"price": 3.0}')
        await ws.send(json.dumps({"op": "ping", "id": 3}))
        assert await recv(ws) == {"op": "pong", "id": 3}


async def test_missing_value_snapshot_is_null(server: WidgetServer) -> None:
    async with await open_client(server) as ws:
        await subscribe(ws, "range:ZZZZ")
        assert await recv(ws) == {"op": "snapshot", "feed": "range:ZZZZ", "data": None}


async def test_pattern_feed_delivers_and_shares_one_redis_subscription(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    await redis_client.set("quote:AAPL", b'{"symbol": "AAPL"}')
    await redis_client.set("quote:MSFT", b'{"symbol": "MSFT"}')
    await redis_client.set("quote:x:y", b'{"symbol": "not a feed"}')
    async with await open_client(server) as first, await open_client(server) as second:
        for ws in (first, second):
            await subscribe(ws, "quote:*")
            snaps = [await recv(ws), await recv(ws)]
            assert sorted(s["feed"] for s in snaps) == ["quote:AAPL", "quote:MSFT"]
            assert all(s["op"] == "snapshot" for s in snaps)
        assert server.stats.redis_subscriptions == 1
        assert server.hub.subscriber_count("quote:*") == 2
        await redis_client.publish("quote:x:y", b'{"symbol": "ignored"}')
        await redis_client.publish("quote:TSLA", b'{"symbol": "TSLA", "price": 5}')
        for ws in (first, second):
            update = await recv(ws)
            assert update == {
                "op": "update",
                "feed": "quote:TSLA",
                "data": {"symbol": "TSLA", "price": 5},
            }


async def test_pattern_snapshot_is_capped_by_limit(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    for i in range(5):
        await redis_client.set(f"quote:S{i}", b"{}")
    async with await open_client(server) as ws:
        await subscribe(ws, "quote:*", limit=3)
        snaps = [await recv(ws) for _ in range(3)]
        assert {s["op"] for s in snaps} == {"snapshot"}
        await ws.send(json.dumps({"op": "ping", "id": 9}))
        assert await recv(ws) == {"op": "pong", "id": 9}


async def test_list_feed_snapshot_newest_first_with_limit_and_get(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    for n in range(1, 6):
        await redis_client.lpush("alerts:hod", json.dumps({"n": n}))
    async with await open_client(server) as ws:
        await subscribe(ws, "alerts:hod", limit=2)
        assert await recv(ws) == {
            "op": "snapshot",
            "feed": "alerts:hod",
            "data": [{"n": 5}, {"n": 4}],
        }
        await redis_client.publish("alerts:hod", b'{"n": 6}')
        assert await recv(ws) == {"op": "update", "feed": "alerts:hod", "data": {"n": 6}}
        await ws.send(json.dumps({"op": "get", "id": 7, "feed": "alerts:hod", "limit": 3}))
        reply = await recv(ws)
        assert reply == {
            "op": "snapshot",
            "id": 7,
            "feed": "alerts:hod",
            "data": [{"n": 5}, {"n": 4}, {"n": 3}],
        }


async def test_invalid_published_payload_is_skipped_and_counted(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    async with await open_client(server) as ws:
        await subscribe(ws, "quote:AAPL", snapshot=False)
        await redis_client.publish("quote:AAPL", b"{not json")
        await redis_client.publish("quote:AAPL", b"[1, 2]")
        assert await recv(ws) == {"op": "update", "feed": "quote:AAPL", "data": [1, 2]}
        assert server.stats.bad_payloads == 1


async def test_bad_requests_get_errors_and_the_socket_stays_open(server: WidgetServer) -> None:
    async with await open_client(server) as ws:
        await ws.send("not json")
        assert (await recv(ws))["code"] == "bad_request"
        await ws.send(json.dumps({"op": "dance", "id": 4}))
        reply = await recv(ws)
        assert reply["code"] == "bad_request"
        assert reply["id"] == 4
        await ws.send(json.dumps({"op": "ping", "id": 5}))
        assert await recv(ws) == {"op": "pong", "id": 5}


async def test_nested_json_is_a_counted_violation_before_and_after_auth(
    server: WidgetServer,
) -> None:
    nested = "[" * 5000 + "]" * 5000
    async with connect(server.url, origin=ORIGIN) as ws:
        await ws.send(nested)
        assert await closed_with(ws) == 4001
    assert server.stats.violations["too_deep"] == 1
    async with await open_client(server) as ws:
        await ws.send(nested)
        assert (await recv(ws))["code"] == "bad_request"
        await ws.send(json.dumps({"op": "ping", "id": 5}))
        assert await recv(ws) == {"op": "pong", "id": 5}
    assert server.stats.violations["too_deep"] == 2


# --- security --------------------------------------------------------------------------------


async def test_first_message_must_be_auth(server: WidgetServer) -> None:
    async with connect(server.url, origin=ORIGIN) as ws:
        await ws.send(json.dumps({"op": "subscribe", "feeds": ["quote:AAPL"]}))
        assert await closed_with(ws) == 4001
    assert server.stats.violations["unauthenticated"] == 1


async def test_silent_client_is_closed_after_the_auth_timeout(
    make_server: ServerFactory,
) -> None:
    server = await make_server(auth_timeout_seconds=0.2)
    async with connect(server.url, origin=ORIGIN) as ws:
        assert await closed_with(ws) == 4001
    assert server.stats.disconnects["auth_timeout"] == 1


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        ({"token": "garbage"}, "invalid token"),
        ({"token": issue_token("another-secret", "eve", ["*"], 300, time.time())}, "invalid token"),
        ({"token": issue_token(SECRET, "old", ["*"], 60, time.time() - 120)}, "token expired"),
        ({"key": "guess"}, "invalid credentials"),
    ],
)
async def test_bad_credentials_close_4001(
    server: WidgetServer, credential: dict[str, str], reason: str
) -> None:
    async with connect(server.url, origin=ORIGIN) as ws:
        await ws.send(json.dumps({"op": "auth", **credential}))
        assert await closed_with(ws) == 4001
        assert ws.close_reason == reason


async def test_dev_key_only_when_configured(make_server: ServerFactory) -> None:
    server = await make_server(dev_key=Secret("dev-key"))
    async with connect(server.url, origin=ORIGIN) as ws:
        await ws.send(json.dumps({"op": "auth", "key": "dev-key"}))
        reply = await recv(ws)
        assert reply["op"] == "auth_ok"
        assert reply["feeds"] == ["*"]
        assert reply["expires_at"] is None
        assert reply["server"] == f"mdp-wds/{version('mdp-wds')}"  # never a hand-kept string


async def test_session_closes_when_the_token_expires_and_refresh_extends_it(
    server: WidgetServer,
) -> None:
    async with connect(server.url, origin=ORIGIN) as ws:
        await ws.send(json.dumps({"op": "auth", "token": token(ttl=1.0)}))
        first = await recv(ws)
        assert first["op"] == "auth_ok"
        await ws.send(json.dumps({"op": "auth", "id": 2, "token": token(ttl=2.0)}))
        refreshed = await recv(ws)
        assert refreshed["op"] == "auth_ok"
        assert refreshed["id"] == 2
        assert refreshed["expires_at"] > first["expires_at"]
        assert await closed_with(ws) == 4001
        assert ws.close_reason == "token expired"


async def test_refresh_with_narrower_token_drops_ungranted_feeds(server: WidgetServer) -> None:
    async with await open_client(server, ["quote:*", "alerts:*"]) as ws:
        await subscribe(ws, "quote:AAPL", "alerts:hod", snapshot=False)
        await ws.send(json.dumps({"op": "auth", "id": 3, "token": token(["alerts:*"])}))
        error = await recv(ws)
        assert error["code"] == "forbidden_feed"
        assert (await recv(ws))["op"] == "auth_ok"
        assert server.hub.subscriber_count("quote:AAPL") == 0
        assert server.hub.subscriber_count("alerts:hod") == 1


@pytest.mark.parametrize(
    ("feed", "code"),
    [
        ("news:latest", "forbidden_feed"),  # exists, not granted
        ("mdp:heartbeat:wds:1", "forbidden_feed"),  # internal key
        ("mdp:ref:snapshot:AAPL", "forbidden_feed"),
        ("*", "unknown_feed"),
        ("quote*", "unknown_feed"),
        ("something:else", "unknown_feed"),
    ],
)
async def test_feed_authorization(server: WidgetServer, feed: str, code: str) -> None:
    async with await open_client(server, ["quote:*", "mdp:*"]) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": 5, "feeds": [feed, "quote:AAPL"]}))
        error = await recv(ws)
        assert error["op"] == "error"
        assert error["code"] == code
        assert error["id"] == 5
        assert await recv(ws) == {"op": "subscribed", "id": 5, "feeds": ["quote:AAPL"]}
        await ws.send(json.dumps({"op": "get", "id": 6, "feed": feed}))
        assert (await recv_op(ws, "error"))["code"] == code


async def test_even_a_star_token_cannot_read_internal_keys(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    await redis_client.set("mdp:heartbeat:x:1", b'{"secret": true}')
    async with await open_client(server, ["*"]) as ws:
        await ws.send(json.dumps({"op": "get", "id": 1, "feed": "mdp:heartbeat:x:1"}))
        assert (await recv(ws))["code"] == "forbidden_feed"


async def test_bad_origin_is_refused_at_the_handshake(server: WidgetServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url, origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    assert server.stats.violations["bad_origin"] == 1


async def test_a_refused_origin_is_logged_as_a_bounded_prefix(server: WidgetServer) -> None:
    origin = "https://evil.example/" + "x" * 4_000
    with structlog.testing.capture_logs() as logs, pytest.raises(InvalidStatus):
        await connect(server.url, origin=Origin(origin))
    refused = [log for log in logs if log["event"] == "wds_origin_refused"]
    assert refused == [
        {
            "event": "wds_origin_refused",
            "log_level": "info",
            "origin": origin[:200],
            "origin_chars": len(origin),
        }
    ]


async def test_missing_origin_refused_when_configured(make_server: ServerFactory) -> None:
    server = await make_server(allow_missing_origin=False)
    with pytest.raises(InvalidStatus):
        await connect(server.url)


async def test_oversized_frame_closes_1009(make_server: ServerFactory) -> None:
    server = await make_server(max_frame_bytes=1024)
    async with await open_client(server) as ws:
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 4096}))
        assert await closed_with(ws) == 1009
    await wait_until(lambda: server.stats.disconnects["frame_too_big"] == 1)


async def test_message_flood_closes_4008(make_server: ServerFactory) -> None:
    server = await make_server(rate_per_second=1.0, rate_burst=10)
    async with await open_client(server) as ws:
        try:
            for i in range(200):
                await ws.send(json.dumps({"op": "ping", "id": i}))
        except ConnectionClosed:
            pass
        assert await closed_with(ws) == 4008
    assert server.stats.violations["rate_limited"] == 1


async def test_subscription_cap(make_server: ServerFactory) -> None:
    server = await make_server(max_subscriptions=2)
    async with await open_client(server) as ws:
        await ws.send(
            json.dumps({"op": "subscribe", "id": 1, "feeds": ["quote:A", "quote:B", "quote:C"]})
        )
        error = await recv(ws)
        assert error["code"] == "too_many_subscriptions"
        assert (await recv_op(ws, "subscribed"))["feeds"] == ["quote:A", "quote:B"]


async def test_connection_caps_close_4029(make_server: ServerFactory) -> None:
    server = await make_server(max_connections_per_address=2)
    async with (
        await open_client(server),
        await open_client(server),
        connect(server.url, origin=ORIGIN) as third,
    ):
        assert await closed_with(third) == 4029
    assert server.stats.disconnects["address_cap"] == 1
    capped = await make_server(max_connections=1)
    async with await open_client(capped), connect(capped.url, origin=ORIGIN) as second:
        assert await closed_with(second) == 4029
    assert capped.stats.disconnects["connection_cap"] == 1


async def test_behind_a_trusted_proxy_the_cap_counts_forwarded_addresses(
    make_server: ServerFactory,
) -> None:
    def via_proxy(client: str) -> dict[str, Any]:
        return {"additional_headers": {"X-Forwarded-For": f"192.0.2.1, {client}"}}

    # The test connects from 127.0.0.1, here a trusted proxy: each forwarded client gets its
    # own allowance, and a client repeating itself hits its own cap.
    server = await make_server(max_connections_per_address=1, trusted_proxies=("127.0.0.1",))
    async with (
        await open_client(server, **via_proxy("203.0.113.9")),
        await open_client(server, **via_proxy("203.0.113.10")),
        connect(server.url, origin=ORIGIN, **via_proxy("203.0.113.9")) as again,
    ):
        assert await closed_with(again) == 4029
    assert server.stats.disconnects["address_cap"] == 1
    # Without trusted proxies the header is the client's own word: ignored.
    plain = await make_server(max_connections_per_address=1)
    async with (
        await open_client(plain, **via_proxy("203.0.113.9")),
        connect(plain.url, origin=ORIGIN, **via_proxy("203.0.113.10")) as second,
    ):
        assert await closed_with(second) == 4029


async def test_the_address_cap_counts_an_ipv6_slash_64_as_one_client(
    make_server: ServerFactory,
) -> None:
    def via_proxy(client: str) -> dict[str, Any]:
        return {"additional_headers": {"X-Forwarded-For": client}}

    server = await make_server(max_connections_per_address=2, trusted_proxies=("127.0.0.1",))
    async with (
        await open_client(server, **via_proxy("2001:db8:1:2::1")),
        await open_client(server, **via_proxy("2001:db8:1:2::2")),
        await open_client(server, **via_proxy("2001:db8:1:3::1")),  # another /64
        connect(server.url, origin=ORIGIN, **via_proxy("2001:db8:1:2:ffff::9")) as third,
    ):
        assert await closed_with(third) == 4029
    assert server.stats.disconnects["address_cap"] == 1


# --- slow clients ----------------------------------------------------------------------------


async def test_stalled_client_is_cut_and_does_not_delay_others(
    make_server: ServerFactory, redis_client: aioredis.Redis
) -> None:
    server = await make_server(
        send_queue_messages=16, send_queue_bytes=1 << 20, write_limit_bytes=16_384
    )
    stalled = await open_slow_client(server)
    healthy = await open_client(server)
    await subscribe(stalled, "quote:BIG", snapshot=False)
    await subscribe(healthy, "quote:BIG", snapshot=False)
    padding = "x" * 32_768
    for n in range(200):
        await redis_client.publish("quote:BIG", json.dumps({"n": n, "pad": padding}))
        update = await recv(healthy)
        assert update["data"]["n"] == n
        if server.stats.disconnects["too_slow"]:
            break
    await wait_until(lambda: server.stats.disconnects["too_slow"] == 1)
    # Everyone else keeps streaming after the cut.
    await redis_client.publish("quote:BIG", b'{"n": -1}')
    assert (await recv(healthy))["data"] == {"n": -1}
    await wait_until(lambda: len(server.sessions) == 1)
    await healthy.close()
    stalled.transport.abort()


async def test_a_client_that_falls_behind_then_reads_gets_every_update_in_order(
    make_server: ServerFactory, redis_client: aioredis.Redis
) -> None:
    """Past the write limit the session's writer waits for the peer, then writes the rest."""
    server = await make_server(
        send_queue_messages=1_024,
        send_queue_bytes=16 << 20,
        write_limit_bytes=16_384,
        socket_send_buffer_bytes=16_384,
    )
    behind = await open_slow_client(server)
    await subscribe(behind, "quote:BIG", snapshot=False)
    padding = "x" * 32_768
    sent = 60  # ~2 MB: far more than the socket buffers on both sides hold
    for n in range(sent):
        await redis_client.publish("quote:BIG", json.dumps({"n": n, "pad": padding}))
    await wait_until(lambda: server.stats.messages_in >= sent)
    assert server.stats.messages_out < sent  # the rest waits in the queue for the peer
    received = [(await recv(behind))["data"]["n"] for _ in range(sent)]
    assert received == list(range(sent))
    assert not server.stats.drops
    assert not server.stats.disconnects
    await behind.close()


async def test_drop_oldest_policy_keeps_slow_client_connected(
    make_server: ServerFactory, redis_client: aioredis.Redis
) -> None:
    server = await make_server(
        send_queue_messages=4,
        slow_client_policy="drop_oldest",
        write_limit_bytes=16_384,
    )
    slow = await open_slow_client(server)
    await subscribe(slow, "quote:BIG", snapshot=False)
    padding = "x" * 32_768
    for n in range(100):
        await redis_client.publish("quote:BIG", json.dumps({"n": n, "pad": padding}))
        if server.stats.drops["queue_full"]:
            break
    await wait_until(lambda: server.stats.drops["queue_full"] > 0)
    assert server.stats.disconnects["too_slow"] == 0
    assert len(server.sessions) == 1
    slow.transport.abort()


# --- lifecycle and health --------------------------------------------------------------------


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_health_and_metrics_endpoints(server: WidgetServer) -> None:
    assert await http_get(server.port, "/livez") == (200, "ok\n")
    assert await http_get(server.port, "/readyz") == (200, "ready\n")
    status, body = await http_get(server.port, "/metrics")
    assert status == 200
    assert "mdp_wds_clients 0.0" in body.splitlines()
    assert "mdp_wds_delivery_lag_seconds_count 0.0" in body.splitlines()
    status, body = await http_get(server.port, "/status")
    assert json.loads(body)["ready"] is True
    assert (await http_get(server.port, "/nope"))[0] == 404


async def test_delivery_lag_is_measured_from_the_payload_stamp(
    server: WidgetServer, redis_client: aioredis.Redis
) -> None:
    async with await open_client(server) as ws:
        await subscribe(ws, "quote:AAPL", snapshot=False)
        await redis_client.publish("quote:AAPL", json.dumps({"as_of_ms": time.time() * 1000}))
        await recv(ws)
        await wait_until(lambda: server.stats.lag.count == 1)


async def test_graceful_stop_closes_clients_with_1001(make_server: ServerFactory) -> None:
    server = await make_server()
    ws = await open_client(server)
    await subscribe(ws, "quote:AAPL", snapshot=False)
    stopping = asyncio.ensure_future(server.stop())
    assert await closed_with(ws) == 1001
    await stopping
    assert server.stats.disconnects["shutdown"] == 1


# --- Redis connection loss -------------------------------------------------------------------


async def test_recovers_from_redis_connection_loss_and_resends_snapshots(
    make_server: ServerFactory, redis_client: aioredis.Redis, redis_db_url: str
) -> None:
    proxy = TcpProxy.for_url(redis_db_url)
    await proxy.start()
    try:
        server = await make_server(wdc_redis_url=proxy.proxied(redis_db_url))
        await redis_client.set("quote:AAPL", b'{"v": 1}')
        async with await open_client(server) as ws:
            await subscribe(ws, "quote:AAPL", "news:ticker:*")
            assert (await recv(ws))["data"] == {"v": 1}
            await proxy.cut()
            await wait_until(lambda: not server.hub.connected)
            assert (await http_get(server.port, "/readyz"))[0] == 503
            # Missed while disconnected: only a fresh snapshot can bring it back.
            await redis_client.set("quote:AAPL", b'{"v": 2}')
            await redis_client.publish("quote:AAPL", b'{"v": 2}')
            await proxy.restore()
            snap = await recv_op(ws, "snapshot")
            assert snap == {"op": "snapshot", "feed": "quote:AAPL", "data": {"v": 2}}
            assert server.stats.redis_reconnects == 1
            await redis_client.publish("quote:AAPL", b'{"v": 3}')
            assert (await recv_op(ws, "update"))["data"] == {"v": 3}
            await redis_client.publish("news:ticker:AAPL", b'{"title": "t"}')
            assert (await recv_op(ws, "update"))["feed"] == "news:ticker:AAPL"
    finally:
        await proxy.close()


# --- handshakes the library refuses -------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n",  # TLS on the plain port
        b"GET /ws HTTP/1.1\r\nHost: wds\r\nOrigin: http://dashboard.test\r\n\r\n",  # no upgrade
        b"GET /ws HTTP/1.1\r\nHost: wds\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["not-http", "no-upgrade", "huge-header"],
)
async def test_a_handshake_the_library_refuses_is_counted_and_others_are_served(
    make_server: ServerFactory, raw: bytes
) -> None:
    # websockets answered these (400, 426, 431) and logged them; /metrics saw nothing.
    server = await make_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        await asyncio.wait_for(reader.read(), WAIT)  # answered (or not) and closed
    finally:
        writer.close()
    await wait_until(lambda: server.stats.violations["bad_handshake"] == 1)
    assert "mdp_wds_violations_total" in server.stats.prometheus("test").decode()
    ws = await open_client(server)  # served as before
    await ws.send(json.dumps({"op": "ping", "id": 1}))
    assert await recv(ws) == {"op": "pong", "id": 1}
    await ws.close()
    assert server.stats.violations["bad_handshake"] == 1  # a good one is no failure


# --- revoked login sessions ------------------------------------------------------------------


@pytest.mark.parametrize("scp_clock_offset", [0.0, -60.0], ids=["same-clock", "scp-behind"])
async def test_a_token_of_an_ended_session_is_refused_and_its_live_socket_closed(
    make_server: ServerFactory, redis_client: aioredis.Redis, scp_clock_offset: float
) -> None:
    # The SCP scores revocations by its own clock: the WDS polled from its own "now", so with
    # the SCP a minute behind it never saw one and the socket stayed open to its expiry.
    server = await make_server(revocation_poll_seconds=0.05)
    now = time.time()
    live = issue_token(SECRET, "ann", ["*"], 300, now, session_id="s-live")
    other = issue_token(SECRET, "bob", ["*"], 300, now, session_id="s-other")
    sockets = []
    for value in (live, other):
        ws = await connect(server.url, origin=ORIGIN)
        await ws.send(json.dumps({"op": "auth", "token": value}))
        assert (await recv(ws))["op"] == "auth_ok"
        sockets.append(ws)
    # What the control plane does at logout: add the session id to the revoked set.
    scored = (now + scp_clock_offset) * 1000
    await redis_client.zadd(KEY_WDS_REVOKED.name(), {"s-live": scored})
    assert await closed_with(sockets[0]) == 4001
    assert sockets[0].close_reason == "session ended"
    await sockets[1].send(json.dumps({"op": "ping", "id": 1}))
    assert (await recv(sockets[1]))["op"] == "pong"  # another session is untouched
    await sockets[1].close()
    async with connect(server.url, origin=ORIGIN) as ws:
        await ws.send(json.dumps({"op": "auth", "token": live}))
        assert await closed_with(ws) == 4001  # refused at auth, though not yet expired
    await wait_until(lambda: server.stats.disconnects["session_revoked"] == 2)
    assert server.stats.violations["token_revoked"] == 1


# --- boards as deltas: snapshot + deltas equal the server's board at every step ------------

BOARD = FEED_SCANNER_TOP_VOLUME.name()


def board(as_of_ms: int, symbols: list[str], price: float) -> bytes:
    rows = [{"symbol": s, "price": price + n, "volume": n} for n, s in enumerate(symbols)]
    return json.dumps({"board": "top_volume", "as_of_ms": as_of_ms, "rows": rows}).encode()


class DeltaClient:
    """What the dashboard does: keep the board and its number, apply deltas, resync on gaps."""

    def __init__(self) -> None:
        self.document: Any = None
        self.seq: int | None = None
        self.gaps = 0

    def take(self, message: dict[str, Any]) -> bool:
        """Fold one message in; False when a delta does not follow (the client must resync)."""
        if message["op"] in ("snapshot", "update"):
            self.document, self.seq = message["data"], message.get("seq")
            return True
        assert message["op"] == "delta"
        if self.seq is None or message["base"] != self.seq:
            self.gaps += 1
            return False
        self.document = apply_delta(self.document, message["data"], "symbol")
        self.seq = message["seq"]
        return True


async def test_a_board_before_any_publication_then_deltas(
    make_server: ServerFactory, redis_client: aioredis.Redis
) -> None:
    server: WidgetServer = await make_server()
    await redis_client.set(BOARD, board(1, ["AA", "BB"], 1.0))
    async with await open_client(server) as ws, await open_client(server) as plain:
        await subscribe(ws, BOARD, deltas=True)
        await subscribe(plain, BOARD)
        snap = await recv(ws)
        assert (snap["op"], snap["seq"]) == ("snapshot", None)  # the hub has seen none yet
        assert "seq" not in await recv(plain)  # a plain subscriber's snapshot is unchanged
        client = DeltaClient()
        client.take(snap)
        second = board(2, ["BB", "AA"], 1.0)
        await redis_client.set(BOARD, second)
        await redis_client.publish(BOARD, second)
        whole = await recv(ws)
        assert (whole["op"], whole["seq"]) == ("update", 1)  # unknown base: whole
        client.take(whole)
        third = board(3, ["BB", "AA", "CC"], 2.0)
        await redis_client.set(BOARD, third)
        await redis_client.publish(BOARD, third)
        delta = await recv(ws)
        assert (delta["op"], delta["seq"], delta["base"]) == ("delta", 2, 1)
        assert client.take(delta)
        assert client.document == json.loads(third)
        assert (await recv(plain))["op"] == "update"
        assert (await recv(plain))["data"] == json.loads(third)  # plain: always whole
        # A later subscriber whose snapshot is the last publication continues with deltas.
        async with await open_client(server) as late:
            await subscribe(late, BOARD, deltas=True)
            assert (await recv(late))["seq"] == 2
            # A get answers with the number too (a client resyncing after a gap).
            await late.send(json.dumps({"op": "get", "id": 9, "feed": BOARD}))
            assert (await recv_op(late, "snapshot"))["seq"] == 2
        assert server.stats.deltas_out == 1


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(st.sampled_from(["AA", "BB", "CC", "DD"]), unique=True, max_size=4),
            st.sampled_from([1.0, 2.0]),
        ),
        min_size=1,
        max_size=6,
    )
)
async def test_snapshot_plus_deltas_equals_the_servers_board_at_every_step(
    make_server: ServerFactory, redis_client: aioredis.Redis, steps: list[tuple[list[str], float]]
) -> None:
    server: WidgetServer = await make_server()
    async with await open_client(server) as ws, await open_client(server) as plain:
        await redis_client.set(BOARD, board(0, ["AA"], 1.0))
        await subscribe(plain, BOARD)
        await recv(plain)
        await redis_client.publish(BOARD, board(0, ["AA"], 1.0))  # the hub numbers it
        await recv(plain)
        await subscribe(ws, BOARD, deltas=True)
        client = DeltaClient()
        client.take(await recv(ws))
        for as_of, (symbols, price) in enumerate(steps, start=1):
            payload = board(as_of, symbols, price)
            await redis_client.set(BOARD, payload)
            await redis_client.publish(BOARD, payload)
            assert client.take(await recv(ws))
            assert client.document == json.loads(payload) == (await recv(plain))["data"]
        assert client.gaps == 0


async def test_a_resync_job_that_fails_closes_a_silent_client_at_once(
    server: WidgetServer, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's resync re-reads every snapshot while the client may never speak again: a read
    failing unexpectedly must not leave the client's feeds held for a snapshot that never
    comes. The client is closed with 1011, and reconnects."""
    await redis_client.set("quote:AAPL", b'{"price": 1.0}')
    async with await open_client(server) as ws:
        await subscribe(ws, "quote:AAPL")
        assert (await recv(ws))["op"] == "snapshot"

        async def broken(*args: object) -> object:
            raise RuntimeError("a bug in a read")

        monkeypatch.setattr(server.hub, "snapshot", broken)
        server.hub._on_resync()  # what the Redis link does when it comes back
        assert await closed_with(ws) == 1011
    assert server.stats.disconnects["internal_error"] == 1
