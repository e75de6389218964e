"""A loopback TCP proxy that a test can cut and restore, to simulate a server going away.

Tests must never restart the shared Redis or RabbitMQ; they put this proxy between the code under
test and the server instead. ``cut()`` closes the listening socket and aborts every connection
(clients see a reset, as when a server dies); ``restore()`` listens again on the same port.
``stall()`` keeps every connection open but forwards nothing either way until ``resume()``: a
server that hangs (a paused node, a half-open link) rather than one that goes away.
``cut_after(n)`` lets the clients' next ``n`` bytes through to the server, then cuts: a
connection lost in the middle of a request, the server holding only part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``.

    Args:
        target_host: where connections are forwarded.
        target_port: the target's port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0
        #: Bytes forwarded from clients to the server, over every connection.
        self.forwarded = 0
        self._budget: int | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy in front of the server of a ``redis://`` or ``amqp://`` URL."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 0)

    def proxied(self, url: str) -> str:
        """``url`` rewritten to go through this proxy (credentials and path kept)."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def is_up(self) -> bool:
        """Whether the proxy accepts connections now."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    restore = start

    async def cut(self) -> None:
        """Stop listening and abort every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        """Hold every byte either way (connections stay open) until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, what was held first."""
        self._flowing.set()

    def cut_after(self, budget: int) -> None:
        """Forward only the clients' next ``budget`` bytes to the server, then :meth:`cut`.

        The server gets those bytes before the connection closes (gracefully, so it reads
        them all), and a request they end inside of is what it holds of that request.
        """
        self._budget = budget

    async def close(self) -> None:
        """Cut and forget; the proxy cannot be restored afterwards."""
        await self.cut()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, upstream=True),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool = False
    ) -> None:
        try:
            while data := await reader.read(65_536):
                await self._flowing.wait()
                if upstream and self._budget is not None:
                    data = data[: self._budget]
                    self._budget -= len(data)
                writer.write(data)
                await writer.drain()
                if upstream:
                    self.forwarded += len(data)
                    if self._budget == 0:
                        self._budget = None
                        writer.close()  # gracefully: the server reads what it was sent
                        with contextlib.suppress(OSError):
                            await writer.wait_closed()
                        await self.cut()
                        return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(OSError, RuntimeError):
                writer.transport.abort()
