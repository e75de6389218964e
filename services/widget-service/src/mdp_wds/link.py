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

On one Redis the WDS holds one such link. On a Redis Cluster (a ``redis+cluster://`` URL, which
``MDP_REDIS_CLUSTER=true`` makes) a ``PUBLISH`` reaches every node over the cluster bus, which
does not scale with the shards, so :class:`~mdp_wds.shards.ClusterPubSub` holds one *sharded*
link per master instead (``sharded=True``: ``SSUBSCRIBE``, one command per channel since one
command may only name one slot, ``smessage`` replies; a ``-MOVED`` answer or an ``sunsubscribe``
Redis sends of its own accord reports the slot through ``on_moved`` without dropping the
connection), plus one plain link for the patterns.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from mdp_cache.client import CLUSTER_SCHEMES, PUBSUB_RECONNECT, slot_of
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.logging import get_logger
from mdp_wds.resp import ErrorReply, RespParser, RespValue

__all__ = [
    "Endpoint",
    "LinkError",
    "PubSubLink",
    "RespError",
    "moved_slot",
    "request",
    "until_done",
]

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


async def _read_replies(
    reader: asyncio.StreamReader, parser: RespParser, *, errors: bool = False
) -> list[RespValue]:
    """The replies the next bytes from Redis complete (waits until at least one is complete).

    With ``errors`` an error reply is returned (an :class:`~mdp_wds.resp.ErrorReply`) instead
    of raised.

    Raises:
        EOFError: when Redis closed the connection.
        RespError: when Redis answered with an error reply (unless ``errors``).
        RespProtocolError: when the bytes are not RESP.
    """
    while True:
        data = await reader.read(_READ_SIZE)
        if not data:
            raise EOFError("redis closed the connection")
        replies = parser.feed(data)
        if not errors:
            for reply in replies:
                if isinstance(reply, ErrorReply):
                    raise RespError(reply.message)
        if replies:
            return replies


def moved_slot(error: str) -> int | None:
    """The slot of a cluster redirection (``MOVED 3999 10.0.0.2:6379``, ``ASK ...``), else None."""
    parts = error.split()
    if len(parts) == 3 and parts[0] in {"MOVED", "ASK"} and parts[1].isdigit():
        return int(parts[1])
    return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one Redis node answers and how to log in (from a URL; credentials not shown)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """The node a ``redis://``/``rediss://`` URL names (or a cluster URL's seed node).

        Raises:
            ValueError: for any other scheme.
        """
        parts = urlsplit(url)
        scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
        if scheme not in {"redis", "rediss"}:
            msg = f"the pub/sub link needs a redis:// or rediss:// URL; got {parts.scheme!r}"
            raise ValueError(msg)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            tls=scheme == "rediss",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def at(self, host: str, port: int) -> Endpoint:
        """Another node of the same cluster (same TLS and credentials)."""
        return replace(self, host=host, port=port)

    @property
    def address(self) -> str:
        """``host:port``, for logs."""
        return f"{self.host}:{self.port}"


async def _connect(
    endpoint: Endpoint, parser: RespParser
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``endpoint``, logged in; the caller must close its writer.

    Raises:
        OSError, EOFError, TimeoutError, LinkError: the node did not answer well.
        asyncio.CancelledError: also when the caller is being cancelled once the connection
            is made (a cancellation a library's ``wait_for`` lost on Python 3.11, CPython
            gh-86296): it is closed, never handed to a caller that is stopping.
    """
    context = ssl.create_default_context() if endpoint.tls else None
    async with asyncio.timeout(_CONNECT_TIMEOUT):
        reader, writer = await asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=context, limit=2**20
        )
    try:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        if endpoint.password is not None:
            args = ["AUTH", endpoint.password]
            if endpoint.username:
                args.insert(1, endpoint.username)
            writer.write(_encode(*args))
            # raises RespError; nothing else is in flight, so the one reply is AUTH's
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                await _read_replies(reader, parser)
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def request(endpoint: Endpoint, *args: str) -> RespValue:
    """One command on a short-lived connection (``CLUSTER SLOTS``), its reply.

    Raises:
        OSError, EOFError, TimeoutError, LinkError, ValueError: the node did not answer well.
    """
    parser = RespParser()
    reader, writer = await _connect(endpoint, parser)
    try:
        writer.write(_encode(*args))
        async with asyncio.timeout(_CONNECT_TIMEOUT):
            replies = await _read_replies(reader, parser)
        return replies[0]
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


async def until_done(task: asyncio.Task[None]) -> None:
    """Wait until a cancelled ``task`` has finished (its connection closed).

    Its ``CancelledError`` is the expected end; a cancellation of the *caller* while it waits
    is not swallowed with it (``contextlib.suppress`` would: the caller then ran on after being
    stopped, opening links nobody would close).

    Raises:
        asyncio.CancelledError: when the caller itself was cancelled meanwhile.
    """
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


MessageCallback = Callable[[bytes, bytes | None, bytes], None]
"""``(channel, pattern or None, payload)`` for each published message."""


class PubSubLink:
    """A self-healing Redis subscriber connection.

    Args:
        url: ``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS), or the
            :class:`Endpoint` of a node. Pub/sub is not scoped by database, so the database
            number is ignored.
        on_message: Called for each message, on the event loop, without awaiting.
        on_resync: Called after a reconnect once every subscription is active again (not on
            the first connect).
        on_state: Called with ``True``/``False`` when the link comes up or goes down.
        backoff: Reconnect delays (:mod:`mdp_core.backoff`), restarted after a link that worked.
        rng: Random source of the reconnect jitter.
        ping_interval: Seconds between keepalive PINGs.
        sharded: Channels are shard channels of a Redis Cluster master: ``SSUBSCRIBE`` (one
            command per channel, since one command may only name channels of one slot),
            ``smessage`` replies. Patterns are not for a sharded link.
        on_moved: On a sharded link, called with the slot whose channels Redis no longer serves
            here: a ``MOVED``/``ASK`` answer to ``SSUBSCRIBE``, or an ``sunsubscribe`` Redis sent
            of its own accord (the slot migrated, or this node is no longer its master). Those
            channels stay wanted (inactive) until the caller moves them elsewhere.
    """

    def __init__(
        self,
        url: str | Endpoint,
        on_message: MessageCallback,
        *,
        on_resync: Callable[[], None] = lambda: None,
        on_state: Callable[[bool], None] = lambda _up: None,
        backoff: BackoffPolicy = PUBSUB_RECONNECT,
        rng: random.Random | None = None,
        ping_interval: float = 15.0,
        sharded: bool = False,
        on_moved: Callable[[int], None] = lambda _slot: None,
    ) -> None:
        self._endpoint = Endpoint.from_url(url) if isinstance(url, str) else url
        self._on_message = on_message
        self._on_resync = on_resync
        self._on_state = on_state
        self._backoff = Backoff(backoff, rng or random.Random())
        self._ping_interval = ping_interval
        self._sharded = sharded
        self._on_moved = on_moved
        self._subscribe_command = "SSUBSCRIBE" if sharded else "SUBSCRIBE"
        self._wanted: dict[Kind, set[bytes]] = {"channel": set(), "pattern": set()}
        self._confirm: defaultdict[tuple[Kind, bytes], deque[asyncio.Future[bool]]] = defaultdict(
            deque
        )
        self._active: set[tuple[Kind, bytes]] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._resync_pending: set[tuple[Kind, bytes]] = set()
        self._first_connect = True
        self._last_seen = 0.0

    @property
    def endpoint(self) -> Endpoint:
        """The node this link subscribes on."""
        return self._endpoint

    @property
    def connected(self) -> bool:
        """Whether the link is up and subscribed to everything wanted."""
        return self._connected.is_set()

    @property
    def subscription_count(self) -> int:
        """Channels plus patterns currently wanted."""
        return len(self._wanted["channel"]) + len(self._wanted["pattern"])

    def is_active(self, name: str, kind: Kind) -> bool:
        """Whether Redis has confirmed the subscription and not ended it since."""
        return (kind, name.encode()) in self._active

    def is_pending(self, name: str, kind: Kind) -> bool:
        """Whether a subscribe command of the name awaits its confirmation."""
        return bool(self._confirm.get((kind, name.encode())))

    async def wait_connected(self, within: float | None = None) -> bool:
        """Wait until the link is up; ``False`` when ``within`` seconds pass first."""
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        """Start the connection task (idempotent)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wds-pubsub")

    def move_to(self, endpoint: Endpoint) -> None:
        """Subscribe on another node from the next connection on; a live one is dropped now.

        Everything wanted is subscribed there, followed by ``on_resync`` as after a reconnect.
        """
        if endpoint == self._endpoint:
            return
        _log.info("redis_link_moved", node=endpoint.address, previous=self._endpoint.address)
        self._endpoint = endpoint
        writer = self._writer
        if writer is not None:
            writer.transport.abort()

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        self._stopping = True
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                await until_done(task)
        finally:
            self._resolve_all(False)

    async def subscribe(self, name: str, kind: Kind) -> bool:
        """Subscribe to a channel or pattern and wait until Redis has confirmed it.

        A name that is already active returns at once and one whose ``SUBSCRIBE`` is in flight
        shares that confirmation, so Redis sees one command per name however many callers ask.

        Returns:
            ``True`` once the subscription is active; ``False`` when the link is down (the
            subscription is kept and made on reconnect, followed by ``on_resync``) or, on a
            sharded link, when Redis redirected it (``on_moved``).
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
        writer.write(_encode(self._subscribe_command if kind == "channel" else "PSUBSCRIBE", key))
        return await asyncio.shield(future)

    def unsubscribe(self, name: str, kind: Kind) -> None:
        """Drop a channel or pattern (no confirmation needed: late messages are ignored)."""
        key = name.encode()
        self._wanted[kind].discard(key)
        was_active = (kind, key) in self._active
        self._active.discard((kind, key))
        if self._sharded and not was_active and not self._confirm.get((kind, key)):
            return  # Redis ended it already (the slot moved): it would answer MOVED
        writer = self._writer
        if writer is not None and self._connected.is_set():
            command = "PUNSUBSCRIBE" if kind == "pattern" else "UNSUBSCRIBE"
            writer.write(_encode("S" + command if self._sharded else command, key))

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
                _log.warning(
                    "redis_link_lost",
                    node=self._endpoint.address,
                    error=repr(exc),
                    failures=backoff.attempt + 1,
                )
            finally:
                self._down()
            await asyncio.sleep(backoff.wait())

    async def _session(self) -> None:
        parser = RespParser()
        reader, writer = await _connect(self._endpoint, parser)
        pinger: asyncio.Task[None] | None = None
        try:  # from here on, however the session ends (cancelled, a callback raising), close
            self._writer = writer
            loop = asyncio.get_running_loop()
            self._last_seen = loop.time()
            channels, patterns = sorted(self._wanted["channel"]), sorted(self._wanted["pattern"])
            self._resync_pending = {("channel", c) for c in channels} | {
                ("pattern", p) for p in patterns
            }
            if channels and self._sharded:  # one slot per SSUBSCRIBE: one command per channel
                writer.write(b"".join(_encode("SSUBSCRIBE", channel) for channel in channels))
            elif channels:
                writer.write(_encode("SUBSCRIBE", *channels))
            if patterns:
                writer.write(_encode("PSUBSCRIBE", *patterns))
            await writer.drain()
            pinger = loop.create_task(self._keepalive(writer))
            if not self._resync_pending:
                self._up()
            while True:
                # RespProtocolError: a ValueError; error replies: see _handle_error
                replies = await _read_replies(reader, parser, errors=True)
                self._last_seen = loop.time()
                for reply in replies:
                    self._handle(reply)
        finally:
            if pinger is not None:
                pinger.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _keepalive(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            if loop.time() - self._last_seen > 2 * self._ping_interval:
                _log.warning("redis_link_silent_reconnecting", node=self._endpoint.address)
                writer.transport.abort()
                return
            writer.write(_encode("PING"))

    def _handle(self, reply: RespValue) -> None:
        if not isinstance(reply, list) or not reply or not isinstance(reply[0], bytes):
            if isinstance(reply, ErrorReply):
                self._handle_error(reply)
            return
        kind = reply[0]
        if kind in {b"message", b"smessage"} and len(reply) == 3:  # the hot path first
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
        elif len(reply) > 1 and isinstance(reply[1], bytes):
            if kind in {b"subscribe", b"ssubscribe"}:
                self._confirmed("channel", reply[1])
            elif kind == b"psubscribe":
                self._confirmed("pattern", reply[1])
            elif kind == b"sunsubscribe" and reply[1] in self._wanted["channel"]:
                # Not ours (ours are for names no longer wanted): Redis ended it because the
                # slot moved away from this node.
                self._active.discard(("channel", reply[1]))
                slot = slot_of(reply[1])
                _log.info("redis_shard_channel_moved", node=self._endpoint.address, slot=slot)
                self._on_moved(slot)

    def _handle_error(self, reply: ErrorReply) -> None:
        """A redirection on a sharded link names the slot; any other error ends the link.

        Raises:
            RespError: for every error but a redirection of a sharded link.
        """
        slot = moved_slot(reply.message) if self._sharded else None
        if slot is None:
            raise RespError(reply.message)
        _log.info("redis_shard_channel_moved", node=self._endpoint.address, slot=slot)
        for key in [k for k in self._wanted["channel"] if slot_of(k) == slot]:
            self._active.discard(("channel", key))
            for future in self._confirm.pop(("channel", key), ()):
                if not future.done():
                    future.set_result(False)
            self._resynced(("channel", key))  # not to be confirmed here: the caller moves it
        self._on_moved(slot)

    def _resynced(self, entry: tuple[Kind, bytes]) -> None:
        if entry in self._resync_pending:
            self._resync_pending.discard(entry)
            if not self._resync_pending:
                self._up()

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
        else:
            self._resynced((kind, key))

    def _up(self) -> None:
        self._connected.set()
        self._on_state(True)
        if self._first_connect:
            self._first_connect = False
            _log.info(
                "redis_link_up", node=self._endpoint.address, subscriptions=self.subscription_count
            )
        else:
            _log.info(
                "redis_link_restored",
                node=self._endpoint.address,
                subscriptions=self.subscription_count,
            )
            self._on_resync()

    def _down(self) -> None:
        was_up = self._connected.is_set()
        self._connected.clear()
        self._writer = None
        self._active.clear()
        self._resync_pending.clear()
        self._resolve_all(False)
        if was_up:
            self._on_state(False)

    def _resolve_all(self, value: bool) -> None:
        for waiters in self._confirm.values():
            for future in waiters:
                if not future.done():
                    future.set_result(value)
        self._confirm.clear()
