"""TcpProxy's ``cut_after``: the server gets exactly the budget of bytes, then the link is gone."""

from __future__ import annotations

import asyncio

import pytest

from mdp_testing.proxy import TcpProxy


async def test_cut_after_forwards_exactly_the_budget_then_cuts() -> None:
    received = bytearray()
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(7):
            received.extend(data)
        closed.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, TcpProxy("127.0.0.1", port) as proxy:
        proxy.cut_after(35)
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(bytes(range(10)) * 11)
        await asyncio.wait_for(closed.wait(), 10)
        assert bytes(received) == bytes(range(10)) * 3 + bytes(range(5))
        assert proxy.forwarded == 35
        assert not proxy.is_up
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.transport.abort()
