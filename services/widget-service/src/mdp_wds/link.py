"""One Redis connection in subscriber mode, owned explicitly: reconnect, resubscribe, notify.

redis-py's pub/sub object reconnects and resubscribes behind the caller's back, which hides the
one event the WDS must act on (after a gap, every client's snapshot is stale and must be re-sent)
and makes concurrent subscribe/read on one socket fragile. This module speaks the few RESP2
commands a subscriber needs over a plain asyncio stream instead (replies parsed by the sans-I/O
:class:`~mdp_wds.resp.RespParser`, fed whatever bytes arrive):

* :meth:`PubSubLink.subscribe` sends ``SUBSCRIBE``/``PSUBSCRIBE`` and returns once Redis has
  confirmed it, so a caller may read a snapshot knowing no later publish can be missed.
* A single reader task dispatches ``message``/``pmessage`` to a callback (never awaited per
  client; the callback must not block).
* On any connection loss it reconnects with jittered exponential backoff, re-subscribes every
  channel and pattern in one command each, and calls ``on_resync`` once Redis has confirmed all
  of them.
* A PING every ``ping_interval`` detects a half-open connection (no answer for two intervals).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from mdp_cache.client import PUBSUB_RECONNECT
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.logging import get_logger
from mdp_wds.resp import ErrorReply, RespParser, RespValue

__all__ = ["LinkError", "PubSubLink", "RespError"]

_log = get_logger(__name__)

Kind = Literal["channel", "pattern"]

_CONNECT_TIMEOUT: Final = 5.0
_READ_SIZE: Final = 64 * 1024


class LinkError(Exception):
    """The link to Redis is unusable (connection refused, dropped or misbehaving)."""


class RespError(LinkError):
    """Redis answered with an error reply."""


def _encode(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def _read_replies(reader: asyncio.StreamReader, parser: RespParser) -> list[RespValue]:
    """The replies the next bytes from Redis complete (waits until at least one is complete).

    Raises:
        EOFError: when Redis closed the connection.
        RespError: when Redis answered with an error reply.
        RespProtocolError: when the bytes are not RESP.
    """
    while True:
        data = await reader.read(_READ_SIZE)
        if not data:
            raise EOFError("redis closed the connection")
        replies = parser.feed(data)
        for reply in replies:
            if isinstance(reply, ErrorReply):
                raise RespError(reply.message)
        if replies:
            return replies


MessageCallback = Callable[[bytes, bytes | None, bytes], None]
"""``(channel, pattern or None, payload)`` for each published message."""


def _plain_scheme(scheme: str) -> str:
    """The scheme of a Redis Cluster URL (``redis+cluster``) without the cluster mark.

    On a cluster the link subscribes on the node the URL names: ``PUBLISH`` reaches every node
    (the writers publish both ways there, ``mdp_cache.widgets.publish_flags``), so the plain
    ``SUBSCRIBE``/``PSUBSCRIBE`` of this link receives everything.
    """
    return scheme.removesuffix("+cluster")


class PubSubLink:
    """A self-healing Redis subscriber connection.

    Args:
        url: ``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS). Pub/sub is not
            scoped by database, so the database number is ignored.
        on_message: Called for each message, on the event loop, without awaiting.
        on_resync: Called after a reconnect once every subscription is active again (not on
            the first connect).
        on_state: Called with ``True``/``False`` when the link comes up or goes down.
        backoff: Reconnect delays (:mod:`mdp_core.backoff`), restarted after a link that worked.
        rng: Random source of the reconnect jitter.
        ping_interval: Seconds between keepalive PINGs.
    """

    def __init__(
        self,
        url: str,
        on_message: MessageCallback,
        *,
        on_resync: Callable[[], None] = lambda: None,
        on_state: Callable[[bool], None] = lambda _up: None,
        backoff: BackoffPolicy = PUBSUB_RECONNECT,
        rng: random.Random | None = None,
        ping_interval: float = 15.0,
    ) -> None:
        parts = urlsplit(url)
        scheme = _plain_scheme(parts.scheme)
        if scheme not in {"redis", "rediss"}:
            msg = f"the pub/sub link needs a redis:// or rediss:// URL; got {parts.scheme!r}"
            raise ValueError(msg)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._tls = scheme == "rediss"
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password is not None else None
        self._on_message = on_message
        self._on_resync = on_resync
        self._on_state = on_state
        self._backoff = Backoff(backoff, rng or random.Random())
        self._ping_interval = ping_interval
        self._wanted: dict[Kind, set[bytes]] = {"channel": set(), "pattern": set()}
        self._confirm: defaultdict[tuple[Kind, bytes], deque[asyncio.Future[bool]]] = defaultdict(
            deque
        )
        self._active: set[tuple[Kind, bytes]] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._resync_pending = 0
        self._first_connect = True
        self._last_seen = 0.0

    @property
    def connected(self) -> bool:
        """Whether the link is up and subscribed to everything wanted."""
        return self._connected.is_set()

    @property
    def subscription_count(self) -> int:
        """Channels plus patterns currently wanted."""
        return len(self._wanted["channel"]) + len(self._wanted["pattern"])

    async def wait_connected(self, within: float | None = None) -> bool:
        """Wait until the link is up; ``False`` when ``within`` seconds pass first."""
        try:
            await asyncio.wait_for(self._connected.wait(), within)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        """Start the connection task (idempotent)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wds-pubsub")

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._resolve_all(False)

    async def subscribe(self, name: str, kind: Kind) -> bool:
        """Subscribe to a channel or pattern and wait until Redis has confirmed it.

        A name that is already active returns at once and one whose ``SUBSCRIBE`` is in flight
        shares that confirmation, so Redis sees one command per name however many callers ask.

        Returns:
            ``True`` once the subscription is active; ``False`` when the link is down (the
            subscription is kept and made on reconnect, followed by ``on_resync``).
        """
        key = name.encode()
        self._wanted[kind].add(key)
        if (kind, key) in self._active:
            return True
        writer = self._writer
        if writer is None:
            return False
        waiters = self._confirm[(kind, key)]
        if waiters:
            return await asyncio.shield(waiters[-1])
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        writer.write(_encode("SUBSCRIBE" if kind == "channel" else "PSUBSCRIBE", key))
        return await asyncio.shield(future)

    def unsubscribe(self, name: str, kind: Kind) -> None:
        """Drop a channel or pattern (no confirmation needed: late messages are ignored)."""
        key = name.encode()
        self._wanted[kind].discard(key)
        self._active.discard((kind, key))
        writer = self._writer
        if writer is not None and self._connected.is_set():
            writer.write(_encode("UNSUBSCRIBE" if kind == "channel" else "PUNSUBSCRIBE", key))

    # --- connection loop ------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self._backoff
        while not self._stopping:
            try:
                await self._session()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except (OSError, EOFError, LinkError, asyncio.IncompleteReadError, ValueError) as exc:
                if self._connected.is_set():
                    backoff.reset()  # it worked until now: start the backoff afresh
                _log.warning("redis_link_lost", error=repr(exc), failures=backoff.attempt + 1)
            finally:
                self._down()
            await asyncio.sleep(backoff.wait())

    async def _open(self, parser: RespParser) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl.create_default_context() if self._tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port, ssl=context, limit=2**20),
            _CONNECT_TIMEOUT,
        )
        if self._password is not None:
            args = ["AUTH", self._password]
            if self._username:
                args.insert(1, self._username)
            writer.write(_encode(*args))
            # raises RespError; nothing else is in flight, so the one reply is AUTH's
            await asyncio.wait_for(_read_replies(reader, parser), _CONNECT_TIMEOUT)
        return reader, writer

    async def _session(self) -> None:
        parser = RespParser()
        reader, writer = await self._open(parser)
        self._writer = writer
        loop = asyncio.get_running_loop()
        self._last_seen = loop.time()
        channels, patterns = sorted(self._wanted["channel"]), sorted(self._wanted["pattern"])
        self._resync_pending = len(channels) + len(patterns)
        if channels:
            writer.write(_encode("SUBSCRIBE", *channels))
        if patterns:
            writer.write(_encode("PSUBSCRIBE", *patterns))
        await writer.drain()
        if self._resync_pending == 0:
            self._up()
        pinger = loop.create_task(self._keepalive(writer))
        try:
            while True:
                replies = await _read_replies(reader, parser)  # RespProtocolError: a ValueError
                self._last_seen = loop.time()
                for reply in replies:
                    self._handle(reply)
        finally:
            pinger.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _keepalive(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            if loop.time() - self._last_seen > 2 * self._ping_interval:
                _log.warning("redis_link_silent_reconnecting")
                writer.transport.abort()
                return
            writer.write(_encode("PING"))

    def _handle(self, reply: RespValue) -> None:
        if not isinstance(reply, list) or not reply or not isinstance(reply[0], bytes):
            return
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:  # the hot path first
            channel, payload = reply[1], reply[2]
            if isinstance(channel, bytes) and isinstance(payload, bytes):
                self._on_message(channel, None, payload)
        elif kind == b"pmessage" and len(reply) == 4:
            pattern, channel, payload = reply[1], reply[2], reply[3]
            if (
                isinstance(pattern, bytes)
                and isinstance(channel, bytes)
                and isinstance(payload, bytes)
            ):
                self._on_message(channel, pattern, payload)
        elif (
            kind in {b"subscribe", b"psubscribe"} and len(reply) > 1 and isinstance(reply[1], bytes)
        ):
            self._confirmed("channel" if kind == b"subscribe" else "pattern", reply[1])

    def _confirmed(self, kind: Kind, key: bytes) -> None:
        # Replies come in command order; whichever command a reply answers, the subscription
        # is active, so a waiter may be released by the resubscribe's reply and vice versa.
        if key in self._wanted[kind]:
            self._active.add((kind, key))
        waiters = self._confirm.get((kind, key))
        if waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(True)
            if not waiters:
                del self._confirm[(kind, key)]
        elif self._resync_pending > 0:
            self._resync_pending -= 1
            if self._resync_pending == 0:
                self._up()

    def _up(self) -> None:
        self._connected.set()
        self._on_state(True)
        if self._first_connect:
            self._first_connect = False
            _log.info("redis_link_up", subscriptions=self.subscription_count)
        else:
            _log.info("redis_link_restored", subscriptions=self.subscription_count)
            self._on_resync()

    def _down(self) -> None:
        was_up = self._connected.is_set()
        self._connected.clear()
        self._writer = None
        self._active.clear()
        self._resync_pending = 0
        self._resolve_all(False)
        if was_up:
            self._on_state(False)

    def _resolve_all(self, value: bool) -> None:
        for waiters in self._confirm.values():
            for future in waiters:
                if not future.done():
                    future.set_result(value)
        self._confirm.clear()
