"""The one place that reaches past the websockets library's documented API.

The WDS writes pre-built frames straight to the transport (one system call per burst instead of
one ``send`` per message), waits on the connection's flow control when the socket buffer is
full, reads which close code it sent to tell a shutdown from a dropped client, and counts the
opening handshakes that fail (the library only logs them). None of that is public API
(``protocol.data_to_send()``, ``transport.write``, ``paused``, ``drain()``,
``protocol.close_sent``, ``ServerConnection.handshake``), so it is confined here and the
dependency is bounded to the major version it is tested with (``websockets`` in the service's
``pyproject.toml``). A new major version needs this module checked, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

__all__ = [
    "ClientSocket",
    "ConnectionClosed",
    "close_within",
    "counting_failed_handshakes",
    "limit_send_buffer",
]


def counting_failed_handshakes(on_failure: Callable[[str], None]) -> type[ServerConnection]:
    """A connection class (``serve(create_connection=...)``) that reports failed handshakes.

    ``on_failure`` gets ``bad_handshake`` for a request the library refused (not HTTP, no
    websocket upgrade, a header past its limits: it answers 400, 426 or 431) and
    ``handshake_timeout`` for one never finished within the open timeout. Refusals of the
    server's own ``process_request`` (paths, origins) are not failures here: it counts them.
    """

    class CountingConnection(ServerConnection):
        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().handshake(*args, **kwargs)
            except asyncio.CancelledError:  # the open timeout, the only canceller
                on_failure("handshake_timeout")
                raise
            if self.protocol.handshake_exc is not None:
                on_failure("bad_handshake")

    return CountingConnection


async def close_within(ws: ServerConnection, code: int, reason: str, within: float) -> None:
    """Close with ``code``; abort the transport if the peer stalls the handshake."""
    try:
        async with asyncio.timeout(within):
            await ws.close(code, reason)
    except TimeoutError:
        ws.transport.abort()


def limit_send_buffer(ws: ServerConnection, size: int) -> None:
    """Shrink the kernel send buffer so a stalled client is detected sooner (0: leave it)."""
    sock = ws.transport.get_extra_info("socket")
    if size > 0 and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class ClientSocket:
    """One accepted websocket, reduced to what a session needs.

    Args:
        ws: The connection websockets accepted.
    """

    __slots__ = ("_protocol", "_transport", "_ws")

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._protocol = ws.protocol
        self._transport = ws.transport

    @property
    def peer(self) -> str | None:
        """The peer's IP address, when the transport knows it."""
        with contextlib.suppress(Exception):
            remote = self._ws.remote_address
            if isinstance(remote, tuple) and remote:
                return str(remote[0])
        return None

    @property
    def open(self) -> bool:
        """Whether frames may still be written."""
        return self._protocol.state is State.OPEN

    async def recv(self, within: float | None = None) -> str | bytes:
        """The next client message.

        Raises:
            TimeoutError: when ``within`` seconds pass first.
            ConnectionClosed: when the connection is closed.
        """
        if within is None:
            return await self._ws.recv()
        async with asyncio.timeout(within):
            return await self._ws.recv()

    def write(self, wires: Sequence[bytes]) -> None:
        """Write complete frames in one system call.

        Anything the websockets protocol has pending (a pong) goes first, so frames never
        interleave.
        """
        chunks = self._protocol.data_to_send()
        chunks.extend(wires)
        self._transport.write(b"".join(chunks))

    @property
    def paused(self) -> bool:
        """Whether the socket buffer is above the write limit (the peer is behind)."""
        return bool(self._ws.paused)

    async def drain(self) -> None:
        """Wait for the peer while the socket buffer is above the write limit."""
        if self._ws.paused:
            await self._ws.drain()

    async def close(self, code: int, reason: str, within: float) -> None:
        """Close with ``code`` (see :func:`close_within`)."""
        await close_within(self._ws, code, reason, within)

    @property
    def close_sent(self) -> int | None:
        """The close code this side sent, if any."""
        sent = self._protocol.close_sent
        return None if sent is None else sent.code

    @property
    def close_received(self) -> int | None:
        """The close code the peer sent (1006 for a dropped connection), if closed."""
        return self._ws.close_code
