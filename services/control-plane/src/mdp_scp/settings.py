"""Settings of the service control plane (SCP), read once at start-up.

Everything secret (session key, WDS token secret, listener control token, OIDC client secret,
password hashes) is a :class:`~mdp_core.settings.Secret`, so a settings object can be logged
without leaking it. Provider API keys are deliberately *not* settings of the SCP: the control
plane never needs them, so it can never hand them to a browser.
"""

from __future__ import annotations

from pathlib import Path

from mdp_core.settings import CommonSettings, Secret, setting, settings_class

__all__ = ["DEFAULT_DATABASE_URL", "ScpSettings"]

DEFAULT_DATABASE_URL = "sqlite:///mdp-scp.sqlite3"


@settings_class
class ScpSettings(CommonSettings):
    """What the SCP needs: where to listen, whom to trust, and where the other components are."""

    @property
    def database(self) -> str:
        """The database URL to use (the SQLite default when none is set)."""
        return self.database_url.reveal() if self.database_url else DEFAULT_DATABASE_URL

    host: str = setting(
        env="MDP_SCP_HOST",
        default="127.0.0.1",
        doc="Address the SCP web server binds; 0.0.0.0 in containers.",
    )
    port: int = setting(
        env="MDP_SCP_PORT",
        default=8088,
        min=0,
        max=65535,
        doc="Port of the SCP web server (0 picks a free port).",
    )
    public_url: str = setting(
        env="MDP_SCP_PUBLIC_URL",
        default="",
        doc="External base URL (https://... behind TLS); used for the OIDC redirect and to "
        "decide Secure cookies. Empty means http://host:port.",
    )
    secure_cookies: bool | None = setting(
        env="MDP_SCP_SECURE_COOKIES",
        default=None,
        doc="Force the Secure cookie flag on or off; unset means on when public_url is https.",
    )
    session_secret: Secret | None = setting(
        env="MDP_SCP_SESSION_SECRET",
        default=None,
        secret=True,
        doc="Key signing session and login cookies; unset means a random key per process "
        "(sessions end at restart).",
    )
    session_ttl_seconds: int = setting(
        env="MDP_SCP_SESSION_TTL_SECONDS",
        default=8 * 3600,
        min=60,
        doc="Server-side lifetime of a login session.",
    )
    admin_user: str = setting(
        env="MDP_SCP_ADMIN_USER",
        default="admin",
        doc="Name of the administrator whose hash is MDP_SCP_ADMIN_PASSWORD_HASH.",
    )
    admin_password_hash: Secret | None = setting(
        env="MDP_SCP_ADMIN_PASSWORD_HASH",
        default=None,
        secret=True,
        doc="scrypt hash (from `mdp-scp hash-password`) of the administrator's password.",
    )
    users_file: Path | None = setting(
        env="MDP_SCP_USERS_FILE",
        default=None,
        doc="JSON file of seed users: [{name, role: viewer|trader|admin, password_hash}]; "
        "written into the database at every start (they win over changes made by the API).",
    )
    database_url: Secret | None = setting(
        env="MDP_SCP_DATABASE_URL",
        default=None,
        secret=True,
        doc="The SCP's database: sqlite:///path (one machine) or "
        "postgresql://user:pass@host/db (several replicas); unset means "
        "sqlite:///mdp-scp.sqlite3 in the working directory.",
    )
    migrate_on_start: bool = setting(
        env="MDP_SCP_MIGRATE_ON_START",
        default=True,
        doc="Apply database migrations at start-up (replicas take turns); off when an "
        "operator runs `mdp-scp migrate` before rolling out.",
    )
    api_token_max_days: int = setting(
        env="MDP_SCP_API_TOKEN_MAX_DAYS",
        default=365,
        min=1,
        doc="Longest life of a personal API token or service account token, in days.",
    )
    watchlist_max_lists: int = setting(
        env="MDP_SCP_WATCHLIST_MAX_LISTS",
        default=20,
        min=1,
        doc="Named watchlists one user may keep.",
    )
    watchlist_max_symbols: int = setting(
        env="MDP_SCP_WATCHLIST_MAX_SYMBOLS",
        default=200,
        min=1,
        doc="Symbols one watchlist may hold.",
    )
    login_max_failures: int = setting(
        env="MDP_SCP_LOGIN_MAX_FAILURES",
        default=5,
        min=1,
        doc="Failed logins allowed per user name and client address (an IPv6 /64) within the "
        "window; per address too, so a stranger cannot lock a user out from elsewhere.",
    )
    login_max_failures_per_address: int = setting(
        env="MDP_SCP_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default=20,
        min=1,
        doc="Failed logins allowed per client address within the window (higher than the "
        "per-user limit: several people may share an address behind a proxy or NAT).",
    )
    trusted_proxies: tuple[str, ...] = setting(
        env="MDP_SCP_TRUSTED_PROXIES",
        default=(),
        doc="Networks (CIDRs) of reverse proxies whose X-Forwarded-For names the client; the "
        "per-address login limit and logs then use that address. Empty: the header is ignored.",
    )
    login_window_seconds: float = setting(
        env="MDP_SCP_LOGIN_WINDOW_SECONDS",
        default=300.0,
        min=1,
        doc="Window of the login failure limit; a blocked key is free again after it.",
    )
    wds_url: str = setting(
        env="MDP_SCP_WDS_URL",
        default="ws://127.0.0.1:8765/ws",
        doc="WebSocket URL of the WDS as the browser reaches it.",
    )
    wds_token_secret: Secret | None = setting(
        env="MDP_WDS_TOKEN_SECRET",
        default=None,
        secret=True,
        doc="HMAC secret shared with the WDS to sign browser tokens (at least 16 bytes; 32 "
        "random ones recommended).",
    )
    wds_token_ttl_seconds: int = setting(
        env="MDP_SCP_WDS_TOKEN_TTL_SECONDS",
        default=300,
        min=30,
        doc="Life of a WDS token; the page fetches a new one before it expires.",
    )
    viewer_feeds: tuple[str, ...] = setting(
        env="MDP_SCP_VIEWER_FEEDS",
        default=(),
        doc="Feed patterns a dashboard token grants (any role); empty means every catalogue feed.",
    )
    heartbeat_stale_seconds: float = setting(
        env="MDP_SCP_HEARTBEAT_STALE_SECONDS",
        default=15.0,
        min=1,
        doc="A heartbeat older than this (and without its own interval) is shown stale.",
    )
    listener_control_url: str = setting(
        env="MDP_SCP_LISTENER_CONTROL_URL",
        default="",
        doc="Base URL of the listener's health/control server (http://host:port); empty "
        "disables the runtime controls.",
    )
    listener_control_token: Secret | None = setting(
        env="MDP_SCP_LISTENER_CONTROL_TOKEN",
        default=None,
        secret=True,
        doc="Bearer token of the listener's /control routes; held server-side only.",
    )
    news_listener_control_url: str = setting(
        env="MDP_SCP_NEWS_LISTENER_CONTROL_URL",
        default="",
        doc="Base URL of the news listener's health/control server; empty disables its "
        "start/stop controls.",
    )
    news_listener_control_token: Secret | None = setting(
        env="MDP_SCP_NEWS_LISTENER_CONTROL_TOKEN",
        default=None,
        secret=True,
        doc="Bearer token of the news listener's /control routes; held server-side only.",
    )
    oidc_issuer: str = setting(
        env="MDP_SCP_OIDC_ISSUER",
        default="",
        doc="OpenID Connect issuer URL; empty disables OIDC login.",
    )
    oidc_client_id: str = setting(
        env="MDP_SCP_OIDC_CLIENT_ID",
        default="",
        doc="OIDC client id registered with the provider.",
    )
    oidc_client_secret: Secret | None = setting(
        env="MDP_SCP_OIDC_CLIENT_SECRET",
        default=None,
        secret=True,
        doc="OIDC client secret (token endpoint authentication and HS256 ID tokens).",
    )
    oidc_admin_subjects: tuple[str, ...] = setting(
        env="MDP_SCP_OIDC_ADMINS",
        default=(),
        doc="OIDC users (verified email or subject) given the admin role at login; everyone else "
        "starts as a viewer (an administrator may change their role).",
    )
