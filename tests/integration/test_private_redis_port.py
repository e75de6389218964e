"""The test kit's private ``redis-server`` never serves a test from another process's port.

Its port is picked free and bound a moment later; another process can take it in between.
"""

from __future__ import annotations

import socket

import pytest
import redis.asyncio as aioredis

from mdp_testing.redis_server import RedisServer, RedisServerUnavailable


async def _pid(server: RedisServer) -> int:
    client = aioredis.from_url(server.url())
    try:
        return int((await client.info("server"))["process_id"])
    finally:
        await client.aclose()


async def test_a_port_taken_by_a_silent_listener_moves_the_server(taken_port: int) -> None:
    server = RedisServer()
    server.port = taken_port
    try:
        await server.start()
        assert server.port != taken_port
        assert server._process is not None
        assert await _pid(server) == server._process.pid
    finally:
        await server.close()


async def test_a_port_taken_by_another_redis_moves_the_server_instead_of_sharing_it() -> None:
    other, server = RedisServer(), RedisServer()
    await other.start()
    server.port = other.port
    try:
        await server.start()
        assert server.port != other.port
        assert server._process is not None
        assert await _pid(server) == server._process.pid  # not the other's, which answered first
    finally:
        await server.close()
        await other.close()


async def test_a_restart_keeps_its_port_and_refuses_when_it_was_taken_meanwhile() -> None:
    server = RedisServer()
    await server.start()
    port = server.port
    await server.crash()
    await server.start()  # again, on its own port
    assert server.port == port
    await server.crash()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        try:
            with pytest.raises(RedisServerUnavailable, match=f"port {port} was taken"):
                await server.start()
        finally:
            await server.close()
