"""Loopback websocket clients of ``mdp bench``: what a dashboard tab would receive.

Each client authenticates with a signed token, subscribes to the three leaderboards and a few
quote feeds, and for every message records its arrival (wall ns) with the payload's own time:
a quote row's ``end_ms`` (the event time of the aggregate behind it) or a board's ``as_of_ms``
(when it was composed). Only those two top-level fields are decoded. Every board update's
arrival is also kept per client and board, for the longest gap a client saw between two.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mdp_cache.keys import (
    FEED_QUOTE,
    FEED_SCANNER_TOP_GAINERS,
    FEED_SCANNER_TOP_GAPPERS,
    FEED_SCANNER_TOP_VOLUME,
)

__all__ = ["BOARD_FEEDS", "QUOTE_PREFIX", "ClientPool", "Sample"]

BOARD_FEEDS: Final = (
    FEED_SCANNER_TOP_VOLUME.name(),
    FEED_SCANNER_TOP_GAPPERS.name(),
    FEED_SCANNER_TOP_GAINERS.name(),
)
_MAX_SAMPLES: Final = 400_000


class _Times(msgspec.Struct):
    end_ms: int | None = None
    as_of_ms: int | None = None


class _Message(msgspec.Struct):
    op: str
    feed: str | None = None
    data: _Times | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One received feed message: when, which kind of feed, the time it carries and whose."""

    wall_ns: int
    board: bool
    stamp_ms: int
    symbol: str | None = None


QUOTE_PREFIX: Final = FEED_QUOTE.name(symbol="")
"""What precedes the symbol in a quote feed's name (and WDC channel)."""


@dataclass(slots=True)
class ClientPool:
    """``count`` clients, each following the boards and ``quotes_each`` quote feeds.

    Args:
        url: the WDS websocket URL (``ws://127.0.0.1:PORT/ws``).
        token: a token granting ``scanner:*`` and ``quote:*``.
        symbols: the universe; client ``i`` follows a different slice of it.
        count: number of clients.
        quotes_each: quote feeds per client.
    """

    url: str
    token: str
    symbols: Sequence[str]
    count: int
    quotes_each: int = 10
    messages: int = 0
    updates: int = 0
    errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    #: Arrival (wall ns) of every board update, per (client index, board feed).
    board_arrivals: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    connected: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: int = 0

    def feeds_of(self, index: int) -> list[str]:
        """The feeds client ``index`` follows."""
        if not self.symbols:
            return list(BOARD_FEEDS)
        size = len(self.symbols)
        start = (index * self.quotes_each) % size
        picked = [self.symbols[(start + k) % size] for k in range(min(self.quotes_each, size))]
        return [*BOARD_FEEDS, *(FEED_QUOTE.name(symbol=s) for s in dict.fromkeys(picked))]

    async def start(self) -> None:
        """Connect every client; return once all are subscribed (or 15 s passed)."""
        self._tasks = [
            asyncio.create_task(self._client(i), name=f"bench client {i}")
            for i in range(self.count)
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15.0):
                await self._subscribed.wait()

    async def stop(self) -> None:
        """Close every client."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _client(self, index: int) -> None:
        decoder = msgspec.json.Decoder(_Message)
        try:
            async with connect(self.url, compression=None, max_size=16 * 1024 * 1024) as ws:
                await self._handshake(ws, index)
                self.connected += 1
                async for raw in ws:
                    now = time.time_ns()
                    self._record(decoder, raw, now, index)
        except asyncio.CancelledError:
            raise
        except (OSError, ConnectionClosed, msgspec.DecodeError, TimeoutError) as exc:
            self.errors.append(f"client {index}: {type(exc).__name__}: {exc}")

    async def _handshake(self, ws: ClientConnection, index: int) -> None:
        await ws.send(msgspec.json.encode({"op": "auth", "token": self.token}))
        async with asyncio.timeout(10.0):
            reply = msgspec.json.decode(await ws.recv())
        if not isinstance(reply, dict) or reply.get("op") != "auth_ok":
            msg = f"authentication refused: {reply!r}"
            raise ConnectionError(msg)
        request = {"op": "subscribe", "id": 1, "feeds": self.feeds_of(index), "snapshot": True}
        await ws.send(msgspec.json.encode(request))
        self._ready += 1
        if self._ready >= self.count:
            self._subscribed.set()

    def _record(
        self, decoder: msgspec.json.Decoder[_Message], raw: str | bytes, now: int, index: int
    ) -> None:
        self.messages += 1
        try:
            message = decoder.decode(raw)
        except msgspec.DecodeError:
            return
        if message.op != "update" or message.data is None or message.feed is None:
            return
        self.updates += 1
        data = message.data
        if message.feed in BOARD_FEEDS:
            self.board_arrivals.setdefault((index, message.feed), []).append(now)
        if len(self.samples) >= _MAX_SAMPLES:
            return
        if data.as_of_ms is not None and message.feed in BOARD_FEEDS:
            self.samples.append(Sample(now, True, data.as_of_ms))
        elif data.end_ms is not None:
            self.samples.append(
                Sample(now, False, data.end_ms, message.feed.removeprefix(QUOTE_PREFIX))
            )
