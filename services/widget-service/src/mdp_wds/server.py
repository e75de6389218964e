"""The WDS server: websockets on ``/ws`` plus health and metrics on the same port.

Handshake-time defences run in ``process_request`` before any websocket exists: unknown paths
get 404 and a browser Origin outside the allow-list gets 403 (OWASP ASVS 4.4.2; a refused
handshake costs nothing per connection). Connection caps are enforced right after the upgrade
with close code 4029, which a browser can read (it cannot read an HTTP status). Compression is
off: per-message deflate costs ~50 KiB per connection and CPU per client per message, and the
same bytes go to every client.

A drain (the control plane's order, :meth:`WidgetServer.drain`) closes every client socket with
1001 and refuses new ones the same way, while ``/readyz`` answers 503, so the load balancer
sends the reconnecting clients to the other replicas; :meth:`WidgetServer.undrain` ends it.

Health endpoints (same port as ``/ws``): ``/livez`` (the event loop answers), ``/readyz`` (the
Redis pub/sub link is up and the server is neither stopping nor draining), ``/metrics``
(Prometheus text) and ``/status`` (JSON counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections import Counter
from importlib.metadata import version
from typing import Final

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from mdp_cache.control import RuntimeState
from mdp_core.clock import Clock, LiveClock
from mdp_core.logging import get_logger
from mdp_runtime import TrustedProxies, address_bucket
from mdp_wds.hub import Hub
from mdp_wds.protocol import CloseCode
from mdp_wds.revocations import RevokedSessions
from mdp_wds.session import ClientSession
from mdp_wds.settings import WdsSettings
from mdp_wds.stats import WdsStats
from mdp_wds.websocket import close_within, counting_failed_handshakes, limit_send_buffer

__all__ = ["WS_PATH", "WidgetServer"]

_VERSION = version("mdp-wds")
_log = get_logger(__name__)

WS_PATH: Final = "/ws"
_PROMETHEUS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_LOGGED_ORIGIN_CHARS: Final = 200  # an origin is a scheme, a host and a port: far shorter


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


class WidgetServer:
    """The widget data service, usable in-process (tests, the demo) or from ``mdp-wds``.

    Args:
        settings: Listen address, limits, secrets and the WDC URL (``wdc_redis_url``).
        clock: Wall time for tokens and lag; a :class:`LiveClock` by default.
    """

    def __init__(self, settings: WdsSettings, *, clock: Clock | None = None) -> None:
        if settings.token_secret is None and settings.dev_key is None:
            msg = "the WDS needs MDP_WDS_TOKEN_SECRET (or MDP_WDS_DEV_KEY for development)"
            raise ValueError(msg)
        self.settings = settings
        self.stats = WdsStats()
        self._clock = clock or LiveClock()
        self.hub = Hub(
            settings.wdc_redis_url,
            self.stats,
            backoff=settings.redis_backoff,
            ping_interval=settings.redis_ping_interval_seconds,
        )
        self.revoked = RevokedSessions(
            settings.wdc_redis_url, settings.revocation_poll_seconds, self.stats
        )
        self._server: Server | None = None
        self._per_address: Counter[str] = Counter()
        self._sessions: set[ClientSession] = set()
        self._stopping = False
        self._draining = False
        self._origins = frozenset(settings.allowed_origins)
        self._proxies = TrustedProxies(settings.trusted_proxies)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None:
            msg = "the server is not started"
            raise RuntimeError(msg)
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        msg = "the server has no listening socket"
        raise RuntimeError(msg)

    @property
    def url(self) -> str:
        """``ws://host:port/ws`` of the running server."""
        return f"ws://{self.settings.host}:{self.port}{WS_PATH}"

    @property
    def sessions(self) -> frozenset[ClientSession]:
        """Open client sessions."""
        return frozenset(self._sessions)

    async def start(self) -> None:
        """Start the Redis link and listen (returns once listening)."""
        self.hub.start()
        self.revoked.start(self._session_ended)
        s = self.settings
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            process_request=self._process_request,
            create_connection=counting_failed_handshakes(self._handshake_failed),
            compression=None,
            max_size=s.max_frame_bytes,
            max_queue=16,
            write_limit=s.write_limit_bytes,
            ping_interval=s.ping_interval_seconds,
            ping_timeout=s.ping_interval_seconds,
            close_timeout=s.close_timeout_seconds,
            server_header="mdp-wds",
        )
        _log.info("wds_listening", url=self.url)

    def _handshake_failed(self, reason: str) -> None:
        self.stats.violations[reason] += 1  # the library answered (400, 426, 431) or timed out

    async def stop(self) -> None:
        """Graceful stop: refuse new sockets, close open ones with 1001, stop the Redis link."""
        self._stopping = True
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.settings.close_timeout_seconds + 5):
                    await self._server.wait_closed()
        await self.revoked.close()
        await self.hub.close()
        _log.info("wds_stopped")

    @property
    def draining(self) -> bool:
        """Whether client connections are being refused by :meth:`drain`."""
        return self._draining

    async def drain(self) -> None:
        """Close every client socket with 1001 ``draining`` and refuse new ones until undrained.

        Returns once every socket closed (a stalled peer is cut after the close timeout).
        """
        if not self._draining:
            self._draining = True
            self.stats.draining = True
            self.stats.control_changes["draining"] += 1
            _log.info("wds_draining", clients=len(self._sessions))
        sessions = list(self._sessions)
        for session in sessions:
            session.close(CloseCode.GOING_AWAY, "draining", "drain")
        await asyncio.gather(*(session.closed() for session in sessions))

    async def undrain(self) -> None:
        """Accept client connections again after :meth:`drain`."""
        if self._draining:
            self._draining = False
            self.stats.draining = False
            self.stats.control_changes["running"] += 1
            _log.info("wds_accepting_connections_again")

    async def set_runtime_state(self, state: RuntimeState) -> None:
        """Apply the control plane's order (see :class:`mdp_runtime.RuntimeControl`)."""
        await (self.drain() if state == "draining" else self.undrain())

    def _session_ended(self, session_id: str) -> None:
        """Close the connections authenticated with a token of an ended login session."""
        for session in list(self._sessions):
            if session.session_id == session_id:
                session.close(CloseCode.UNAUTHENTICATED, "session ended", "session_revoked")

    async def __aenter__(self) -> WidgetServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- HTTP side ------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return self._check_origin(request.headers.get("Origin"))
        if path == "/livez":
            return _response(http.HTTPStatus.OK, b"ok\n", "text/plain")
        if path == "/readyz":
            ready = self.hub.connected and not self._stopping and not self._draining
            status = http.HTTPStatus.OK if ready else http.HTTPStatus.SERVICE_UNAVAILABLE
            return _response(status, b"ready\n" if ready else b"not ready\n", "text/plain")
        if path == "/metrics":
            return _response(http.HTTPStatus.OK, self.stats.prometheus(_VERSION), _PROMETHEUS_TYPE)
        if path == "/status":
            body = msgspec.json.encode(
                {"service": "mdp-wds", "ready": self.hub.connected, **self.stats.as_dict()}
            )
            return _response(http.HTTPStatus.OK, body, "application/json")
        return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _check_origin(self, origin: str | None) -> Response | None:
        if origin is None:
            if self.settings.allow_missing_origin:
                return None
        elif "*" in self._origins or origin in self._origins:
            return None
        self.stats.violations["bad_origin"] += 1
        self.stats.disconnects["bad_origin"] += 1
        # The header is the caller's text: a bounded prefix names the page, no more.
        shown = None if origin is None else origin[:_LOGGED_ORIGIN_CHARS]
        _log.info("wds_origin_refused", origin=shown, origin_chars=len(origin or ""))
        return _response(http.HTTPStatus.FORBIDDEN, b"origin not allowed\n", "text/plain")

    # --- websocket side -------------------------------------------------------------------

    async def _refuse(self, ws: ServerConnection, code: CloseCode, reason: str, why: str) -> None:
        self.stats.violations[why] += 1
        self.stats.disconnects[why] += 1
        await close_within(ws, code, reason, self.settings.close_timeout_seconds)

    def client_address(self, ws: ServerConnection) -> str:
        """The client's address: the peer's, or what a trusted proxy forwarded for it."""
        remote = ws.remote_address
        peer = str(remote[0]) if isinstance(remote, tuple) and remote else None
        forwarded: list[str] = []
        if self._proxies and ws.request is not None:
            forwarded = ws.request.headers.get_all("X-Forwarded-For")
        return self._proxies.client(peer, forwarded)

    async def _handle(self, ws: ServerConnection) -> None:
        address = self.client_address(ws)
        bucket = address_bucket(address)  # the cap counts a whole IPv6 /64 as one client
        if self._stopping:
            await self._refuse(ws, CloseCode.GOING_AWAY, "server stopping", "shutdown")
            return
        if self._draining:
            await self._refuse(ws, CloseCode.GOING_AWAY, "draining", "drain")
            return
        if len(self._sessions) >= self.settings.max_connections:
            await self._refuse(
                ws, CloseCode.TOO_MANY_CONNECTIONS, "too many connections", "connection_cap"
            )
            return
        if self._per_address[bucket] >= self.settings.max_connections_per_address:
            await self._refuse(
                ws,
                CloseCode.TOO_MANY_CONNECTIONS,
                "too many connections from this address",
                "address_cap",
            )
            return
        limit_send_buffer(ws, self.settings.socket_send_buffer_bytes)
        session = ClientSession(
            ws,
            self.hub,
            self.settings,
            self.stats,
            self._clock,
            address=address,
            revoked=self.revoked,
        )
        self._sessions.add(session)
        self._per_address[bucket] += 1
        self.stats.clients = len(self._sessions)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self._per_address[bucket] -= 1
            if self._per_address[bucket] <= 0:
                del self._per_address[bucket]
            self.stats.clients = len(self._sessions)
