"""The control plane's drain of a WDS, on the real Redis.

The order goes through the control hash and :class:`~mdp_runtime.RuntimeControl` as in
production. Pinned: every open client socket is closed with 1001 and the reason ``draining``
(the protocol's "reconnect elsewhere"), a new connection is refused the same way while
``/readyz`` says 503, and a resume accepts connections again; the figures count each change.
"""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mdp_cache.control import Desired, write_desired
from mdp_runtime import RuntimeControl

from .test_wds_server import (
    ORIGIN,
    ServerFactory,
    closed_with,
    make_server,
    open_client,
    redis_client,
    subscribe,
)

__all__ = ["make_server", "redis_client"]  # fixtures used by the tests below


async def readyz(port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as reply,
    ):
        return reply.status


async def test_drain_closes_every_socket_with_1001_and_refuses_until_resumed(
    make_server: ServerFactory, redis_client: aioredis.Redis
) -> None:
    server = await make_server()
    other = await make_server()  # another replica: not addressed, keeps serving
    control = RuntimeControl(redis_client, "widget-service", "wds-a", server.set_runtime_state)
    others = RuntimeControl(redis_client, "widget-service", "wds-b", other.set_runtime_state)
    clients = [await open_client(server) for _ in range(3)]
    await subscribe(clients[0], "halts")
    elsewhere = await open_client(other)
    assert await readyz(server.port) == 200

    await write_desired(redis_client, "widget-service", Desired("draining", "alice", 1), "wds-a")
    assert await control.check() == "draining"  # returns once every socket closed
    assert await others.check() == "running"
    for ws in clients:
        assert await closed_with(ws) == 1001
        assert ws.close_reason == "draining"
    assert server.sessions == frozenset()
    assert server.stats.disconnects["drain"] == 3
    assert await readyz(server.port) == 503
    assert await readyz(other.port) == 200

    late = await connect(server.url, origin=ORIGIN)
    assert await closed_with(late) == 1001  # refused after the upgrade, as a browser can read
    assert late.close_reason == "draining"
    assert server.stats.disconnects["drain"] == 4
    await elsewhere.ping()  # the other replica's client was never touched
    status = server.stats.as_dict()
    assert status["draining"] is True
    assert status["control_changes"] == {"draining": 1}

    await write_desired(redis_client, "widget-service", Desired("running", "alice", 2), "wds-a")
    assert await control.check() == "running"
    assert await readyz(server.port) == 200
    again = await open_client(server)
    await subscribe(again, "halts")
    status = server.stats.as_dict()
    assert status["draining"] is False
    assert status["control_changes"] == {"draining": 1, "running": 1}
    for ws in (again, elsewhere):
        await ws.close()


async def test_draining_twice_is_one_change_and_closes_late_sockets_too(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    ws = await open_client(server)
    await server.drain()
    assert await closed_with(ws) == 1001
    await server.drain()  # nothing left to close, nothing counted twice
    assert server.stats.control_changes == {"draining": 1}
    await server.undrain()
    await server.undrain()
    assert server.stats.control_changes == {"draining": 1, "running": 1}
    try:
        again = await open_client(server)
    except ConnectionClosed as exc:  # pragma: no cover - would be the bug
        raise AssertionError("refused after undrain") from exc
    await again.close()
