"""A Finlight news websocket server on loopback that the official ``finlight-client`` accepts.

Paths ``/`` (enhanced articles, with companies and sentiment) and ``/raw`` (plain articles).
The API key is checked at the HTTP upgrade, the first frame is the subscription, answered with
``admit``; JSON ``ping`` gets ``pong``; articles pushed through :meth:`FinlightWsServer.publish`
are filtered per connection and sent as ``sendArticle``. One lease per key and channel: a
newcomer with ``x-takeover: true`` preempts the holder, otherwise it gets an ``error`` about the
connection limit. Fault modes cover what makes the real client back off, rotate or give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import msgspec
from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import LiveClock
from mdp_sim.faults import Faults
from mdp_sim.massive_ws import StateWatch

__all__ = [
    "ENHANCED_ONLY_FIELDS",
    "FinlightRestServer",
    "FinlightWsConfig",
    "FinlightWsMetrics",
    "FinlightWsServer",
]

ENHANCED_ONLY_FIELDS: Final = frozenset(
    {"sentiment", "confidence", "content", "companies", "countries"}
)
"""Article fields the raw channel never carries."""

_NS_PER_MS = 1_000_000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_CHANNELS: Final = {"/": "enhanced", "/raw": "raw"}
_lease_numbers = itertools.count(1)
_HISTORY = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FinlightWsConfig:
    """How the Finlight websocket server listens and admits.

    Attributes:
        keys: accepted values of the ``x-api-key`` upgrade header.
        host: interface to bind (loopback).
        port: TCP port, 0 for an ephemeral one.
        subscription_timeout: seconds to wait for the subscription frame after the upgrade.
        close_timeout: seconds to wait for a closing handshake before aborting.
    """

    keys: frozenset[str]
    host: str = "127.0.0.1"
    port: int = 0
    subscription_timeout: float = 10.0
    close_timeout: float = 1.0


@dataclass(slots=True)
class FinlightWsMetrics:
    """Counters kept by the server; tests read them to see what it did."""

    connections_opened: int = 0
    rejected_keys: int = 0
    admitted: int = 0
    pings: int = 0
    pongs: int = 0
    articles_sent: int = 0
    invalid_articles_sent: int = 0
    preempted: int = 0
    limit_rejections: int = 0
    admin_kicks: int = 0
    forced_closes: int = 0


@dataclass(frozen=True, slots=True)
class _ArticleFilter:
    """What one subscription asked for (empty collections mean "no constraint")."""

    tickers: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    exclude_sources: frozenset[str] = frozenset()
    language: str | None = None
    categories: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    query: str | None = None
    extended: bool = False
    include_updates: bool = False

    @classmethod
    def from_request(cls, request: Mapping[str, object]) -> _ArticleFilter:
        """Read the client's subscription frame, ignoring fields of the wrong type."""

        def strings(name: str) -> frozenset[str]:
            value = request.get(name)
            if not isinstance(value, list):
                return frozenset()
            return frozenset(v for v in value if isinstance(v, str))

        language = request.get("language")
        query = request.get("query")
        return cls(
            tickers=strings("tickers"),
            sources=strings("sources"),
            exclude_sources=strings("excludeSources"),
            language=language if isinstance(language, str) else None,
            categories=strings("categories"),
            countries=strings("countries"),
            query=query.lower() if isinstance(query, str) and query else None,
            extended=request.get("extended") is True,
            include_updates=request.get("includeUpdates") is True,
        )

    def accepts(self, article: Mapping[str, object]) -> bool:  # noqa: PLR0911 (one exit per filter)
        """Tell whether ``article`` matches this subscription."""
        source = article.get("source")
        if self.sources and source not in self.sources:
            return False
        if self.exclude_sources and source in self.exclude_sources:
            return False
        if self.language is not None and article.get("language") != self.language:
            return False
        if not self.include_updates and article.get("isUpdate") is True:
            return False
        if self.tickers and not self.tickers & _company_tickers(article):
            return False
        if self.categories and not self.categories & _strings(article.get("categories")):
            return False
        if self.countries and not self.countries & _strings(article.get("countries")):
            return False
        if self.query is not None:
            text = f"{article.get('title', '')} {article.get('summary', '')}".lower()
            if self.query not in text:
                return False
        return True


def _strings(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))


def _company_tickers(article: Mapping[str, object]) -> frozenset[str]:
    companies = article.get("companies")
    if not isinstance(companies, list):
        return frozenset()
    return frozenset(
        c["ticker"] for c in companies if isinstance(c, dict) and isinstance(c.get("ticker"), str)
    )


@dataclass(eq=False, slots=True)
class _Lease:
    """One admitted connection and what it subscribed to."""

    ws: ServerConnection
    key: str
    channel: str
    lease_id: str
    article_filter: _ArticleFilter = field(default_factory=_ArticleFilter)
    outbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    closing: bool = False


class FinlightWsServer:
    """The Finlight websocket service on loopback.

    Client side: ``ApiConfig(api_key=key, wss_url=server.url)``; the raw client appends ``/raw``.

    Args:
        config: listening and admission settings.
        faults: fault switches shared with the rest of the simulator.
        now_ms: source of ``serverNow`` in ``admit`` (the simulated clock in a full run).
    """

    def __init__(
        self,
        config: FinlightWsConfig,
        faults: Faults | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.faults = faults if faults is not None else Faults()
        self.metrics = FinlightWsMetrics()
        self.watch = StateWatch()
        live = LiveClock()
        self._now_ms = now_ms if now_ms is not None else (lambda: live.now_ns() // _NS_PER_MS)
        self._server: Server | None = None
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.history: deque[Mapping[str, object]] = deque(maxlen=_HISTORY)
        """The most recent articles published, whether or not anyone was connected."""

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression=None,
            close_timeout=self.config.close_timeout,
        )

    async def stop(self) -> None:
        """Close every connection (1001) and stop listening."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        await asyncio.gather(*(cancel_until_done(task) for task in list(self._tasks)))

    async def __aenter__(self) -> FinlightWsServer:
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
    def url(self) -> str:
        """The ``wss_url`` to give the client (``ws://host:port``, no trailing slash)."""
        return f"ws://{self.config.host}:{self.port}"

    @property
    def lease_count(self) -> int:
        """Admitted connections currently holding a lease."""
        return sum(1 for lease in self._leases.values() if not lease.closing)

    # ----------------------------------------------------------------- publishing

    def publish(self, articles: Iterable[Mapping[str, object]]) -> int:
        """Queue each article to every lease whose subscription matches it.

        Returns:
            The number of (article, connection) deliveries queued.
        """
        articles = list(articles)
        self.history.extend(articles)
        leases = [lease for lease in self._leases.values() if not lease.closing]
        if not leases:
            return 0
        invalid = self.faults.finlight.invalid_articles
        deliveries = 0
        for article in articles:
            encoded: dict[tuple[str, bool], bytes] = {}
            for lease in leases:
                if not lease.article_filter.accepts(article):
                    continue
                shape = (lease.channel, lease.article_filter.extended)
                frame = encoded.get(shape)
                if frame is None:
                    data = _shape_article(article, *shape)
                    if invalid:
                        data.pop("title", None)
                    frame = _encode({"action": "sendArticle", "data": data})
                    encoded[shape] = frame
                lease.outbox.put_nowait(frame)
                deliveries += 1
        if invalid:
            self.metrics.invalid_articles_sent += deliveries
        return deliveries

    # ----------------------------------------------------------------- fault actions

    async def admin_kick(self, retry_after_ms: int = 1_000, key: str | None = None) -> int:
        """Send ``admin_kick``; the client closes 4003 and waits ``retry_after_ms``.

        Returns:
            How many connections were kicked.
        """
        victims = self._select(key)
        frame = _encode({"action": "admin_kick", "retryAfter": retry_after_ms})
        for lease in victims:
            lease.outbox.put_nowait(frame)
        self.metrics.admin_kicks += len(victims)
        self.watch.notify()
        return len(victims)

    async def close(self, code: int = 1011, key: str | None = None) -> int:
        """Close connections with ``code``: 1008 makes the client stop for good, 1011 reconnect.

        Returns:
            How many connections were closed.
        """
        victims = self._select(key)
        self.metrics.forced_closes += len(victims)
        await asyncio.gather(*(self._close(lease, code, "simulated fault") for lease in victims))
        return len(victims)

    def _select(self, key: str | None) -> list[_Lease]:
        return [
            lease
            for lease in self._leases.values()
            if not lease.closing and (key is None or lease.key == key)
        ]

    # ----------------------------------------------------------------- connections

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path not in _CHANNELS:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if request.headers.get("x-api-key") not in self.config.keys:
            self.metrics.rejected_keys += 1
            self.watch.notify()
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.metrics.connections_opened += 1
        self.watch.notify()
        request = ws.request
        assert request is not None  # the handler only runs after a successful upgrade
        channel = _CHANNELS[request.path.split("?", 1)[0]]
        key = request.headers.get("x-api-key", "")
        takeover = request.headers.get("x-takeover", "").lower() == "true"
        try:
            async with asyncio.timeout(self.config.subscription_timeout):
                first = await ws.recv()
        except (TimeoutError, ConnectionClosed):
            await ws.close(1008, "no subscription")
            return
        try:
            subscription = _decode(first)
        except msgspec.DecodeError:
            subscription = None
        if not isinstance(subscription, dict):
            await ws.send(_encode({"action": "error", "error": "invalid subscription"}), text=True)
            await ws.close(1003, "invalid subscription")
            return
        lease = _Lease(
            ws=ws,
            key=key,
            channel=channel,
            lease_id=f"lease-{next(_lease_numbers)}",
            article_filter=_ArticleFilter.from_request(subscription),
        )
        if not self._acquire(lease, takeover=takeover):
            self.metrics.limit_rejections += 1
            self.watch.notify()
            # The client closes by itself (4001) and waits a minute; close anyway if it does not.
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                frame = _encode({"action": "error", "error": "connection limit reached"})
                await ws.send(frame, text=True)
                async with asyncio.timeout(self.config.close_timeout):
                    await ws.wait_closed()
            await ws.close(4001, "connection limit")
            return
        await self._serve_lease(lease, subscription.get("clientNonce"))

    def _acquire(self, lease: _Lease, *, takeover: bool) -> bool:
        """Give ``lease`` the key's slot; preempt the holder on takeover, else refuse."""
        slot = (lease.key, lease.channel)
        holder = self._leases.get(slot)
        if holder is not None and not holder.closing:
            if not takeover:
                return False
            holder.closing = True
            self.metrics.preempted += 1
            frame = _encode(
                {"action": "preempted", "reason": "takeover", "newLeaseId": lease.lease_id}
            )
            self._spawn(self._send_then_close(holder, frame))
        self._leases[slot] = lease
        return True

    async def _serve_lease(self, lease: _Lease, nonce: object) -> None:
        ws = lease.ws
        writer = asyncio.get_running_loop().create_task(self._writer(lease))
        try:
            admit: dict[str, object] = {
                "action": "admit",
                "leaseId": lease.lease_id,
                "serverNow": self._now_ms(),
            }
            if isinstance(nonce, str):
                admit["clientNonce"] = nonce
            await ws.send(_encode(admit), text=True)
            self.metrics.admitted += 1
            self.watch.notify()
            async for message in ws:
                await self._on_message(lease, message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            lease.closing = True
            slot = (lease.key, lease.channel)
            if self._leases.get(slot) is lease:
                del self._leases[slot]
            self.watch.notify()

    async def _on_message(self, lease: _Lease, raw: str | bytes) -> None:
        try:
            message = _decode(raw)
        except msgspec.DecodeError:
            return
        if not isinstance(message, dict) or message.get("action") != "ping":
            return
        self.metrics.pings += 1
        if not self.faults.finlight.no_pong:
            lease.outbox.put_nowait(_encode({"action": "pong", "t": message.get("t")}))
            self.metrics.pongs += 1
        self.watch.notify()

    async def _writer(self, lease: _Lease) -> None:
        while True:
            frame = await lease.outbox.get()
            await lease.ws.send(frame, text=True)
            if frame.startswith(b'{"action":"sendArticle"'):
                self.metrics.articles_sent += 1
                self.watch.notify()

    async def _send_then_close(self, lease: _Lease, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(self.config.close_timeout):
                await lease.ws.send(frame, text=True)
        # The client closes by itself on ``preempted``; make sure the socket goes anyway.
        await self._close(lease, 1000, "preempted")

    async def _close(self, lease: _Lease, code: int, reason: str) -> None:
        lease.closing = True
        self.watch.notify()
        try:
            async with asyncio.timeout(self.config.close_timeout * 2):
                await lease.ws.close(code, reason)
        except TimeoutError:
            lease.ws.transport.abort()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _shape_article(
    article: Mapping[str, object], channel: str, extended: bool
) -> dict[str, object]:
    """The article as this channel and subscription should see it."""
    if channel == "raw":
        return {k: v for k, v in article.items() if k not in ENHANCED_ONLY_FIELDS}
    if extended:
        return dict(article)
    return {k: v for k, v in article.items() if k != "content"}


class FinlightRestServer:
    """A small Finlight REST stub serving the articles the websocket server has published.

    ``POST /v2/articles`` (filters: tickers, sources, excludeSources, language, query; paging:
    page, pageSize), ``GET /v2/articles/by-link`` and ``GET /v2/sources``, keyed by
    ``X-API-KEY``. Client side: ``ApiConfig(api_key=key, base_url=stub.base_url)``.

    Args:
        keys: accepted API keys.
        stream: the websocket server whose article history is served.
        host: interface to bind (loopback).
        port: TCP port, 0 for an ephemeral one.
    """

    def __init__(
        self, keys: frozenset[str], stream: FinlightWsServer, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.keys = keys
        self.stream = stream
        self.host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        """Bind and start answering."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v2/articles", self._articles)
        app.router.add_get("/v2/articles/by-link", self._by_link)
        app.router.add_get("/v2/sources", self._sources)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._requested_port).start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop answering."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """``http://host:port``, Finlight's ``ApiConfig.base_url``."""
        return f"http://{self.host}:{self._port}"

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.headers.get("X-API-KEY") not in self.keys:
            return web.json_response({"error": "invalid api key"}, status=401)
        return await handler(request)

    async def _articles(self, request: web.Request) -> web.Response:
        try:
            body = _decode(await request.read())
        except msgspec.DecodeError:
            return web.json_response({"error": "invalid JSON body"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be an object"}, status=400)
        wanted = _ArticleFilter.from_request({**body, "includeUpdates": True})
        page = _positive(body.get("page"), 1)
        size = min(_positive(body.get("pageSize"), 20), 1_000)
        matches = [a for a in reversed(self.stream.history) if wanted.accepts(a)]
        chosen = matches[(page - 1) * size : page * size]
        shaped = [_rest_article(a, body) for a in chosen]
        payload = {"status": "ok", "page": page, "pageSize": size, "articles": shaped}
        return web.Response(body=_encode(payload), content_type="application/json")

    async def _by_link(self, request: web.Request) -> web.Response:
        link = request.query.get("link")
        for article in reversed(self.stream.history):
            if article.get("link") == link:
                options = {
                    "includeContent": request.query.get("includeContent") == "true",
                    "includeEntities": request.query.get("includeEntities") == "true",
                }
                body = _encode({"article": _rest_article(article, options)})
                return web.Response(body=body, content_type="application/json")
        return web.json_response({"error": "article not found"}, status=404)

    async def _sources(self, request: web.Request) -> web.Response:
        del request
        domains = sorted({s for a in self.stream.history if isinstance(s := a.get("source"), str)})
        rows = [{"domain": d, "isContentAvailable": True, "isDefaultSource": True} for d in domains]
        return web.Response(body=_encode(rows), content_type="application/json")


def _positive(value: object, default: int) -> int:
    return value if isinstance(value, int) and value > 0 else default


def _rest_article(
    article: Mapping[str, object], options: Mapping[str, object]
) -> dict[str, object]:
    """An article as the REST API returns it: content and companies only when asked for."""
    drop = set()
    if options.get("includeContent") is not True:
        drop.add("content")
    if options.get("includeEntities") is not True:
        drop.add("companies")
    return {k: v for k, v in article.items() if k not in drop}
