"""Configuration of the Finlight data listener (FDL), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from mdp_core.backoff import BackoffPolicy
from mdp_core.settings import CommonSettings, Secret, setting

__all__ = ["NewsListenerSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewsListenerSettings(CommonSettings):
    """Settings of the news listener; the queue settings live in ``mdp_queues.QueueSettings``.

    ``api_key`` is not an environment field: the entry point fills it from
    :func:`mdp_core.settings.resolve_finlight_key` (``FINLIGHT_API_KEY`` and friends).
    """

    wss_url: str = setting(
        env="MDP_FINLIGHT_WSS_URL",
        default="wss://wss.finlight.me",
        doc="Finlight websocket URL (ws://127.0.0.1:PORT for the simulator).",
    )
    base_url: str = setting(
        env="MDP_FINLIGHT_BASE_URL",
        default="https://api.finlight.me",
        doc="Finlight REST URL (required by the client configuration; not called here).",
    )
    query: str | None = setting(
        env="MDP_FINLIGHT_QUERY", default=None, doc="Full-text filter of the stream; unset: all."
    )
    tickers: tuple[str, ...] = setting(
        env="MDP_FINLIGHT_TICKERS", default=(), doc="Comma-separated tickers to follow; empty: all."
    )
    sources: tuple[str, ...] = setting(
        env="MDP_FINLIGHT_SOURCES", default=(), doc="Comma-separated source domains; empty: all."
    )
    language: str = setting(env="MDP_FINLIGHT_LANGUAGE", default="en", doc="Article language.")
    include_entities: bool = setting(
        env="MDP_FINLIGHT_INCLUDE_ENTITIES",
        default=True,
        doc="Ask for the companies an article mentions (the news processor keys on them).",
    )
    takeover: bool = setting(
        env="MDP_FINLIGHT_TAKEOVER",
        default=True,
        doc="Take the key's stream over from an older session (Finlight allows one).",
    )
    autostart: bool = setting(
        env="MDP_NEWS_LISTENER_AUTOSTART", default=True, doc="Connect at start-up."
    )
    backoff_initial_seconds: float = setting(
        env="MDP_NEWS_LISTENER_BACKOFF_INITIAL_SECONDS",
        default=1.0,
        min=0.0,
        doc="First delay before restarting a client that stopped; doubles per failure.",
    )
    backoff_max_seconds: float = setting(
        env="MDP_NEWS_LISTENER_BACKOFF_MAX_SECONDS",
        default=60.0,
        min=0.0,
        doc="Longest delay between restarts after ordinary failures.",
    )
    backoff_jitter: float = setting(
        env="MDP_NEWS_LISTENER_BACKOFF_JITTER",
        default=0.3,
        min=0.0,
        max=1.0,
        doc="Random fraction taken off each restart delay (the blocked and preempted ones too) "
        "so restarts do not synchronise; a delay never exceeds its setting.",
    )
    blocked_backoff_seconds: float = setting(
        env="MDP_NEWS_LISTENER_BLOCKED_BACKOFF_SECONDS",
        default=300.0,
        min=0.0,
        doc="Delay after a 1008 close (the provider refused us): the client gives up, we "
        "retry slowly.",
    )
    preempted_backoff_seconds: float = setting(
        env="MDP_NEWS_LISTENER_PREEMPTED_BACKOFF_SECONDS",
        default=120.0,
        min=0.0,
        doc="Delay after another session took the stream over, so two copies do not ping-pong.",
    )
    ping_interval_seconds: int = setting(
        env="MDP_FINLIGHT_PING_INTERVAL_SECONDS", default=25, min=1, doc="JSON ping interval."
    )
    pong_timeout_seconds: int = setting(
        env="MDP_FINLIGHT_PONG_TIMEOUT_SECONDS",
        default=60,
        min=1,
        doc="Reconnect when no pong came for this long.",
    )
    heartbeat_seconds: float = setting(
        env="MDP_NEWS_LISTENER_HEARTBEAT_SECONDS", default=5.0, min=0.1, doc="Heartbeat interval."
    )
    heartbeat_enabled: bool = setting(
        env="MDP_NEWS_LISTENER_HEARTBEAT",
        default=True,
        doc="Write a heartbeat key to the market data cache Redis.",
    )
    control_token: Secret | None = setting(  # noqa: RUF009 - setting() wraps dataclasses.field
        env="MDP_NEWS_LISTENER_CONTROL_TOKEN",
        default=None,
        secret=True,
        doc="Bearer token of the /control routes; unset disables runtime control.",
    )
    api_key: Secret | None = field(default=None)

    @property
    def restart_backoff(self) -> BackoffPolicy:
        """Restart delays after ordinary failures (``MDP_NEWS_LISTENER_BACKOFF_*``)."""
        return BackoffPolicy.from_settings(
            self.backoff_initial_seconds, self.backoff_max_seconds, self.backoff_jitter
        )
