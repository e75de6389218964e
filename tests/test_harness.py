"""The suite's own guards work: loopback-only networking and the server fixtures."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

# Documentation ranges (RFC 5737 / RFC 3849): never routed, so nothing leaks even on failure.
OUTSIDE_V4 = ("192.0.2.10", 80)
OUTSIDE_V6 = ("2001:db8::10", 80)


def test_connect_to_a_non_loopback_address_is_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(RuntimeError, match="only connect to loopback"),
    ):
        sock.connect(OUTSIDE_V4)


def test_connect_ex_to_a_non_loopback_ipv6_address_is_refused() -> None:
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock,
        pytest.raises(RuntimeError, match="only connect to loopback"),
    ):
        sock.connect_ex(OUTSIDE_V6)


def test_create_connection_and_name_resolution_are_refused() -> None:
    with pytest.raises(RuntimeError, match="only connect to loopback"):
        socket.create_connection(OUTSIDE_V4, timeout=0.1)
    with pytest.raises(RuntimeError, match=r"refused to resolve 'example\.com'"):
        socket.getaddrinfo("example.com", 443)


async def test_asyncio_connections_are_refused() -> None:
    with pytest.raises(RuntimeError, match="only connect to loopback"):
        await asyncio.open_connection(*OUTSIDE_V4)


async def test_loopback_connections_work() -> None:
    received = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(4) == b"ping":
            received.set()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        for host in ("127.0.0.1", "localhost"):
            received.clear()
            _, writer = await asyncio.open_connection(host, port)
            writer.write(b"ping")
            await writer.drain()
            await asyncio.wait_for(received.wait(), timeout=5)
            writer.close()
            await writer.wait_closed()


def test_unix_sockets_are_allowed(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            connection, _ = server.accept()
            connection.close()


@pytest.mark.integration
async def test_redis_db_url_starts_empty_and_is_usable(redis_db_url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_db_url)
    try:
        assert await client.dbsize() == 0
        await client.set("harness:probe", "1")
        assert await client.get("harness:probe") == b"1"
    finally:
        await client.aclose()


@pytest.mark.integration
async def test_mdq_prefix_is_unique_and_usable(mdq_prefix: str, amqp_url: str) -> None:
    import aio_pika

    assert mdq_prefix.startswith("mdptest.")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{mdq_prefix}probe")
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        message = await queue.get(timeout=5, fail=True)
        assert message is not None
        assert message.body == b"x"
        await message.ack()


def test_the_redis_lock_is_the_servers_whatever_the_database_or_password() -> None:
    from tests.conftest import redis_server_of

    # Pub/sub spans the databases of one server, so two databases share one lock.
    assert redis_server_of("redis://127.0.0.1:6379/15") == "127.0.0.1:6379"
    assert redis_server_of("redis://:s3cret@127.0.0.1:6379/14") == "127.0.0.1:6379"
    assert redis_server_of("redis://LOCALHOST/15") == "localhost:6379"
    assert redis_server_of("redis://127.0.0.1:6380/15") == "127.0.0.1:6380"


class _Item:
    """What the rerun rule reads of a collected test: its name, function and markers."""

    def __init__(self, function: object, *markers: str) -> None:
        self.name = "test_x"
        self.function = function
        self._markers = {name: getattr(pytest.mark, name) for name in markers}

    def get_closest_marker(self, name: str) -> object:
        return self._markers.get(name)


def test_a_steady_test_is_not_rerun_though_it_starts_a_private_server() -> None:
    from typing import cast

    from tests.conftest import rerun_by_default

    def starts(private_redis: object) -> None:
        """Starts a RedisServer of its own."""

    def plain() -> None:
        """Reads the shared server."""

    assert rerun_by_default(cast("pytest.Item", _Item(starts)))
    assert not rerun_by_default(cast("pytest.Item", _Item(starts, "steady")))
    assert not rerun_by_default(cast("pytest.Item", _Item(plain)))
    # The stage benchmarks' tests start a private Redis only to flush it: never repeated.
    from tests.integration import test_stage_bench_processor as stage

    assert any(mark.name == "steady" for mark in stage.pytestmark)
