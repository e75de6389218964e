"""Configuration of the widget data service, read once from ``MDP_WDS_*`` variables."""

from __future__ import annotations

from typing import Literal

from mdp_core.backoff import BackoffPolicy
from mdp_core.settings import CommonSettings, Secret, setting, settings_class

__all__ = ["SlowClientPolicy", "WdsSettings"]

SlowClientPolicy = Literal["disconnect", "drop_oldest"]


@settings_class
class WdsSettings(CommonSettings):
    """Everything the WDS needs; the defaults are safe for a public deployment.

    The websocket endpoint and the health endpoints share one port (``/ws``, ``/livez``,
    ``/readyz``, ``/metrics``, ``/status``), so one Service port and one probe target suffice.
    """

    host: str = setting(
        env="MDP_WDS_HOST",
        default="127.0.0.1",
        doc="Address the websocket server binds; 0.0.0.0 in containers.",
    )
    port: int = setting(
        env="MDP_WDS_PORT",
        default=8765,
        min=0,
        max=65535,
        doc="Port of /ws and the health endpoints (0 picks a free port).",
    )
    token_secret: Secret | None = setting(
        env="MDP_WDS_TOKEN_SECRET",
        default=None,
        secret=True,
        doc="HMAC secret shared with the control plane to verify client tokens (at least 16 "
        "bytes; 32 random ones recommended).",
    )
    revocation_poll_seconds: float = setting(
        env="MDP_WDS_REVOCATION_POLL_SECONDS",
        default=2.0,
        min=0.1,
        doc="How often the WDS reads newly ended control-plane sessions, to close their live "
        "connections (a token of an ended session is refused at auth at once).",
    )
    dev_key: Secret | None = setting(
        env="MDP_WDS_DEV_KEY",
        default=None,
        secret=True,
        doc="Static development key granting every feed; accepted only when set explicitly.",
    )
    allowed_origins: tuple[str, ...] = setting(
        env="MDP_WDS_ALLOWED_ORIGINS",
        default=("http://127.0.0.1:8088", "http://localhost:8088"),
        doc="Browser Origins allowed to connect (exact match; '*' allows any, for development).",
    )
    allow_missing_origin: bool = setting(
        env="MDP_WDS_ALLOW_MISSING_ORIGIN",
        default=True,
        doc="Accept handshakes without an Origin header (non-browser clients; they still "
        "need a token).",
    )
    max_frame_bytes: int = setting(
        env="MDP_WDS_MAX_FRAME_BYTES",
        default=65_536,
        min=256,
        doc="Largest client frame accepted; bigger frames close the socket with 1009.",
    )
    max_subscriptions: int = setting(
        env="MDP_WDS_MAX_SUBSCRIPTIONS",
        default=200,
        min=1,
        doc="Feeds (names or patterns) one connection may follow at once.",
    )
    rate_per_second: float = setting(
        env="MDP_WDS_RATE_PER_SECOND",
        default=20.0,
        min=0.1,
        doc="Sustained client messages per second per connection (token bucket refill).",
    )
    rate_burst: int = setting(
        env="MDP_WDS_RATE_BURST",
        default=60,
        min=1,
        doc="Client messages a connection may send in a burst before the rate applies.",
    )
    max_connections: int = setting(
        env="MDP_WDS_MAX_CONNECTIONS",
        default=5_000,
        min=1,
        doc="Open websockets per process; more are closed with 4029.",
    )
    max_connections_per_address: int = setting(
        env="MDP_WDS_MAX_CONNECTIONS_PER_ADDRESS",
        default=50,
        min=1,
        doc="Open websockets per client address; more are closed with 4029.",
    )
    trusted_proxies: tuple[str, ...] = setting(
        env="MDP_WDS_TRUSTED_PROXIES",
        default=(),
        doc="Networks (CIDRs) of reverse proxies whose X-Forwarded-For names the client; the "
        "per-address limit and logs then use that address. Empty: the header is ignored.",
    )
    send_queue_messages: int = setting(
        env="MDP_WDS_SEND_QUEUE_MESSAGES",
        default=1_024,
        min=1,
        doc="Messages waiting for one slow client before the slow-client policy applies.",
    )
    send_queue_bytes: int = setting(
        env="MDP_WDS_SEND_QUEUE_BYTES",
        default=1024 * 1024,
        min=1_024,
        doc="Bytes waiting for one slow client before the slow-client policy applies (times "
        "MDP_WDS_MAX_CONNECTIONS bounds the memory of all queues).",
    )
    slow_client_policy: SlowClientPolicy = setting(
        env="MDP_WDS_SLOW_CLIENT_POLICY",
        default="disconnect",
        doc="On send-queue overflow: 'disconnect' (close 4009) or 'drop_oldest' messages.",
    )
    write_limit_bytes: int = setting(
        env="MDP_WDS_WRITE_LIMIT_BYTES",
        default=65_536,
        min=1_024,
        doc="Socket write buffer above which sends to a client wait (and its queue grows).",
    )
    socket_send_buffer_bytes: int = setting(
        env="MDP_WDS_SOCKET_SEND_BUFFER_BYTES",
        default=65_536,
        min=0,
        doc="Kernel send buffer per client socket (SO_SNDBUF; 0 keeps the OS default, which "
        "autotunes to megabytes): bounds memory per client and lets a stalled one be noticed.",
    )
    gc_young_threshold: int = setting(
        env="MDP_WDS_GC_YOUNG_THRESHOLD",
        default=50_000,
        min=700,
        doc="Allocations between the garbage collector's young-generation collections (CPython's "
        "default is 700). Higher: a fan-out burst's frames are freed before a collection sees "
        "them, so they are not promoted into full collections that pause every client.",
    )
    auth_timeout_seconds: float = setting(
        env="MDP_WDS_AUTH_TIMEOUT_SECONDS",
        default=5.0,
        min=0.05,
        doc="Time a new connection has to authenticate before it is closed with 4001.",
    )
    close_timeout_seconds: float = setting(
        env="MDP_WDS_CLOSE_TIMEOUT_SECONDS",
        default=2.0,
        min=0.01,
        doc="Time a closing client gets to answer the close frame before the socket is cut.",
    )
    ping_interval_seconds: float = setting(
        env="MDP_WDS_PING_INTERVAL_SECONDS",
        default=20.0,
        min=0.1,
        doc="Websocket keepalive ping interval (and timeout) to detect dead peers.",
    )
    snapshot_limit_default: int = setting(
        env="MDP_WDS_SNAPSHOT_LIMIT_DEFAULT",
        default=100,
        min=1,
        doc="Snapshot size (list elements, pattern matches) when a request gives no limit.",
    )
    snapshot_limit_max: int = setting(
        env="MDP_WDS_SNAPSHOT_LIMIT_MAX",
        default=1_000,
        min=1,
        doc="Largest snapshot limit a client may ask for.",
    )
    redis_backoff_initial_seconds: float = setting(
        env="MDP_WDS_REDIS_BACKOFF_INITIAL_SECONDS",
        default=0.2,
        min=0.001,
        doc="First delay before reconnecting to Redis after the pub/sub link drops.",
    )
    redis_backoff_max_seconds: float = setting(
        env="MDP_WDS_REDIS_BACKOFF_MAX_SECONDS",
        default=10.0,
        min=0.01,
        doc="Cap of the exponential reconnect delay (jittered by MDP_RETRY_JITTER).",
    )
    redis_ping_interval_seconds: float = setting(
        env="MDP_WDS_REDIS_PING_INTERVAL_SECONDS",
        default=15.0,
        min=0.05,
        doc="PING on the pub/sub link this often; two missed answers mean it is dead.",
    )

    @property
    def redis_backoff(self) -> BackoffPolicy:
        """Pub/sub reconnect delays (``MDP_WDS_REDIS_BACKOFF_*``, ``MDP_RETRY_JITTER``)."""
        return BackoffPolicy.from_settings(
            self.redis_backoff_initial_seconds, self.redis_backoff_max_seconds, self.retry_jitter
        )
