"""The SCP web application: login, dashboard, session API, management API, probes.

:class:`ControlPlane` owns everything stateful (the database of users, sessions, login
throttle, audit log, tokens and watchlists; the OIDC client, heartbeat reader, listener
control client and WDS revocations) and builds the aiohttp application; the demo runs
it in its own event loop with :meth:`ControlPlane.start`, a service runs it with
``mdp-scp serve``. What never leaves the server: password hashes, the session key, the WDS
token secret, the listener's control token and any provider API key (the SCP has none).
"""

from __future__ import annotations

import html
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from importlib.metadata import version
from string import Template
from typing import Final, cast
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import generate_latest
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_cache.client import create_redis
from mdp_cache.control import COMMANDS, ControlStore
from mdp_cache.keys import ALL_FEEDS
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import Clock, LiveClock
from mdp_core.token import issue_token
from mdp_runtime import Heartbeat, TrustedProxies, address_bucket, component_heartbeat
from mdp_runtime.metrics import CONTENT_TYPE
from mdp_scp.accounts import Account, Accounts
from mdp_scp.api_tokens import ApiTokens
from mdp_scp.audit import AuditLog
from mdp_scp.database import BadValue, Database, StoreUnavailable
from mdp_scp.health_view import HealthView
from mdp_scp.heartbeats import HeartbeatReader, HeartbeatSource
from mdp_scp.listener_control import NEWS_CONTROL_CALLS, ListenerControl
from mdp_scp.login_throttle import LoginThrottle
from mdp_scp.management import register_management_routes
from mdp_scp.market_session import market_session
from mdp_scp.metrics import ScpMetrics
from mdp_scp.oidc import OidcClient, OidcError, PendingLogin
from mdp_scp.passwords import generate_password, hash_password
from mdp_scp.revocations import Revocations, RevocationWriter
from mdp_scp.sessions import Session, SessionStore, Signer, same_secret
from mdp_scp.settings import ScpSettings
from mdp_scp.users import Role, User, UserStore
from mdp_scp.watchlists import Watchlists

__all__ = ["PLANE_KEY", "ControlPlane", "create_app"]

_log = structlog.get_logger("mdp_scp")

PLANE_KEY: Final[web.AppKey[ControlPlane]] = web.AppKey("control_plane")
SESSION_COOKIE: Final = "mdp_scp_session"
LOGIN_COOKIE: Final = "mdp_scp_login"
OIDC_COOKIE: Final = "mdp_scp_oidc"
CSRF_HEADER: Final = "X-CSRF-Token"
_MAX_FORM_BYTES: Final = 16 * 1024
_PERMISSIONS_POLICY: Final = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
_MAX_NAME: Final = 200
_MAX_PASSWORD: Final = 1024
# Every open health page polls; one SCAN of the MDC per second serves them all.
_HEALTH_CACHE_SECONDS: Final = 1.0
_HEARTBEAT_SECONDS: Final = 5.0
# What a client is told to wait when the database is down.
_RETRY_AFTER_SECONDS: Final = 5
_SESSION_KEY: Final[web.RequestKey[Session | None]] = web.RequestKey("mdp_scp_session")

_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_PUBLIC_STATIC: Final = frozenset({"login.css", "favicon.svg"})
_PAGES: Final = {"/": "index.html", "/admin": "admin.html", "/users": "users.html"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_files() -> dict[str, bytes]:
    """Every shipped static file, read once (the set is small and fixed)."""
    root = resources.files("mdp_scp") / "static"
    files: dict[str, bytes] = {}
    for entry in root.iterdir():
        if entry.is_file() and any(entry.name.endswith(ext) for ext in _CONTENT_TYPES):
            files[entry.name] = entry.read_bytes()
    return files


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class ControlPlane:
    """The SCP: configuration, state and the aiohttp application built from them.

    Args:
        settings: the SCP settings (``mdp_core.settings.load(ScpSettings)``).
        users: the local users; by default built from the settings (admin hash, users file).
        clock: the time source (sessions, tokens, throttle, heartbeat ages).
        redis: an async Redis client on the MDC database for heartbeats; by default one is
            created from ``settings.mdc_redis_url`` at start-up.
        listener: the listener control client; by default built from the settings when
            ``listener_control_url`` and its token are set.
        news_listener: the news listener's control client; by default built from the settings.
        revocations: a Redis client on the widget data cache for WDS token revocations; by
            default one is created from ``settings.wdc_redis_url`` at start-up.
        database: the store; by default opened from ``settings.database``.
        market_clock: the market's time for the header clock (``/api/market``); the demo passes
            the simulated market's clock. Default: ``clock``.
        market_speed: market seconds per real second of ``market_clock`` (1 in production).
        calendar: the market calendar (holidays, early closes) for ``/api/market``.
    """

    def __init__(
        self,
        settings: ScpSettings,
        *,
        users: UserStore | None = None,
        clock: Clock | None = None,
        redis: HeartbeatSource | None = None,
        listener: ListenerControl | None = None,
        revocations: RevocationWriter | None = None,
        database: Database | None = None,
        news_listener: ListenerControl | None = None,
        market_clock: Clock | None = None,
        market_speed: float = 1.0,
        calendar: MarketCalendar | None = None,
    ) -> None:
        self.settings = settings
        self.users = users if users is not None else self._users_from(settings)
        self.clock: Clock = clock or LiveClock()
        self.market_clock: Clock = market_clock or self.clock
        self.market_speed = market_speed
        self.calendar = calendar if calendar is not None else MarketCalendar()
        key = settings.session_secret.reveal().encode() if settings.session_secret else None
        self._signer = Signer(key or secrets.token_bytes(32))
        self.database = database if database is not None else Database(settings.database)
        self._owns_database = database is None
        self.accounts = Accounts()
        self.sessions = SessionStore(self._signer, settings.session_ttl_seconds)
        self.throttle = LoginThrottle(self.database, settings.login_window_seconds)
        self.audit = AuditLog()
        self.tokens = ApiTokens()
        self.watchlists = Watchlists(settings.watchlist_max_lists, settings.watchlist_max_symbols)
        self._revocation_redis = revocations
        self._owns_revocations = revocations is None
        self.revocations: Revocations | None = (
            Revocations(revocations, settings.wds_token_ttl_seconds)
            if revocations is not None
            else None
        )
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self._redis = redis
        self._owns_redis = redis is None
        self._heartbeats: HeartbeatReader | None = None
        self._health_cache: tuple[float, list[dict[str, object]]] | None = None
        self._health_view = HealthView()
        self._version = version("mdp-scp")
        self.metrics = ScpMetrics(self._version)
        self._heartbeat: Heartbeat | None = None
        self.listener = listener
        self._owns_listener = listener is None
        if listener is None and settings.listener_control_url and settings.listener_control_token:
            self.listener = ListenerControl(
                settings.listener_control_url, settings.listener_control_token.reveal()
            )
        self.news_listener = news_listener
        self._owns_news_listener = news_listener is None
        news_url, news_token = (
            settings.news_listener_control_url,
            settings.news_listener_control_token,
        )
        if news_listener is None and news_url and news_token:
            self.news_listener = ListenerControl(news_url, news_token.reveal(), NEWS_CONTROL_CALLS)
        self._port: int | None = None  # before public_url is first read (the OIDC redirect)
        self.oidc: OidcClient | None = None
        if settings.oidc_issuer and settings.oidc_client_id:
            secret = settings.oidc_client_secret
            self.oidc = OidcClient(
                settings.oidc_issuer,
                settings.oidc_client_id,
                secret.reveal() if secret else None,
                f"{self.public_url}/login/oidc/callback",
            )
        self._static = _static_files()
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------------- set-up

    @property
    def control_store(self) -> ControlStore | None:
        """The market data cache client runtime orders are written with (None before start)."""
        return cast("ControlStore | None", self._redis)

    def client_address(self, request: web.Request) -> str:
        """The client's address: the peer's, or what a trusted proxy forwarded for it."""
        return self.proxies.client(request.remote, request.headers.getall("X-Forwarded-For", []))

    @staticmethod
    def _users_from(settings: ScpSettings) -> UserStore:
        store = UserStore.from_file(settings.users_file) if settings.users_file else UserStore()
        if settings.admin_password_hash:
            store.add(
                User(settings.admin_user, "admin", settings.admin_password_hash.reveal().strip())
            )
        return store

    def create_first_admin(self, name: str = "admin") -> str:
        """Seed administrator ``name`` with a random password; return it (print it once).

        Call it before :meth:`start`: the seed users are written to the database then.
        """
        return self.users.create_first_admin(name)

    async def ensure_admin(self, name: str) -> str | None:
        """After start, create administrator ``name`` when the database has none.

        Returns:
            Its random password (print it once), or None when an administrator exists.
        """
        async with self.database.transaction() as conn:
            if await self.accounts.has_admin(conn):
                return None
            password = generate_password()
            now = self.now()
            await self.accounts.create(
                conn, name, "admin", now=now, password_hash=hash_password(password)
            )
            await self.audit.record(
                conn,
                at=now,
                actor="mdp-scp",
                action="user.create",
                target=name,
                result="ok",
                detail={"role": "admin", "first_admin": True},
            )
        return password

    @property
    def public_url(self) -> str:
        """The external base URL (no trailing slash)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        port = self._port if self._port is not None else self.settings.port
        return f"http://{self.settings.host}:{port}"

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry the Secure flag (https deployments)."""
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        return self.settings.public_url.startswith("https://")

    @property
    def feeds(self) -> tuple[str, ...]:
        """The feed patterns a dashboard token grants."""
        return self.settings.viewer_feeds or tuple(feed.pattern for feed in ALL_FEEDS)

    def now(self) -> float:
        """Unix seconds from the injected clock."""
        return self.clock.now_ns() / 1e9

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._observe, self._security_headers, self._errors],
            client_max_size=_MAX_FORM_BYTES,
        )
        app[PLANE_KEY] = self
        router = app.router
        register_management_routes(self, router)
        router.add_get("/livez", self._livez)
        router.add_get("/readyz", self._readyz)
        router.add_get("/metrics", self._metrics)
        router.add_get("/login", self._login_page)
        router.add_post("/login", self._login)
        router.add_post("/logout", self._logout)
        router.add_get("/login/oidc", self._oidc_begin)
        router.add_get("/login/oidc/callback", self._oidc_callback)
        router.add_get("/", self._page)
        router.add_get("/admin", self._page)
        router.add_get("/users", self._page)
        router.add_get("/static/{name}", self._static_file)
        router.add_get("/api/session", self._api_session)
        router.add_get("/api/me", self._api_me)
        router.add_get("/api/health", self._api_health)
        router.add_route("*", "/api/control/news/{action}", self._api_news_control)
        router.add_get("/api/market", self._api_market)
        router.add_route("*", "/api/control/{action}", self._api_control)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        del app
        if self.settings.migrate_on_start:
            await self.database.migrate()
        async with self.database.transaction() as conn:
            await self.accounts.seed(conn, self.users.all(), self.now())
        if self._revocation_redis is None:
            client: RevocationWriter = create_redis(self.settings.wdc_redis_url)  # type: ignore[assignment] # redis-py types its score bounds more widely
            self._revocation_redis = client
            self.revocations = Revocations(client, self.settings.wds_token_ttl_seconds)
        if self._redis is None:
            self._redis = create_redis(self.settings.mdc_redis_url)
            # The SCP beats on the MDC it connects to itself, so it shows on the health page.
            self._heartbeat = component_heartbeat(
                self._redis,
                "control-plane",
                payload=lambda: {"requests": self.metrics.requests_served},
                clock=self.clock,
                version=self._version,
                interval_seconds=_HEARTBEAT_SECONDS,
            )
            self._heartbeat.start()
        self._heartbeats = HeartbeatReader(self._redis, self.settings.heartbeat_stale_seconds)

    async def _on_cleanup(self, app: web.Application) -> None:
        del app
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            await heartbeat.stop()
        if self._owns_listener and self.listener is not None:
            await self.listener.close()
        if self._owns_news_listener and self.news_listener is not None:
            await self.news_listener.close()
        if self.oidc is not None:
            await self.oidc.close()
        for owned, client in (
            (self._owns_redis, self._redis),
            (self._owns_revocations, self._revocation_redis),
        ):
            close = getattr(client, "aclose", None)
            if owned and close is not None:
                await close()
        self._redis = None
        if self._owns_revocations:
            self._revocation_redis = None
        if self._owns_database:
            await self.database.close()

    async def start(self) -> None:
        """Serve on ``settings.host``/``settings.port`` in the running event loop."""
        if self._runner is not None:
            msg = "the control plane is already started"
            raise RuntimeError(msg)
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.settings.host, self.settings.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        _log.info("control_plane_listening", url=self.public_url)

    async def stop(self) -> None:
        """Stop serving and release every client; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The base URL the server is bound to (after :meth:`start`)."""
        if self._port is None:
            msg = "the control plane has not been started"
            raise RuntimeError(msg)
        return f"http://{self.settings.host}:{self._port}"

    # ------------------------------------------------------------------------- middleware

    def _csp(self) -> str:
        connect = " ".join(filter(None, ["'self'", _origin(self.settings.wds_url)]))
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; font-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count every request by route (the pattern, never the raw path) and status."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            self.metrics.requests.labels(route, request.method, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
            self.metrics.requests_served += 1

    @web.middleware
    async def _security_headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        headers = response.headers
        headers.setdefault("Content-Security-Policy", self._csp())
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        # The dashboard needs no device or sensor API: deny them to the page and to any frame.
        headers.setdefault("Permissions-Policy", _PERMISSIONS_POLICY)
        if self.secure_cookies:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Errors are JSON (``{"error": ...}``) everywhere except redirects."""
        try:
            return await handler(request)
        except web.HTTPRedirection:
            raise
        except web.HTTPException as exc:
            retry = exc.headers.get("Retry-After")
            return _json_error(exc.status, exc.reason, **({"Retry-After": retry} if retry else {}))
        except BadValue as exc:
            self.metrics.bad_requests.labels("bad_value").inc()
            _log.warning("request_value_refused", path=request.path, sqlstate=str(exc))
            return _json_error(400, "a value of the request cannot be stored (a NUL character?)")
        except StoreUnavailable as exc:
            self.metrics.database_errors.inc()
            _log.warning("database_unavailable", path=request.path, error=str(exc))
            return _json_error(
                503,
                "the control plane's database is unavailable; retry shortly",
                **{"Retry-After": str(_RETRY_AFTER_SECONDS)},
            )
        except Exception:
            _log.exception("request_failed", path=request.path)
            return _json_error(500, "internal error")

    # ------------------------------------------------------------------------- sessions

    async def session_of(self, request: web.Request) -> Session | None:
        """The live session of a request (session cookie, or an API token), if any.

        Raises:
            StoreUnavailable: when the database cannot be asked (fail closed: 503, never in).
        """
        if _SESSION_KEY in request:
            cached: Session | None = request[_SESSION_KEY]
            return cached
        session: Session | None = None
        authorization = request.headers.get("Authorization", "")
        cookie = request.cookies.get(SESSION_COOKIE)
        if authorization.startswith("Bearer ") or cookie:
            async with self.database.transaction() as conn:
                if authorization.startswith("Bearer "):
                    token = authorization[7:].strip()
                    if token.isascii():  # else no token of ours (bytes not UTF-8 included)
                        session = await self.tokens.resolve(conn, token, self.now())
                else:
                    session = await self.sessions.resolve(conn, cookie, self.now())
        request[_SESSION_KEY] = session
        return session

    def _set_cookie(self, response: web.StreamResponse, name: str, value: str, age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=age,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies,
        )

    async def require(
        self, request: web.Request, *, admin: bool = False, role: Role = "viewer"
    ) -> Session:
        """The request's session, with the role needed and (browsers) a valid CSRF token.

        Raises:
            HTTPUnauthorized: without a session; HTTPForbidden: role or CSRF token wrong.
        """
        session = await self.session_of(request)
        if session is None:
            raise web.HTTPUnauthorized(reason="log in first")
        needed: Role = "admin" if admin else role
        if not session.allows(needed):
            raise web.HTTPForbidden(reason=f"this needs the {needed} role")
        # A bearer token is not sent by browsers on their own, so it needs no CSRF token.
        if session.via != "token" and request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get(CSRF_HEADER, "")
            if not same_secret(sent, session.csrf_token):
                raise web.HTTPForbidden(reason="missing or wrong CSRF token")
        return session

    def _session_response(self, cookie: str, location: str = "/") -> web.HTTPSeeOther:
        response = web.HTTPSeeOther(location)
        self._set_cookie(response, SESSION_COOKIE, cookie, self.settings.session_ttl_seconds)
        response.del_cookie(LOGIN_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------------- probes

    async def _livez(self, request: web.Request) -> web.Response:
        del request
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        # Prometheus scrapes the pod directly; a request that came through a proxy (the public
        # Ingress routes every path here) is a visitor, who has no business with the figures.
        if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
            raise web.HTTPNotFound
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _readyz(self, request: web.Request) -> web.Response:
        del request
        failing: dict[str, str] = {}
        if self.settings.wds_token_secret is None:
            failing["wds_tokens"] = "MDP_WDS_TOKEN_SECRET is not set: no dashboard tokens"
        try:
            async with self.database.transaction() as conn:
                users = await self.accounts.count(conn)
        except StoreUnavailable as exc:
            failing["database"] = f"the database is unavailable ({exc})"
        else:
            if users == 0 and self.oidc is None:
                failing["users"] = "no local user and no OIDC provider: nobody can log in"
        if failing:
            return web.json_response({"status": "not ready", "failing": failing}, status=503)
        return web.json_response({"status": "ready"})

    # ------------------------------------------------------------------------- login

    def _render_login(self, status: int = 200, error: str = "") -> web.Response:
        nonce = secrets.token_urlsafe(24)
        token = self._signer.signature(nonce, "login-csrf")
        oidc_link = (
            '<p class="alt"><a class="button" href="/login/oidc">Log in with single sign-on</a></p>'
            if self.oidc is not None
            else ""
        )
        page = Template(self._static["login.html"].decode()).substitute(
            csrf=html.escape(token),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
            oidc=oidc_link,
        )
        response = web.Response(text=page, status=status, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        self._set_cookie(response, LOGIN_COOKIE, nonce, 3600)
        return response

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        try:
            session = await self.session_of(request)
        except StoreUnavailable:
            session = None  # the form still shows; submitting it gets the clear 503
        if session is not None:
            raise web.HTTPSeeOther("/")
        return self._render_login()

    async def _form(self, request: web.Request) -> Mapping[str, object]:
        """The request's form; a malformed one (a broken multipart body) is a counted 400."""
        try:
            return await request.post()
        except (HttpProcessingError, ValueError) as exc:
            self.metrics.bad_requests.labels("bad_form").inc()
            raise web.HTTPBadRequest(reason="the form is malformed") from exc

    async def _loggable_user(self, conn: AsyncConnection, name: str) -> str | None:
        """``name`` if it is an account's, else None: the name a failed login may log.

        What a person types into the user field may be their password, which must not reach
        the logs (the audit trail, readable by admins only, keeps what was typed).
        """
        return name if await self.accounts.get(conn, name) is not None else None

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        name, password, token = (str(form.get(f, "")) for f in ("user", "password", "csrf"))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce.isascii():
            nonce = ""  # not one we set (bytes that are not UTF-8 arrive as surrogates)
        expected = self._signer.signature(nonce, "login-csrf") if nonce else ""
        if not nonce or not same_secret(token, expected):
            self.metrics.logins.labels("expired_form").inc()
            return self._render_login(403, "The login form expired; please try again.")
        if not name or not password or len(name) > _MAX_NAME or len(password) > _MAX_PASSWORD:
            self.metrics.logins.labels("invalid").inc()
            return self._render_login(400, "Enter a user name and a password.")
        client = self.client_address(request)
        bucket = address_bucket(client)
        # Per user *and* address: a stranger's wrong guesses cannot lock the admin out.
        user_key, address_key = f"user:{name}@{bucket}", f"addr:{bucket}"
        now = self.now()
        attempt = await self.throttle.attempt(
            {
                user_key: self.settings.login_max_failures,
                address_key: self.settings.login_max_failures_per_address,
            },
            now,
        )
        if not attempt.allowed:
            self.metrics.logins.labels("throttled").inc()
            async with self.database.transaction() as conn:
                await self.audit.record(
                    conn, at=now, actor=name, action="login", result="throttled", address=client
                )
                logged = await self._loggable_user(conn, name)
            _log.warning("login_throttled", user=logged, remote=client)
            response = self._render_login(429, "Too many failed attempts; try again later.")
            response.headers["Retry-After"] = str(max(1, round(attempt.retry_after)))
            return response
        account = await self.accounts.authenticate(self.database, name, password)
        async with self.database.transaction() as conn:
            if account is None:
                await self.audit.record(
                    conn, at=now, actor=name, action="login", result="failed", address=client
                )
                logged = await self._loggable_user(conn, name)
            else:
                await self.throttle.succeeded(conn, user_key, attempt)
                _session, cookie = await self.sessions.create(conn, account, now, address=client)
                await self.audit.record(
                    conn,
                    at=now,
                    actor=account.name,
                    action="login",
                    result="ok",
                    address=client,
                    detail={"role": account.role, "via": "password"},
                )
        if account is None:
            _log.warning("login_failed", user=logged, remote=client)
            self.metrics.logins.labels("failed").inc()
            return self._render_login(401, "Wrong user name or password.")
        _log.info("login", user=account.name, role=account.role)
        self.metrics.logins.labels("ok").inc()
        raise self._session_response(cookie)

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        session = await self.session_of(request)
        if session is not None and session.via != "token":
            form = await self._form(request)
            sent = request.headers.get(CSRF_HEADER) or str(form.get("csrf", ""))
            if not same_secret(sent, session.csrf_token):
                raise web.HTTPForbidden(reason="missing or wrong CSRF token")
            async with self.database.transaction() as conn:
                await self.sessions.end(conn, session.session_id)
                await self.audit.record(
                    conn,
                    at=self.now(),
                    actor=session.user,
                    action="logout",
                    result="ok",
                    address=self.client_address(request),
                )
            await self.revoke_wds([session.session_id])
            _log.info("logout", user=session.user)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def revoke_wds(self, session_ids: list[str]) -> bool:
        """Tell the WDS that these sessions ended.

        Returns False (logged, counted) when Redis fails: the tokens still die at their expiry.
        """
        if not session_ids or self.revocations is None:
            return True
        try:
            await self.revocations.revoke(session_ids, self.now())
        except Exception as exc:  # Redis trouble must not undo a logout that committed
            self.metrics.revocation_errors.inc()
            _log.warning("wds_token_revocation_failed", error=repr(exc), sessions=len(session_ids))
            return False
        return True

    async def _oidc_begin(self, request: web.Request) -> web.StreamResponse:
        del request
        if self.oidc is None:
            raise web.HTTPNotFound(reason="single sign-on is not configured")
        try:
            url, pending = await self.oidc.begin(self.now())
        except OidcError as exc:
            _log.warning("oidc_discovery_failed", error=str(exc))
            raise web.HTTPBadGateway(reason="the identity provider is unavailable") from exc
        response = web.HTTPFound(url)
        self._set_cookie(response, OIDC_COOKIE, self._signer.sign(pending.encode(), "oidc"), 600)
        raise response

    async def _oidc_callback(self, request: web.Request) -> web.StreamResponse:
        if self.oidc is None:
            raise web.HTTPNotFound(reason="single sign-on is not configured")
        state, code = request.query.get("state", ""), request.query.get("code", "")
        if not state or not code:
            return self._render_login(400, "Single sign-on did not complete.")
        signed = self._signer.unsign(request.cookies.get(OIDC_COOKIE, ""), "oidc")
        pending = PendingLogin.decode(signed) if signed else None
        try:
            identity = await self.oidc.complete(
                state=state, pending=pending, code=code, now=self.now()
            )
        except OidcError as exc:
            _log.warning("oidc_login_refused", error=str(exc))
            return self._render_login(401, "Single sign-on failed.")
        admins = self.settings.oidc_admin_subjects
        role: Role = "admin" if identity.name in admins or identity.subject in admins else "viewer"
        client = self.client_address(request)
        now = self.now()
        async with self.database.transaction() as conn:
            account: Account | None = await self.accounts.oidc_login(
                conn, identity.subject, identity.name, role, now
            )
            if account is not None:
                _session, cookie = await self.sessions.create(
                    conn, account, now, address=client, via="oidc"
                )
            await self.audit.record(
                conn,
                at=now,
                actor=identity.name,
                action="login",
                result="ok" if account is not None else "refused",
                address=client,
                detail={"via": "oidc"},
            )
        if account is None:
            return self._render_login(403, "This account is disabled.")
        _log.info("login", user=account.name, role=account.role, via="oidc")
        response = self._session_response(cookie)
        response.del_cookie(OIDC_COOKIE, path="/")
        raise response

    # ------------------------------------------------------------------------- pages

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if await self.session_of(request) is None:
            raise web.HTTPSeeOther("/login")
        response = web.Response(body=self._static[_PAGES[request.path]], content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _static_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = self._static.get(name)
        if body is None or name.endswith(".html"):
            raise web.HTTPNotFound(reason="no such file")
        if name not in _PUBLIC_STATIC and await self.session_of(request) is None:
            raise web.HTTPUnauthorized(reason="log in first")
        suffix = name[name.rfind(".") :]
        response = web.Response(body=body, headers={"Content-Type": _CONTENT_TYPES[suffix]})
        response.headers["Cache-Control"] = "private, no-cache"
        return response

    # ------------------------------------------------------------------------- API

    async def _api_session(self, request: web.Request) -> web.Response:
        session = await self.require(request)
        secret = self.settings.wds_token_secret
        if secret is None:
            raise web.HTTPServiceUnavailable(reason="the WDS token secret is not configured")
        now = self.now()
        ttl = self.settings.wds_token_ttl_seconds
        feeds = list(self.feeds)
        token = issue_token(
            secret.reveal(), session.user, feeds, ttl, now, session_id=session.session_id
        )
        body = {
            "user": session.user,
            "role": session.role,
            "csrf_token": session.csrf_token,
            "wds_url": self.settings.wds_url,
            "wds_token": token,
            "wds_token_expires_at": int(now + ttl),
            "refresh_after_seconds": max(10, int(ttl * 0.6)),
            "feeds": feeds,
            "session_expires_at": int(session.expires_at),
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _api_me(self, request: web.Request) -> web.Response:
        session = await self.require(request)
        body = {"user": session.user, "role": session.role, "csrf_token": session.csrf_token}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _api_market(self, request: web.Request) -> web.Response:
        await self.require(request)
        body = market_session(self.calendar, self.market_clock.now_ns(), self.market_speed)
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _api_health(self, request: web.Request) -> web.Response:
        session = await self.require(request)
        components: list[dict[str, object]] = []
        error: str | None = None
        now = self.now()
        cached = self._health_cache
        if cached is not None and 0 <= now - cached[0] < _HEALTH_CACHE_SECONDS:
            components = cached[1]
        elif self._heartbeats is not None:
            try:
                found = await self._heartbeats.read(now)
                components = self._health_view.rows(found, now)
                self._health_cache = (now, components)
                self.metrics.saw_components(
                    (c.service, str(row["state"])) for c, row in zip(found, components, strict=True)
                )
            except Exception as exc:  # Redis trouble is shown on the page, not raised
                self.metrics.heartbeat_read_errors.inc()
                error = f"cannot read heartbeats: {type(exc).__name__}"
                _log.warning("heartbeat_read_failed", error=repr(exc))
        if not session.is_admin:
            # A component's figures are for the people who run it: counters, queue names,
            # lags. Everyone else sees the state, the rate and the freshness.
            components = [{k: v for k, v in c.items() if k != "figures"} for c in components]
        body = {
            "components": components,
            "error": error,
            "controls": {
                "available": self.listener is not None,
                "news_available": self.news_listener is not None,
                # The pause/resume/drain commands of each component, for the admin's buttons.
                "runtime": {c: dict(commands) for c, commands in COMMANDS.items()}
                if session.is_admin
                else {},
                "allowed": session.is_admin,
            },
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _api_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        # Following other symbols is a trader's job; starting and stopping feeds an admin's.
        needed: Role = "trader" if action == "subscriptions" else "admin"
        session = await self.require(request, role=needed)
        if self.listener is None:
            raise web.HTTPServiceUnavailable(reason="listener controls are not configured")
        return await self._forward(request, session, self.listener, "listener")

    async def _api_news_control(self, request: web.Request) -> web.Response:
        session = await self.require(request, admin=True)
        if self.news_listener is None:
            raise web.HTTPServiceUnavailable(reason="news listener controls are not configured")
        return await self._forward(request, session, self.news_listener, "news-listener")

    async def _forward(
        self, request: web.Request, session: Session, control: ListenerControl, component: str
    ) -> web.Response:
        """Forward one control call and audit it when it changes something."""
        action = request.match_info["action"]
        body: object = None
        if request.can_read_body:
            try:
                body = json.loads(await request.read())
            except (ValueError, RecursionError) as exc:
                # ValueError: not JSON, not UTF-8, or an integer past Python's 4,300 digits.
                self.metrics.bad_requests.labels("not_json").inc()
                raise web.HTTPBadRequest(reason="the request body is not JSON") from exc
        try:
            reply = await control.call(request.method, action, body)
        except ValueError as exc:
            self.metrics.bad_requests.labels("unknown_command").inc()
            async with self.database.transaction() as conn:
                await self.audit.record(
                    conn,
                    at=self.now(),
                    actor=session.user,
                    action=f"control.{component}.{action[:40]}",
                    target=component,
                    result="unknown",
                    address=self.client_address(request),
                )
            raise web.HTTPNotFound(reason=str(exc)) from exc
        _log.info(
            "control_call",
            component=component,
            action=action,
            method=request.method,
            status=reply.status,
        )
        if request.method != "GET":
            async with self.database.transaction() as conn:
                await self.audit.record(
                    conn,
                    at=self.now(),
                    actor=session.user,
                    action=f"control.{component}.{action}",
                    target=component,
                    result=str(reply.status),
                    address=self.client_address(request),
                    detail=body
                    if isinstance(body, dict) and len(json.dumps(body)) < 2000
                    else None,
                )
        return web.json_response(reply.body, status=reply.status)


def create_app(
    settings: ScpSettings,
    *,
    users: UserStore | None = None,
    clock: Clock | None = None,
    redis: HeartbeatSource | None = None,
    listener: ListenerControl | None = None,
    revocations: RevocationWriter | None = None,
) -> web.Application:
    """Build the SCP aiohttp application (its :class:`ControlPlane` is at ``app[PLANE_KEY]``)."""
    plane = ControlPlane(
        settings, users=users, clock=clock, redis=redis, listener=listener, revocations=revocations
    )
    return plane.app
