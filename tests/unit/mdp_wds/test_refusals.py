"""What the WDS refuses before a session: failed handshakes (counted) and a weak token secret."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from mdp_runtime import ConfigError
from mdp_wds import __main__ as wds_main
from mdp_wds.websocket import counting_failed_handshakes

WAIT = 5.0


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: wds\r\n", "handshake_timeout"),  # never finished
        (b"GET / HTTP/1.1\r\nHost: wds\r\n\r\n", "bad_handshake"),  # no upgrade: 426
        (b"\x00\x01garbage\r\n\r\n", "bad_handshake"),  # not HTTP
    ],
    ids=["unfinished", "no-upgrade", "not-http"],
)
async def test_a_failed_handshake_is_reported_once_with_its_reason(raw: bytes, reason: str) -> None:
    failures: list[str] = []
    reported = asyncio.Event()

    def failed(why: str) -> None:
        failures.append(why)
        reported.set()

    async with serve(
        _echo,
        "127.0.0.1",
        0,
        create_connection=counting_failed_handshakes(failed),
        open_timeout=0.2,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(raw)
            await writer.drain()
            await asyncio.wait_for(reader.read(), WAIT)  # the server answers or gives up, closes
        finally:
            writer.close()
        await asyncio.wait_for(reported.wait(), WAIT)
        async with connect(f"ws://127.0.0.1:{port}") as ws:  # a good one is no failure
            await ws.send("hi")
            assert await ws.recv() == "hi"
    assert failures == [reason]


async def test_the_wds_refuses_a_token_secret_under_16_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A short HMAC key is guessed offline from one token a dashboard holds.
    monkeypatch.setenv("MDP_WDS_TOKEN_SECRET", "fifteen-bytes!!")
    with pytest.raises(ConfigError, match="MDP_WDS_TOKEN_SECRET needs at least 16 bytes"):
        await wds_main.serve(asyncio.Event())
