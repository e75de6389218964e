"""Configuration of the Massive data listener (MDL), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from mdp_core.backoff import BackoffPolicy
from mdp_core.events import MARKET_EVENT_TYPES
from mdp_core.settings import CommonSettings, Secret, setting

__all__ = ["DEFAULT_TOPICS", "KNOWN_CHANNELS", "ListenerSettings"]

DEFAULT_TOPICS = ("A.*", "AM.*", "T.*", "Q.*", "LULD.*")
"""Second and minute aggregates, trades, quotes and limit-up/limit-down bands of every symbol."""

KNOWN_CHANNELS = MARKET_EVENT_TYPES
"""Event codes of the Massive stocks cluster a topic may name (``T.AAPL``, ``Q.*``): the
market event types of :mod:`mdp_core.events`, the one list of them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerSettings(CommonSettings):
    """Settings of the listener; the queue settings live in :class:`mdp_queues.QueueSettings`.

    ``api_key`` is not an environment field: the entry point fills it from
    :func:`mdp_core.settings.resolve_massive_key` (``MASSIVE_API_KEY`` and friends).
    """

    feed: str = setting(
        env="MDP_MASSIVE_FEED",
        default="socket.massive.com",
        doc="Massive feed host (socket.massive.com real-time, delayed.massive.com 15-min "
        "delayed) or host:port of the simulator.",
    )
    feed_allow: tuple[str, ...] = setting(
        env="MDP_LISTENER_FEED_ALLOW",
        default=("socket.massive.com:443", "delayed.massive.com:443"),
        doc="The only host:port pairs a feed switch (PUT /control/feed) may name; the API key "
        "is sent to the feed, so any other address, loopback included, is refused before a "
        "connection is made. TLS is required for every host that is not loopback.",
    )
    market: str = setting(
        env="MDP_MASSIVE_MARKET",
        default="stocks",
        doc="Massive market (URL path) to stream.",
    )
    secure: bool = setting(
        env="MDP_MASSIVE_SECURE",
        default=True,
        doc="Use wss:// (TLS); false only for the simulator on loopback.",
    )
    topics: tuple[str, ...] = setting(
        env="MDP_MASSIVE_TOPICS",
        default=DEFAULT_TOPICS,
        doc="Comma-separated subscriptions, e.g. A.*,T.AAPL.",
    )
    autostart: bool = setting(
        env="MDP_LISTENER_AUTOSTART",
        default=True,
        doc="Connect at start-up; false waits for POST /control/start (one socket per key).",
    )
    always_on: bool = setting(
        env="MDP_LISTENER_ALWAYS_ON",
        default=False,
        doc="Stay connected when the market is closed (simulator, demo); otherwise wait for "
        "the next session.",
    )
    backoff_initial_seconds: float = setting(
        env="MDP_LISTENER_BACKOFF_INITIAL_SECONDS",
        default=1.0,
        min=0.0,
        doc="First reconnect delay after a dropped connection; doubles per failure.",
    )
    backoff_max_seconds: float = setting(
        env="MDP_LISTENER_BACKOFF_MAX_SECONDS",
        default=60.0,
        min=0.0,
        doc="Longest reconnect delay after ordinary failures.",
    )
    backoff_jitter: float = setting(
        env="MDP_LISTENER_BACKOFF_JITTER",
        default=0.3,
        min=0.0,
        max=1.0,
        doc="Random fraction taken off each reconnect delay (and the kick delays) so restarts "
        "do not synchronise; a delay never exceeds its setting.",
    )
    kick_first_retry_seconds: float = setting(
        env="MDP_LISTENER_KICK_FIRST_RETRY_SECONDS",
        default=2.0,
        min=0.0,
        doc="Delay after a first max_connections kick (Massive closes the older connection: "
        "usually our own overlap after a reconnect or deploy, so come back at once).",
    )
    kick_backoff_seconds: float = setting(
        env="MDP_LISTENER_KICK_BACKOFF_SECONDS",
        default=60.0,
        min=0.0,
        doc="Delay after a second kick in a row (another copy is using the key): long, so two "
        "copies sharing a key cannot knock each other off in a loop.",
    )
    stale_after_seconds: float = setting(
        env="MDP_LISTENER_STALE_AFTER_SECONDS",
        default=30.0,
        min=0.001,
        doc="During market sessions, no frame for this long forces a reconnect (watchdog).",
    )
    ready_stale_seconds: float = setting(
        env="MDP_LISTENER_READY_STALE_SECONDS",
        default=10.0,
        min=0.001,
        doc="During market sessions, a feed silent this long makes the listener unready and "
        "its /status feed state 'stale' (before the watchdog reconnects).",
    )
    stable_after_seconds: float = setting(
        env="MDP_LISTENER_STABLE_AFTER_SECONDS",
        default=30.0,
        min=0.0,
        doc="A connection that lived this long resets the reconnect backoff.",
    )
    batch_events: int = setting(
        env="MDP_LISTENER_BATCH_EVENTS",
        default=500,
        min=1,
        doc="Events of one type per queue message; a batch is sent when it is this full...",
    )
    batch_interval_seconds: float = setting(
        env="MDP_LISTENER_BATCH_INTERVAL_SECONDS",
        default=0.005,
        min=0.001,
        doc="...or when it is this old, whichever comes first.",
    )
    outbox_messages: int = setting(
        env="MDP_LISTENER_OUTBOX_MESSAGES",
        default=2_000,
        min=1,
        doc="Batches that may wait for the broker before the oldest are dropped.",
    )
    outbox_bytes: int = setting(
        env="MDP_LISTENER_OUTBOX_BYTES",
        default=128 * 1024 * 1024,
        min=1,
        doc="Bytes that may wait for the broker before the oldest batches are dropped.",
    )
    max_frame_bytes: int = setting(
        env="MDP_LISTENER_MAX_FRAME_BYTES",
        default=16 * 1024 * 1024,
        min=1024,
        doc="Largest websocket frame accepted (the client library's default is 1 MiB).",
    )
    compression: bool = setting(
        env="MDP_LISTENER_COMPRESSION",
        default=False,
        doc="Offer permessage-deflate; saves bandwidth, costs 20-30% CPU.",
    )
    use_proxy: bool = setting(
        env="MDP_LISTENER_USE_PROXY",
        default=False,
        doc="Honour HTTPS_PROXY for the websocket; off so a stray proxy variable cannot "
        "divert the feed.",
    )
    heartbeat_seconds: float = setting(
        env="MDP_LISTENER_HEARTBEAT_SECONDS",
        default=5.0,
        min=0.1,
        doc="Interval of the Redis heartbeat.",
    )
    heartbeat_enabled: bool = setting(
        env="MDP_LISTENER_HEARTBEAT",
        default=True,
        doc="Write a heartbeat key to the market data cache Redis.",
    )
    control_token: Secret | None = setting(  # noqa: RUF009 - setting() wraps dataclasses.field
        env="MDP_LISTENER_CONTROL_TOKEN",
        default=None,
        secret=True,
        doc="Bearer token of the /control routes; unset disables runtime control.",
    )
    api_key: Secret | None = field(default=None)

    @property
    def reconnect_backoff(self) -> BackoffPolicy:
        """Reconnect delays after ordinary failures (``MDP_LISTENER_BACKOFF_*``)."""
        return BackoffPolicy.from_settings(
            self.backoff_initial_seconds,
            self.backoff_max_seconds,
            self.backoff_jitter,
            stable_after_seconds=self.stable_after_seconds,
        )
