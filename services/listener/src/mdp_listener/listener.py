"""The Massive data listener: one upstream websocket, every event routed to its queue.

The official ``massive`` client runs in raw mode, so its receive loop does nothing but hand us
each frame. Our callback splits the frame by event type without decoding events
(:func:`mdp_core.wire.split_frame`), appends the slices to per-type batches and returns: it
never waits on the broker (the publisher's outbox sits in between), so the provider never
sees a slow reader.

The client's own reconnect logic is not what a singleton on a one-socket-per-key plan needs
(immediate retries, a ping-pong of ``max_connections`` kicks, no staleness check), so it runs
with ``max_reconnects=0`` and :meth:`MassiveListener.run` supervises it:

* jittered exponential backoff after a drop, reset once a connection proved stable;
* after a ``max_connections`` kick, a fast first retry and a long backoff only for a second
  kick in a row. Massive allows one websocket per key and cluster and closes the *older*
  connection when another authenticates, so a single kick is normally our own overlap (a
  reconnect or a deploy) and reconnecting at once gets data back; a second kick in a row means
  another copy holds the key, and backing off (logged at ERROR) lets the other copy win
  instead of the two knocking each other off in a loop;
* ``auth_failed`` on the configured feed ends the run with :class:`mdp_runtime.AuthError`
  (exit code 77); on a feed switched to at run time it reverts to the last feed that accepted
  the key instead (a switch is only allowed to ``host:port`` pairs of ``feed_allow``, with TLS
  for every host that is not loopback: the key goes wherever the feed points);
* outside market sessions (by the calendar) it waits for the next session instead of
  reconnect-looping, unless ``always_on``;
* a watchdog forces a reconnect when an open socket goes silent during a session.

Readiness says what the feed is doing (:attr:`MassiveListener.feed_state`): ``streaming``;
``stale`` when the feed has been silent for ``ready_stale_seconds`` in a session (unready, so
something outside notices); ``closed`` when it waits for the next session, which is ready: a
healthy idle listener outside market hours must not fail a deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import random
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

from massive import WebSocketClient
from massive.exceptions import AuthError as MassiveAuthError
from websockets.exceptions import ConnectionClosed

from mdp_core.calendar import MarketCalendar, Session
from mdp_core.cancellation import cancel_until_done
from mdp_core.cleartext import is_loopback
from mdp_core.clock import NS_PER_SECOND, Clock
from mdp_core.logging import get_logger
from mdp_core.telemetry import BoundCounter, Metrics
from mdp_core.wire import split_frame
from mdp_listener.batcher import Batcher, FlushedBatch
from mdp_listener.settings import KNOWN_CHANNELS, ListenerSettings
from mdp_queues import Publisher
from mdp_runtime import AuthError
from mdp_runtime.stream import Interruption, StreamState, UpstreamStream

__all__ = [
    "InvalidTopicError",
    "ListenerState",
    "MassiveListener",
    "SessionOutcome",
    "validate_topics",
]

_log = get_logger("mdp_listener")

_KICK_STATUS: Final = "max_connections"
_CLOSE_SECONDS: Final = 3.0
"""How long a closing handshake with the provider may take before the socket is dropped."""


class InvalidTopicError(ValueError):
    """A subscription topic that is not ``<EV>.<SYMBOL|*>`` with a known event code."""


ListenerState = StreamState
"""What the listener is doing right now (the state machine of :mod:`mdp_runtime.stream`)."""


class SessionOutcome(enum.StrEnum):
    """Why the provider's side ended one upstream connection (ours: an ``Interruption``)."""

    CLOSED = "closed"
    ERROR = "error"
    KICKED = "kicked"
    STALE = "stale"


def validate_topics(topics: Sequence[str]) -> tuple[str, ...]:
    """Check and normalise subscription topics (order kept, duplicates removed).

    Raises:
        InvalidTopicError: naming the first bad topic and why.
    """
    seen: dict[str, None] = {}
    for raw in topics:
        topic = raw.strip()
        channel, _, symbol = topic.partition(".")
        if channel not in KNOWN_CHANNELS or not symbol:
            known = ", ".join(sorted(KNOWN_CHANNELS))
            msg = f"topic {raw!r} must be <EV>.<SYMBOL> or <EV>.* with EV one of {known}"
            raise InvalidTopicError(msg)
        seen[topic] = None
    return tuple(seen)


class MassiveListener(UpstreamStream[SessionOutcome]):
    """Streams the Massive feed into the market data queues until stopped.

    The connection state machine, pause/resume and the reconnect backoff are the shared
    :class:`mdp_runtime.stream.UpstreamStream`; this class adds the Massive protocol (raw
    frames, kicks, the calendar, the watchdog, feed switches).

    Usable in-process (the embedded demo passes a :class:`mdp_queues.MemoryBus` publisher) as
    well as from the service entry point.

    Args:
        settings: the listener settings (feed, topics, backoffs, batching).
        publisher: where batches go; it must never block (both MDQ publishers qualify).
        clock: time source for sleeps, the calendar and ``received_ns``.
        metrics: the ``listener`` metrics registry.
        calendar: market sessions; the US equities calendar by default.
        source: the envelope ``source`` written into every batch.
        instance: this process's id in batch ids and heartbeats.
        rng: random source of the backoff jitter (seed it in tests).
    """

    def __init__(
        self,
        settings: ListenerSettings,
        publisher: Publisher,
        clock: Clock,
        metrics: Metrics,
        *,
        calendar: MarketCalendar | None = None,
        source: str = "massive",
        instance: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if settings.api_key is None or not settings.api_key:
            msg = "a Massive API key is required (MASSIVE_API_KEY or MDP_MASSIVE_API_KEY_FILE)"
            raise AuthError(msg)
        super().__init__(
            clock=clock,
            backoff=settings.reconnect_backoff,
            reconnects=metrics.counter("reconnects", "{reconnect}", "upstream reconnects"),
            enabled=settings.autostart,
            rng=rng,
            log=_log,
        )
        self._settings = settings
        self._publisher = publisher
        self._metrics = metrics
        self._calendar = calendar or settings.calendar
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self._feed = settings.feed
        self._market = settings.market
        self._secure = settings.secure
        self._allowed_feeds = frozenset(_feed_address(f, secure=True) for f in settings.feed_allow)
        # The feed that last accepted the key (the configured one until a switch proves itself).
        self._last_good = (self._feed, self._market, self._secure)
        self._topics = validate_topics(settings.topics)
        self._client: WebSocketClient | None = None
        self._streaming = False
        self._kicked = False
        self._kicks_in_row = 0
        self._closing_session = False
        self._last_frame = 0.0
        self._last_frame_ms = 0
        self._events_in: dict[str, BoundCounter] = {}
        self._events_unknown = metrics.counter("events_unknown", description="dropped: no queue")
        self._malformed = metrics.counter("malformed", description="bad frame elements skipped")
        self._statuses = metrics.counter("statuses", "{status}", "provider status messages")
        self._kicks = metrics.counter("kicks", "{kick}", "max_connections kicks")
        self._frames = metrics.counter("frames", "{frame}", "websocket frames received")
        self._frame_bytes = metrics.counter("frame_bytes", "By", "websocket payload received")
        self._batches = metrics.counter("batches", "{batch}", "queue messages built")
        self._frame_size = metrics.latency("frame_size", "By", "websocket frame sizes")
        self._lag = metrics.latency("lag", "s", "now minus event time at publish")
        self._batcher = Batcher(
            publisher.topology,
            publisher,
            source=source,
            instance=self.instance,
            batch_events=settings.batch_events,
            on_flush=self._on_flush,
        )

    # ---------------------------------------------------------------- observation

    @property
    def streaming(self) -> bool:
        """Whether an upstream connection is open and delivering frames."""
        return self._streaming

    @property
    def ready(self) -> bool:
        """Ready means the feed is streaming (or closed for the day) and the broker is up."""
        return self.upstream_readiness()[0] and self._publisher.connected

    @property
    def feed_state(self) -> str:
        """What the feed is doing: a word for readiness, ``/status`` and the health page.

        ``streaming``, ``stale`` (silent in a session), ``closed`` (no session now), or the
        :class:`ListenerState` while connecting or backing off.
        """
        if self._streaming:
            silent = self._clock.monotonic() - self._last_frame
            if silent > self._settings.ready_stale_seconds and self._in_session():
                return "stale"
            return "streaming"
        if self.state is ListenerState.WAITING_FOR_SESSION:
            return "closed"
        return str(self.state)

    def upstream_readiness(self) -> tuple[bool, str]:
        """Readiness of the upstream side, with the feed state as the reason."""
        state = self.feed_state
        return state in {"streaming", "closed"}, state

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topics subscribed (or to subscribe on the next connection)."""
        return self._topics

    @property
    def feed(self) -> str:
        """The feed host (or host:port) currently used."""
        return self._feed

    @property
    def market(self) -> str:
        """The Massive market (URL path) currently used."""
        return self._market

    @property
    def sessions(self) -> int:
        """Upstream connections attempted so far."""
        return self.connections

    def status(self) -> dict[str, Any]:
        """A JSON-friendly picture of the listener for ``/status`` and heartbeats."""
        stats = self._publisher.stats
        return {
            "state": str(self.state),
            "feed_state": self.feed_state,
            "instance": self.instance,
            "feed": self._feed,
            "market": self._market,
            "secure": self._secure,
            "topics": list(self._topics),
            "enabled": self._enabled,
            "streaming": self._streaming,
            "broker_connected": self._publisher.connected,
            "sessions": self.sessions,
            "last_outcome": None if self.last_outcome is None else str(self.last_outcome),
            "pending_events": self._batcher.pending_events,
            "events_received": self._metrics.counter("events_in").total,
            "last_frame_ms": self._last_frame_ms,
            "published_events": dict(stats.published_events),
            "dropped_events": dict(stats.dropped_events),
        }

    def metrics_snapshot(self) -> dict[str, Any]:
        """The registry's figures plus the publisher's counters (events out and drops)."""
        snapshot = self._metrics.snapshot()
        stats = self._publisher.stats
        snapshot["queue"] = {
            "published_messages": dict(stats.published_messages),
            "published_events": dict(stats.published_events),
            "dropped_messages": dict(stats.dropped_messages),
            "dropped_events": dict(stats.dropped_events),
            "broker_reconnects": stats.reconnects,
            "broker_connected": int(self._publisher.connected),
        }
        snapshot["upstream"] = {
            "streaming": int(self._streaming),
            "pending_events": self._batcher.pending_events,
        }
        return snapshot

    # ---------------------------------------------------------------- control

    def set_subscriptions(self, topics: Sequence[str]) -> tuple[str, ...]:
        """Replace the subscriptions; a live connection changes within about a second.

        Raises:
            InvalidTopicError: a topic is malformed (nothing is changed then).
        """
        wanted = validate_topics(topics)
        client = self._client
        if client is not None:
            removed = [t for t in self._topics if t not in wanted]
            added = [t for t in wanted if t not in self._topics]
            if removed:
                client.unsubscribe(*removed)
            if added:
                client.subscribe(*added)
        self._topics = wanted
        _log.info("subscriptions_changed", topics=list(wanted))
        return wanted

    def set_feed(self, feed: str, *, market: str | None = None, secure: bool | None = None) -> None:
        """Switch feed (and optionally market and TLS); reconnects at once if connected.

        The API key is sent to whatever the feed names, so only ``feed_allow`` pairs are
        accepted, and only over TLS unless the host is loopback; nothing is changed otherwise.

        Raises:
            ValueError: the feed is empty, not on the allow-list, or without TLS off loopback.
        """
        if not feed.strip():
            msg = "the feed must be a host or host:port"
            raise ValueError(msg)
        tls = self._secure if secure is None else secure
        address = _feed_address(feed, secure=tls)
        if address not in self._allowed_feeds:
            allowed = ", ".join(sorted(self._allowed_feeds))
            msg = f"feed {address} is not allowed (MDP_LISTENER_FEED_ALLOW: {allowed})"
            raise ValueError(msg)
        if not tls and not is_loopback(address.rsplit(":", 1)[0]):
            msg = f"feed {address} needs TLS (secure: true): only loopback feeds may go without"
            raise ValueError(msg)
        self._feed = feed.strip()
        if market is not None:
            self._market = market
        self._secure = tls
        _log.info("feed_changed", feed=self._feed, market=self._market, secure=self._secure)
        self._request_restart()

    # ---------------------------------------------------------------- supervision

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set.

        Raises:
            AuthError: the provider refused the API key (restarting will not help).
        """
        flusher = asyncio.create_task(self._flush_periodically(), name="mdl-flush")
        try:
            await super().run(stop)
        finally:
            await cancel_until_done(flusher)
            self._batcher.flush()

    def _seconds_until_session(self) -> float:
        if self._settings.always_on:
            return 0.0
        now = self._clock.now()
        if self._calendar.session_at(now) is not Session.CLOSED:
            return 0.0
        opens = self._calendar.next_open_window(now)
        return max(0.0, (opens - now).total_seconds())

    def _in_session(self) -> bool:
        return (
            self._settings.always_on
            or self._calendar.session_at(self._clock.now()) is not Session.CLOSED
        )

    async def _connect(self, stop: asyncio.Event) -> SessionOutcome | Interruption:
        """Run one upstream connection to its end and say why it ended."""
        self._kicked = False
        self._last_frame = self._clock.monotonic()
        api_key = self._settings.api_key
        assert api_key is not None  # checked in __init__
        client = WebSocketClient(
            api_key=api_key.reveal(),
            feed=self._feed,
            market=self._market,
            raw=True,
            subscriptions=list(self._topics),
            max_reconnects=0,
            secure=self._secure,
        )
        self._client = client
        options: dict[str, Any] = {"max_size": self._settings.max_frame_bytes}
        if not self._settings.compression:
            options["compression"] = None
        if not self._settings.use_proxy:
            options["proxy"] = None
        _log.info("connecting_upstream", feed=self._feed, market=self._market)
        connection = asyncio.create_task(client.connect(self._on_frame, **options))
        watchdog = asyncio.create_task(self._watch_for_silence())
        waiters: set[asyncio.Task[Any]] = {connection, watchdog}
        try:
            done, interruption = await self._until_interrupted(stop, waiters)
        finally:
            await self._end_session(client, connection, waiters)
        return self._outcome(done, connection, watchdog, interruption)

    async def _end_session(
        self,
        client: WebSocketClient,
        connection: asyncio.Task[Any],
        waiters: set[asyncio.Task[Any]],
    ) -> None:
        """Stop the client for sure, then tidy up.

        Cancelling the client's task alone is not enough: on Python 3.11 ``asyncio.wait_for``
        (which the client wraps every ``recv`` in) can swallow a cancellation that races with
        an arriving frame, and the client then reads on. So the frame callback refuses to
        continue once the session is closing, and the socket is closed as well.
        """
        self._closing_session = True
        try:
            for waiter in waiters:
                waiter.cancel()
            # Only an open socket needs closing: the client warns ("no websocket open to
            # close") when asked to close none, e.g. when stopping between two connections.
            if not connection.done() and getattr(client, "websocket", None) is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_SECONDS):
                        await client.close()
            while not connection.done():
                connection.cancel()
                await asyncio.wait({connection}, timeout=0.1)
            await asyncio.gather(*waiters, return_exceptions=True)
        finally:
            self._closing_session = False
            self._client = None
            self._streaming = False
            self._batcher.flush()

    def _outcome(
        self,
        done: set[asyncio.Task[Any]],
        connection: asyncio.Task[Any],
        watchdog: asyncio.Task[Any],
        interruption: Interruption | None,
    ) -> SessionOutcome | Interruption:
        if connection in done and not connection.cancelled():
            return self._ended(connection.exception())
        if watchdog in done:
            return SessionOutcome.STALE
        return interruption or Interruption.RESTART

    def _ended(self, error: BaseException | None) -> SessionOutcome:
        """Why the client's connection ended by itself."""
        if isinstance(error, MassiveAuthError):
            return self._refused(error)
        if error is None:
            _log.warning("provider_closed_normally")
            return SessionOutcome.CLOSED
        if self._kicked or _is_kick(error):
            return SessionOutcome.KICKED
        _log.warning("upstream_connection_failed", error=f"{type(error).__name__}: {error}")
        return SessionOutcome.ERROR

    def _refused(self, error: MassiveAuthError) -> SessionOutcome:
        """The feed refused the key: revert a run-time switch, or end the run."""
        current = (self._feed, self._market, self._secure)
        if current != self._last_good:
            # A switched-to feed refused the key: go back rather than die (the control API
            # could not revive a listener that exited).
            self._feed, self._market, self._secure = self._last_good
            _log.error(
                "feed_refused_api_key_reverted",
                hint="the new feed refused the API key; reverted to the last good feed",
                refused=current[0],
                feed=self._feed,
            )
            return SessionOutcome.ERROR
        _log.critical("api_key_refused", detail=str(error))
        msg = f"Massive refused the API key ({error}); check MASSIVE_API_KEY"
        raise AuthError(msg) from error

    def _on_stable(self) -> None:
        """A stable connection ended: the next kick is a first kick again."""
        self._kicks_in_row = 0

    def _fixed_delay(self, outcome: SessionOutcome) -> float | None:
        """Kicks have their own delays: a fast first retry, a long one for a second in a row."""
        if outcome is not SessionOutcome.KICKED:
            self._kicks_in_row = 0
            return None
        settings = self._settings
        self._kicks.add(1)
        self._kicks_in_row += 1
        if self._kicks_in_row == 1:
            _log.warning(
                "kicked_max_connections",
                hint="Massive closes the older connection; reconnecting at once",
                seconds=settings.kick_first_retry_seconds,
                kicks=self._kicks.total,
            )
            return settings.kick_first_retry_seconds
        _log.error(
            "kicked_max_connections_again",
            hint="another process is using this API key (one websocket per key and cluster)",
            seconds=settings.kick_backoff_seconds,
            kicks=self._kicks.total,
            in_row=self._kicks_in_row,
        )
        return settings.kick_backoff_seconds

    async def _watch_for_silence(self) -> None:
        """Return when a session-time connection has been silent for too long."""
        limit = self._settings.stale_after_seconds
        step = min(1.0, limit / 4)
        while True:
            await self._clock.sleep(step)
            now = self._clock.monotonic()
            if not self._in_session():
                self._last_frame = now
                continue
            silent = now - self._last_frame
            if silent > limit:
                self._metrics.counter("stale", "{reconnect}", "watchdog reconnects").add(1)
                _log.warning(
                    "provider_silent_in_session",
                    hint="no data from the provider during a market session; reconnecting",
                    silent_seconds=round(silent, 1),
                    connected=self._client is not None and self._client.websocket is not None,
                )
                return

    async def _flush_periodically(self) -> None:
        interval = self._settings.batch_interval_seconds
        while True:
            await self._clock.sleep(interval)
            self._batcher.flush()

    # ---------------------------------------------------------------- the hot path

    async def _on_frame(self, frame: str | bytes) -> None:
        """The client's callback: split the frame and queue its events; never waits."""
        if self._closing_session:
            raise asyncio.CancelledError  # see _end_session: the client must stop reading
        received_ns = self._clock.now_ns()
        self._last_frame = self._clock.monotonic()
        self._last_frame_ms = received_ns // 1_000_000
        if not self._streaming:
            self._streaming = True
            self.state = ListenerState.STREAMING
            _log.info("streaming", feed=self._feed, topics=list(self._topics))
        size = len(frame)
        self._frames.add(1)
        self._frame_bytes.add(size)
        self._frame_size.record(size)
        split = split_frame(frame)
        if split.statuses:
            for status in split.statuses:
                self._on_status(status.status, status.message)
        if split.errors:
            for error in split.errors:
                self._malformed.add(1, kind=error.kind)
                seen = self._malformed.total
                if seen & (seen - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood cannot flood the log
                    _log.warning("malformed_frame_element_skipped", error=str(error), total=seen)
        batcher_add = self._batcher.add
        for kind, raws in split.by_type.items():
            counter = self._events_in.get(kind)
            if counter is None:
                counter = self._events_in[kind] = self._metrics.counter(
                    "events_in", description="events received"
                ).bind(ev=kind)
            counter.add(len(raws))
            if not batcher_add(kind, raws, received_ns):
                self._events_unknown.add(len(raws), ev=kind)

    def _on_status(self, status: str, message: str) -> None:
        self._statuses.add(1, status=status)
        if status == _KICK_STATUS:
            self._kicked = True
            _log.error("provider_status_max_connections", message=message)
        elif status in {"success", "connected", "auth_success"}:
            if status == "auth_success":
                self._last_good = (self._feed, self._market, self._secure)
            _log.debug("provider_status", status=status, message=message)
        else:
            _log.warning("provider_status", status=status, message=message)

    def _on_flush(self, batch: FlushedBatch) -> None:
        self._batches.add(1)
        if batch.event_time_ns is not None:
            self._lag.record((self._clock.now_ns() - batch.event_time_ns) / NS_PER_SECOND)


def _is_kick(error: BaseException) -> bool:
    """A close 1008 whose reason mentions max connections (the status may have been missed)."""
    if not isinstance(error, ConnectionClosed) or error.rcvd is None:
        return False
    return error.rcvd.code == 1008 and "max" in error.rcvd.reason.lower()


def describe(settings: ListenerSettings) -> Mapping[str, object]:
    """The settings worth logging at start-up (no secrets)."""
    return {
        "feed": settings.feed,
        "market": settings.market,
        "topics": list(settings.topics),
        "always_on": settings.always_on,
        "autostart": settings.autostart,
        "batch_events": settings.batch_events,
    }


def _feed_address(feed: str, *, secure: bool) -> str:
    """``host:port`` of a feed setting (``socket.massive.com`` means port 443 with TLS)."""
    text = feed.strip().lower()
    if text.startswith("[") and "]:" in text:  # [::1]:8080
        return text
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host and ":" not in host:
        return f"{host}:{int(port)}"
    return f"{text}:{443 if secure else 80}"
