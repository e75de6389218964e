"""A recording websocket proxy between the listener and the simulator, which can also inject faults.

The listener connects to the proxy exactly as it would to the feed (the official ``massive``
client, unchanged); the proxy opens the same path on the simulator and relays both ways. Every
frame it sends to the listener is appended to the tape **as sent**, after any fault, so the tape
is exactly what the listener received. Faults apply to data frames only (never to the
``status`` handshake):

* ``duplicate_every=n``: every n-th data frame is sent twice;
* ``reorder_every=n``: every n-th data frame is held back and sent right after the next one;
* ``drop_op``: the official open ``op`` is removed from every ``A``/``AM`` message of the
  symbols :func:`drops_op` selects (half of them, fixed by name).
* ``blank_ids``: the trade id ``i`` of every ``T`` message of the symbols :func:`blanks_ids`
  selects (a third of them, fixed by name) is sent as the empty string, which the wire allows:
  such a trade is known by its sequence number ``q`` and time, so a duplicated frame must
  still count it once.

:meth:`RecordingProxy.freeze` ends the recording: a held frame is sent, and from then on
nothing more reaches the listener, so the tape is final while the pipeline drains;
:meth:`RecordingProxy.thaw` starts forwarding (and recording) again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["FrameFaults", "RecordingProxy", "TapeFrame", "blanks_ids", "drops_op"]


@dataclass(frozen=True, slots=True)
class FrameFaults:
    """Which faults the proxy injects (see the module docstring)."""

    duplicate_every: int = 0
    reorder_every: int = 0
    drop_op: bool = False
    blank_ids: bool = False


@dataclass(frozen=True, slots=True)
class TapeFrame:
    """One frame as the listener received it: monotonic send time and text."""

    sent_seconds: float
    text: str


def drops_op(symbol: str) -> bool:
    """Whether the ``drop_op`` fault strips ``op`` from this symbol's bars (half, by name)."""
    return zlib.crc32(symbol.encode()) % 2 == 0


def blanks_ids(symbol: str) -> bool:
    """Whether the ``blank_ids`` fault empties this symbol's trade ids (a third, by name)."""
    return zlib.crc32(symbol.encode()) % 3 == 0


@dataclass(slots=True)
class _Counters:
    data_frames: int = 0
    duplicated: int = 0
    reordered: int = 0
    op_dropped: int = 0
    ids_blanked: int = 0


@dataclass(slots=True)
class RecordingProxy:
    """Relay ``ws://127.0.0.1:<port>/<path>`` to ``ws://<upstream>/<path>``, recording.

    Args:
        upstream: the simulator's ``host:port`` (its ``massive_feed``).
        faults: what to inject.
    """

    upstream: str
    faults: FrameFaults = field(default_factory=FrameFaults)
    tape: list[TapeFrame] = field(default_factory=list)
    counters: _Counters = field(default_factory=_Counters)
    _server: Server | None = None
    _held: tuple[ServerConnection, str] | None = None
    _frozen: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> None:
        self._server = await serve(self._relay, "127.0.0.1", 0, max_size=None, compression=None)

    @property
    def feed(self) -> str:
        """``host:port`` to give the listener as its feed."""
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"127.0.0.1:{port}"

    @property
    def frozen(self) -> bool:
        return self._frozen

    async def freeze(self) -> None:
        """Send a held frame, then stop forwarding: the tape is final."""
        async with self._lock:
            await self._release()
            self._frozen = True

    async def thaw(self) -> None:
        """Forward again after :meth:`freeze` (what the feed sent meanwhile never reaches the
        listener, so the tape stays exactly what the listener received)."""
        async with self._lock:
            self._frozen = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, downstream: ServerConnection) -> None:
        path = downstream.request.path if downstream.request is not None else "/"
        async with connect(
            f"ws://{self.upstream}{path}", max_size=None, compression=None
        ) as upstream:
            directions = [
                asyncio.create_task(self._client_to_feed(downstream, upstream)),
                asyncio.create_task(self._feed_to_client(upstream, downstream)),
            ]
            # Whichever side closes ends the relay (the other side is closed with it).
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
            for task in directions:
                task.cancel()
            await asyncio.gather(*directions, return_exceptions=True)

    @staticmethod
    async def _client_to_feed(downstream: ServerConnection, upstream: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in downstream:
                await upstream.send(message)

    async def _feed_to_client(
        self, upstream: ClientConnection, downstream: ServerConnection
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                text = message if isinstance(message, str) else message.decode()
                async with self._lock:
                    if not self._frozen:
                        await self._forward(downstream, text)

    async def _forward(self, downstream: ServerConnection, text: str) -> None:
        try:
            messages = json.loads(text)
        except ValueError:
            messages = None
        is_data = isinstance(messages, list) and any(
            isinstance(m, dict) and m.get("ev") != "status" for m in messages
        )
        if not is_data:
            await self._send(downstream, text)
            return
        assert isinstance(messages, list)
        faults = self.faults
        counters = self.counters
        counters.data_frames += 1
        n = counters.data_frames
        if faults.drop_op:
            text = self._drop_op(messages, text)
        if faults.blank_ids:
            text = self._blank_ids(messages, text)
        if faults.reorder_every and n % faults.reorder_every == 0 and self._held is None:
            self._held = (downstream, text)
            counters.reordered += 1
            return
        await self._send(downstream, text)
        if faults.duplicate_every and n % faults.duplicate_every == 0:
            await self._send(downstream, text)
            counters.duplicated += 1
        await self._release()

    def _drop_op(self, messages: list[object], text: str) -> str:
        changed = False
        for message in messages:
            if (
                isinstance(message, dict)
                and message.get("ev") in {"A", "AM"}
                and "op" in message
                and drops_op(str(message.get("sym")))
            ):
                del message["op"]
                changed = True
                self.counters.op_dropped += 1
        return json.dumps(messages, separators=(",", ":")) if changed else text

    def _blank_ids(self, messages: list[object], text: str) -> str:
        changed = False
        for message in messages:
            if (
                isinstance(message, dict)
                and message.get("ev") == "T"
                and message.get("i")
                and blanks_ids(str(message.get("sym")))
            ):
                message["i"] = ""
                changed = True
                self.counters.ids_blanked += 1
        return json.dumps(messages, separators=(",", ":")) if changed else text

    async def _release(self) -> None:
        if self._held is not None:
            downstream, text = self._held
            self._held = None
            with contextlib.suppress(ConnectionClosed):
                await self._send(downstream, text)

    async def _send(self, downstream: ServerConnection, text: str) -> None:
        await downstream.send(text)
        self.tape.append(TapeFrame(time.monotonic(), text))
