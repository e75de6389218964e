"""A Massive stocks websocket server on loopback that the official ``massive`` client accepts.

It speaks the vendor protocol: ``connected`` greeting, ``auth``, per-topic ``subscribe`` and
``unsubscribe`` replies, JSON-array frames batching events of every channel, and the
one-connection-per-key rule. Events are pushed in by :meth:`MassiveWsServer.publish` (the market
broadcaster or a replay), routed through a precomputed subscription index and encoded once per
event, whatever the number of connections. Fault modes (see :mod:`mdp_sim.faults`) reproduce
what the real service does when things go wrong, so the platform's listener can be tested
against each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import Clock, LiveClock
from mdp_core.events import MARKET_EVENT_TYPES, SYMBOL_FIELDS
from mdp_sim.faults import Faults, MalformedKind

__all__ = [
    "SYMBOL_KEYS",
    "TOPIC_PREFIXES",
    "MassiveWsConfig",
    "MassiveWsMetrics",
    "MassiveWsServer",
    "StateWatch",
]

_log = logging.getLogger(__name__)

TOPIC_PREFIXES: Final = MARKET_EVENT_TYPES
"""Event codes of the stocks cluster a connection may subscribe to (:mod:`mdp_core.events`)."""

SYMBOL_KEYS: Final[Mapping[str, str]] = SYMBOL_FIELDS
"""Field holding the ticker in each event type (LULD and NOI use a capital ``T``)."""

_ONE_MIB = 1024 * 1024
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _status(status: str, message: str) -> bytes:
    return _encode([{"ev": "status", "status": status, "message": message}])


_GREETING: Final = _status("connected", "Connected Successfully")
_AUTH_SUCCESS: Final = _status("auth_success", "authenticated")
_AUTH_FAILED: Final = _status("auth_failed", "authentication failed")
_AUTH_TIMEOUT: Final = _status("auth_timeout", "no authentication received in time")
_AUTH_REQUIRED: Final = _status("auth_required", "authentication required")
_MAX_CONNECTIONS: Final = _status("max_connections", "Maximum number of connections exceeded.")
_SLOW_CONSUMER: Final = _status("slow_consumer", "Client is not reading fast enough.")
_POLICY: Final = 1008


class StateWatch:
    """Lets tests and harnesses await a condition on server state without polling or sleeping.

    Servers call :meth:`notify` whenever something observable changes (a connection, a kick,
    a subscription); :meth:`wait_for` re-checks its predicate on each notification.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        """Wake every waiter so it re-checks its predicate."""
        for waiter in self._waiters:
            waiter.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Return once ``predicate()`` is true.

        Raises:
            TimeoutError: if it is still false after ``within`` seconds.
        """
        async with asyncio.timeout(within):
            while not predicate():
                waiter = asyncio.Event()
                self._waiters.add(waiter)
                try:
                    await waiter.wait()
                finally:
                    self._waiters.discard(waiter)


@dataclass(frozen=True, slots=True, kw_only=True)
class MassiveWsConfig:
    """How the Massive websocket server listens and batches.

    Attributes:
        keys: API keys accepted by ``auth``.
        host: interface to bind; loopback unless you know why not.
        port: TCP port, 0 for an ephemeral one (read it back from :attr:`MassiveWsServer.port`).
        markets: URL paths served (``/stocks``); others are refused with 404 at the upgrade.
        auth_timeout: seconds a connection may stay unauthenticated; ``None`` waits forever.
        one_connection_per_key: a second authenticated connection for the same key and market
            kicks the older one with ``max_connections``, as the real service does.
        flush_interval: seconds events wait to be batched into one frame.
        max_events_per_frame: events per frame at most.
        max_frame_bytes: bytes per frame at most (kept well under the client's 1 MiB limit).
        close_timeout: seconds to wait for a closing handshake before aborting the socket.
        seed: seeds the draws of the malformed-frame fault, so a faulty run is reproducible.
    """

    keys: frozenset[str]
    host: str = "127.0.0.1"
    port: int = 0
    markets: frozenset[str] = frozenset({"stocks"})
    auth_timeout: float | None = None
    one_connection_per_key: bool = True
    flush_interval: float = 0.01
    max_events_per_frame: int = 500
    max_frame_bytes: int = 256 * 1024
    close_timeout: float = 1.0
    seed: int = 0


@dataclass(slots=True)
class MassiveWsMetrics:
    """Counters kept by the server; tests read them to see what it did."""

    connections_opened: int = 0
    authenticated: int = 0
    auth_failures: int = 0
    auth_timeouts: int = 0
    frames_sent: int = 0
    events_sent: int = 0
    bytes_sent: int = 0
    max_connections_kicks: int = 0
    slow_consumer_kicks: int = 0
    forced_closes: int = 0
    malformed_frames: int = 0
    oversized_frames: int = 0
    refused_upgrades: int = 0
    events_dropped_stalled: int = 0
    events_unencodable: int = 0


@dataclass(eq=False, slots=True)
class _Connection:
    """Per-socket state: identity, subscriptions and the outbound queue."""

    ws: ServerConnection
    market: str
    key: str | None = None
    subs: set[str] = field(default_factory=set)
    pending: deque[bytes] = field(default_factory=deque)
    pending_bytes: int = 0
    control: deque[bytes] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    urgent: bool = False
    last_event: bytes | None = None

    def __post_init__(self) -> None:
        self.idle.set()

    def queued_bytes(self) -> int:
        """Bytes waiting on our side: our queue plus what the transport has not written yet."""
        return self.pending_bytes + self.ws.transport.get_write_buffer_size()


class MassiveWsServer:
    """The Massive stocks websocket service on loopback.

    Use as ``async with MassiveWsServer(config) as server:`` (or ``start``/``stop``); push events
    with :meth:`publish`. Client side: ``WebSocketClient(api_key=key, feed=server.feed,
    secure=False)``.

    Args:
        config: listening, auth and batching settings.
        faults: fault switches shared with the rest of the simulator (a fresh set if omitted).
        clock: real-time source for fault deadlines (tests may pass a manual clock).
    """

    def __init__(
        self, config: MassiveWsConfig, faults: Faults | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.faults = faults if faults is not None else Faults()
        self.metrics = MassiveWsMetrics()
        self.watch = StateWatch()
        self._clock: Clock = clock if clock is not None else LiveClock()
        self._rng = random.Random(config.seed)
        self._server: Server | None = None
        self._connections: set[_Connection] = set()
        self._by_key: dict[tuple[str, str], _Connection] = {}
        self._wild: dict[str, set[_Connection]] = {}
        self._exact: dict[str, dict[str, set[_Connection]]] = {}
        self._subscribed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression=None,
            close_timeout=self.config.close_timeout,
            max_size=_ONE_MIB,
        )

    async def stop(self) -> None:
        """Close every connection with 1001 (the client then returns) and stop listening."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        await asyncio.gather(*(cancel_until_done(task) for task in list(self._tasks)))

    async def __aenter__(self) -> MassiveWsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            msg = "the server is not started"
            raise RuntimeError(msg)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def feed(self) -> str:
        """``host:port``, the value of the official client's ``feed=`` argument."""
        return f"{self.config.host}:{self.port}"

    @property
    def url(self) -> str:
        """The stocks URL, ``ws://host:port/stocks``."""
        return f"ws://{self.feed}/stocks"

    @property
    def connection_count(self) -> int:
        """Open connections, authenticated or not."""
        return len(self._connections)

    @property
    def authenticated_count(self) -> int:
        """Open, authenticated connections not being closed."""
        return sum(1 for c in self._connections if c.key is not None and not c.closing)

    @property
    def has_subscribers(self) -> bool:
        """Whether any connection subscribes to anything (else publishing encodes nothing)."""
        return bool(self._wild) or bool(self._exact)

    def subscriptions(self) -> list[set[str]]:
        """The topics of every live connection (a copy; for tests and the control API)."""
        return [set(c.subs) for c in self._connections if not c.closing]

    # ----------------------------------------------------------------- publishing

    def publish(self, events: Iterable[Mapping[str, object]], *, flush: bool = False) -> int:
        """Route events to the connections subscribed to them.

        Each event is encoded once, only if at least one connection wants it. Connections that
        fall too far behind are dropped as slow consumers.

        Args:
            events: Massive wire events (dicts with ``ev`` and the symbol field).
            flush: send partial frames at once instead of waiting for the batching interval
                (the backpressure-paced broadcaster uses it).

        Returns:
            The number of (event, connection) deliveries queued.
        """
        if not (self._wild or self._exact):
            return 0
        touched: set[_Connection] = set()
        deliveries = 0
        for event in events:
            ev = event.get("ev")
            if not isinstance(ev, str):
                continue
            symbol = event.get(SYMBOL_KEYS.get(ev, "sym"))
            wild, exact = self._targets(ev, symbol if isinstance(symbol, str) else None)
            if not wild and not exact:
                continue
            try:
                encoded = _encode(event)
            except (TypeError, msgspec.EncodeError):
                self.metrics.events_unencodable += 1
                _log.warning("event_unencodable_skipped", extra={"ev": ev})
                continue
            deliveries += self._queue(encoded, wild, exact, touched)
        self._wake(touched, flush=flush)
        return deliveries

    def publish_encoded(
        self, events: Iterable[tuple[str, str, bytes]], *, flush: bool = False
    ) -> int:
        """Route events encoded beforehand, as ``(ev, symbol, JSON)``, like :meth:`publish`.

        For a load generator that encodes its tape ahead of a measurement, so that sending
        costs the machine under test little more than the copy into the socket.
        """
        if not (self._wild or self._exact):
            return 0
        touched: set[_Connection] = set()
        deliveries = 0
        for ev, symbol, encoded in events:
            wild, exact = self._targets(ev, symbol)
            if wild or exact:
                deliveries += self._queue(encoded, wild, exact, touched)
        self._wake(touched, flush=flush)
        return deliveries

    def _queue(
        self,
        encoded: bytes,
        wild: set[_Connection] | None,
        exact: set[_Connection] | None,
        touched: set[_Connection],
    ) -> int:
        """Queue one encoded event on each of its connections; the deliveries queued."""
        faults = self.faults.massive
        size = len(encoded) + 1
        deliveries = 0
        for conn in _union(wild, exact):
            if faults.is_stalled(conn.key):
                self.metrics.events_dropped_stalled += 1
                continue
            conn.pending.append(encoded)
            conn.pending_bytes += size
            conn.last_event = encoded
            touched.add(conn)
            deliveries += 1
        return deliveries

    def _wake(self, touched: set[_Connection], *, flush: bool) -> None:
        """Wake the writers of the connections given events; drop those too far behind."""
        limit = self.faults.massive.slow_consumer_bytes
        for conn in touched:
            conn.idle.clear()
            conn.urgent = conn.urgent or flush
            conn.wake.set()
            if conn.queued_bytes() > limit:
                self._drop_slow_consumer(conn)

    def _targets(
        self, ev: str, symbol: str | None
    ) -> tuple[set[_Connection] | None, set[_Connection] | None]:
        """Connections subscribed to the channel ``ev`` with ``*``, and to its ``symbol``."""
        wild = self._wild.get(ev)
        by_symbol = self._exact.get(ev)
        if by_symbol is None or symbol is None:
            return wild, None
        return wild, by_symbol.get(symbol)

    async def wait_drained(self) -> None:
        """Wait until every connection has handed its queued frames to the socket."""
        for conn in list(self._connections):
            await conn.idle.wait()

    async def wait_for_subscriber(self) -> None:
        """Wait until at least one connection subscribes to something."""
        await self._subscribed.wait()

    # ----------------------------------------------------------------- fault actions

    def refuse_for(self, seconds: float) -> None:
        """Answer every upgrade with 503 for the next ``seconds`` (0 stops refusing)."""
        self.faults.massive.refuse_until = self._clock.monotonic() + seconds

    async def drop(self, code: int | None = 1011, key: str | None = None) -> int:
        """Close connections abruptly: with ``code`` (1011 by default) or, if None, a TCP abort.

        Args:
            code: websocket close code, or ``None`` to abort the TCP connection (client sees 1006).
            key: only connections authenticated with this key; all connections if omitted.

        Returns:
            How many connections were closed.
        """
        victims = self._select(key)
        self.metrics.forced_closes += len(victims)
        await asyncio.gather(*(self._terminate(c, None, code, "simulated fault") for c in victims))
        return len(victims)

    async def kick(self, key: str | None = None) -> int:
        """Send ``max_connections`` and close with 1008, as when another session takes the key.

        Returns:
            How many connections were kicked.
        """
        victims = self._select(key)
        self.metrics.max_connections_kicks += len(victims)
        await asyncio.gather(
            *(self._terminate(c, _MAX_CONNECTIONS, _POLICY, "max connections") for c in victims)
        )
        return len(victims)

    async def send_oversized(self, key: str | None = None, size: int = 2 * _ONE_MIB) -> int:
        """Send one valid frame bigger than ``size`` bytes (the client's default limit is 1 MiB).

        The frame repeats the connection's most recent event, so a client with a raised
        ``max_size`` simply receives duplicates.

        Returns:
            How many connections got the frame.
        """
        victims = self._select(key)
        for conn in victims:
            element = conn.last_event or _encode(
                {"ev": "status", "status": "success", "message": "padding"}
            )
            copies = size // (len(element) + 1) + 1
            frame = b"[" + b",".join([element] * copies) + b"]"
            conn.control.append(frame)
            conn.idle.clear()
            conn.wake.set()
        self.metrics.oversized_frames += len(victims)
        return len(victims)

    def _select(self, key: str | None) -> list[_Connection]:
        return [c for c in self._connections if not c.closing and (key is None or c.key == key)]

    # ----------------------------------------------------------------- connection handling

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._clock.monotonic() < self.faults.massive.refuse_until:
            self.metrics.refused_upgrades += 1
            self.watch.notify()
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "temporarily unavailable\n")
        market = request.path.split("?", 1)[0].strip("/")
        if market not in self.config.markets:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown market\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        market = ws.request.path.split("?", 1)[0].strip("/") if ws.request else "stocks"
        conn = _Connection(ws=ws, market=market)
        self._connections.add(conn)
        self.metrics.connections_opened += 1
        self.watch.notify()
        writer = asyncio.create_task(self._writer(conn))
        try:
            await ws.send(_GREETING, text=True)
            if await self._authenticate(conn):
                async for message in ws:
                    self._on_message(conn, message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            self._forget(conn)

    async def _authenticate(self, conn: _Connection) -> bool:
        """Read messages until a valid ``auth``; answer anything else with ``auth_required``."""
        timeout = self.config.auth_timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = _parse_action(await conn.ws.recv())
                    if message is None or message[0] != "auth":
                        await conn.ws.send(_AUTH_REQUIRED, text=True)
                        continue
                    if message[1] in self.config.keys:
                        break
                    self.metrics.auth_failures += 1
                    self.watch.notify()
                    await conn.ws.send(_AUTH_FAILED, text=True)
                    await conn.ws.close(_POLICY, "authentication failed")
                    return False
        except TimeoutError:
            self.metrics.auth_timeouts += 1
            self.watch.notify()
            await conn.ws.send(_AUTH_TIMEOUT, text=True)
            await conn.ws.close(_POLICY, "authentication timeout")
            return False
        key = message[1]
        await conn.ws.send(_AUTH_SUCCESS, text=True)
        conn.key = key
        self.metrics.authenticated += 1
        slot = (key, conn.market)
        older = self._by_key.get(slot)
        if self.config.one_connection_per_key and older is not None and self._begin_close(older):
            self.metrics.max_connections_kicks += 1
            self._spawn(self._close_socket(older, _MAX_CONNECTIONS, _POLICY, "max connections"))
        self._by_key[slot] = conn
        self.watch.notify()
        return True

    def _on_message(self, conn: _Connection, raw: str | bytes) -> None:
        message = _parse_action(raw)
        if message is None:
            self._reply(conn, _status("error", "invalid message"))
            return
        action, params = message
        if action == "auth":
            self._reply(conn, _status("success", "already authenticated"))
            return
        if action not in {"subscribe", "unsubscribe"}:
            self._reply(conn, _status("error", f"unknown action: {action}"))
            return
        replies: list[dict[str, str]] = []
        for raw_topic in params.split(","):
            topic = raw_topic.strip()
            if not topic:
                continue
            prefix, _, symbol = topic.partition(".")
            if prefix not in TOPIC_PREFIXES or not symbol:
                replies.append(
                    {"ev": "status", "status": "error", "message": f"unknown topic: {topic}"}
                )
                continue
            if action == "subscribe":
                self._add_topic(conn, prefix, symbol, topic)
                replies.append(
                    {"ev": "status", "status": "success", "message": f"subscribed to: {topic}"}
                )
            else:
                self._remove_topic(conn, prefix, symbol, topic)
                replies.append(
                    {"ev": "status", "status": "success", "message": f"unsubscribed to: {topic}"}
                )
        if replies:
            self._reply(conn, _encode(replies))
        self.watch.notify()

    def _reply(self, conn: _Connection, frame: bytes) -> None:
        conn.control.append(frame)
        conn.idle.clear()
        conn.wake.set()

    def _add_topic(self, conn: _Connection, prefix: str, symbol: str, topic: str) -> None:
        if conn.closing or topic in conn.subs:
            return
        conn.subs.add(topic)
        if symbol == "*":
            self._wild.setdefault(prefix, set()).add(conn)
        else:
            self._exact.setdefault(prefix, {}).setdefault(symbol, set()).add(conn)
        self._subscribed.set()

    def _remove_topic(self, conn: _Connection, prefix: str, symbol: str, topic: str) -> None:
        conn.subs.discard(topic)
        if symbol == "*":
            wild = self._wild.get(prefix)
            if wild is not None:
                wild.discard(conn)
                if not wild:
                    del self._wild[prefix]
        else:
            by_symbol = self._exact.get(prefix)
            if by_symbol is not None:
                targets = by_symbol.get(symbol)
                if targets is not None:
                    targets.discard(conn)
                    if not targets:
                        del by_symbol[symbol]
                if not by_symbol:
                    del self._exact[prefix]
        if not (self._wild or self._exact):
            self._subscribed.clear()

    def _unindex(self, conn: _Connection) -> None:
        for topic in list(conn.subs):
            prefix, _, symbol = topic.partition(".")
            self._remove_topic(conn, prefix, symbol, topic)
        conn.pending.clear()
        conn.pending_bytes = 0

    def _forget(self, conn: _Connection) -> None:
        conn.closing = True
        self._unindex(conn)
        self._connections.discard(conn)
        if conn.key is not None and self._by_key.get((conn.key, conn.market)) is conn:
            del self._by_key[(conn.key, conn.market)]
        conn.idle.set()
        self.watch.notify()

    # ----------------------------------------------------------------- writing

    async def _writer(self, conn: _Connection) -> None:
        """Turn the connection's queue into frames: one per flush interval or size cap."""
        config = self.config
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        while True:
            if conn.closing:
                return
            if self.faults.massive.is_stalled(conn.key):
                # Stalled: keep the socket open and silent; re-check the switch each interval.
                conn.pending.clear()
                conn.pending_bytes = 0
                conn.idle.set()
                await asyncio.sleep(config.flush_interval)
                continue
            if not conn.control and not conn.pending:
                conn.idle.set()
                conn.wake.clear()
                await conn.wake.wait()
                continue
            while conn.control:
                await self._send(conn, conn.control.popleft(), 0)
            if not conn.pending:
                continue
            if len(conn.pending) < config.max_events_per_frame and not conn.urgent:
                remaining = last_flush + config.flush_interval - loop.time()
                if remaining > 0:
                    await asyncio.sleep(remaining)
            conn.urgent = False
            last_flush = loop.time()
            await self._flush_pending(conn)

    async def _flush_pending(self, conn: _Connection) -> None:
        config = self.config
        while conn.pending and not conn.closing:
            chunk: list[bytes] = []
            size = 2
            while conn.pending and len(chunk) < config.max_events_per_frame:
                element = conn.pending[0]
                if chunk and size + len(element) + 1 > config.max_frame_bytes:
                    break
                conn.pending.popleft()
                chunk.append(element)
                size += len(element) + 1
            conn.pending_bytes = max(0, conn.pending_bytes - size + 2)
            faults = self.faults.massive
            if faults.malformed_ratio > 0 and self._rng.random() < faults.malformed_ratio:
                bad = _malformed(chunk, self._rng.choice(faults.malformed_kinds))
                self.metrics.malformed_frames += 1
                await self._send(conn, bad, 0)
            await self._send(conn, b"[" + b",".join(chunk) + b"]", len(chunk))

    async def _send(self, conn: _Connection, frame: bytes, events: int) -> None:
        limit = self.faults.massive.slow_consumer_seconds
        try:
            async with asyncio.timeout(limit):
                await conn.ws.send(frame, text=True)
        except TimeoutError:
            self._drop_slow_consumer(conn)
            return
        self.metrics.frames_sent += 1
        self.metrics.events_sent += events
        self.metrics.bytes_sent += len(frame)

    def _drop_slow_consumer(self, conn: _Connection) -> None:
        if self._begin_close(conn):
            self.metrics.slow_consumer_kicks += 1
            self._spawn(self._close_socket(conn, _SLOW_CONSUMER, _POLICY, "slow consumer"))

    async def _terminate(
        self, conn: _Connection, status: bytes | None, code: int | None, reason: str
    ) -> None:
        """Send an optional status then close; abort the socket if the client does not cooperate."""
        if self._begin_close(conn):
            await self._close_socket(conn, status, code, reason)

    def _begin_close(self, conn: _Connection) -> bool:
        """Stop routing to ``conn``; False if it was already being closed."""
        if conn.closing:
            return False
        conn.closing = True
        self._unindex(conn)
        conn.idle.set()
        conn.wake.set()
        self.watch.notify()
        return True

    async def _close_socket(
        self, conn: _Connection, status: bytes | None, code: int | None, reason: str
    ) -> None:
        ws = conn.ws
        _log.info("massive_connection_closing", extra={"reason": reason, "code": code})
        if code is None:
            if ws.transport is not None:
                ws.transport.abort()
            return
        grace = self.config.close_timeout
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            if status is not None:
                async with asyncio.timeout(grace):
                    await ws.send(status, text=True)
        try:
            async with asyncio.timeout(grace * 2):
                await ws.close(code, reason)
        except TimeoutError:
            if ws.transport is not None:
                ws.transport.abort()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _union(wild: set[_Connection] | None, exact: set[_Connection] | None) -> Iterable[_Connection]:
    """Each connection once, whether it matched by wildcard, by symbol or both."""
    if wild:
        yield from wild
    if exact:
        for conn in exact:
            if not wild or conn not in wild:
                yield conn


def _parse_action(raw: str | bytes) -> tuple[str, str] | None:
    """Decode a client message into ``(action, params)``; ``None`` if it is not one."""
    try:
        message = _decode(raw)
    except msgspec.DecodeError:
        return None
    if not isinstance(message, dict):
        return None
    action = message.get("action")
    params = message.get("params", "")
    if not isinstance(action, str) or not isinstance(params, str):
        return None
    return action, params


_NESTING: Final = 5_000


def _malformed(chunk: list[bytes], kind: MalformedKind) -> bytes:
    """Build one bad frame of the given kind from the first event of a good chunk."""
    first = chunk[0]
    if kind is MalformedKind.OBJECT:
        return first
    if kind is MalformedKind.BAD_JSON:
        good = b"[" + b",".join(chunk) + b"]"
        return good[: max(1, len(good) // 2)]
    if kind is MalformedKind.NESTED:
        # Valid JSON far under any size limit, nested past every decoder's recursion limit.
        return b"[" + first + b"," + b"[" * _NESTING + b"]" * _NESTING + b"]"
    event = _decode(first)
    if not isinstance(event, dict):  # pragma: no cover - we encoded it from a dict
        return first
    if kind is MalformedKind.MISSING_EV:
        event.pop("ev", None)
    elif kind is MalformedKind.WRONG_TYPES:
        for name, value in list(event.items()):
            if name in {"ev", "sym", "T"}:
                continue
            event[name] = str(value) if not isinstance(value, str) else 0
    else:
        for name, value in list(event.items()):
            if isinstance(value, float | int) and not isinstance(value, bool):
                event[name] = "NaN"
    return _encode([event])
