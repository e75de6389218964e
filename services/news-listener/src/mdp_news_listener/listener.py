"""The Finlight data listener: the news stream into the news queue, supervised.

The official ``finlight-client`` reconnects by itself after most drops, but it stops *for good*
in two cases: a close with code 1008 (the provider refused us) and a ``preempted`` message
(another session took the key's stream over). Its ``connect()`` coroutine then simply returns.
:class:`FinlightListener` notices, logs it loudly, backs off (long after a 1008 or a preemption,
so two copies cannot take the stream from each other in a loop) and starts a fresh client.

Each article the client accepted is re-encoded once (it arrives as a pydantic model), checked
against the platform's :class:`mdp_core.news.Article` schema and published as a one-article
envelope (kind ``news``). An article that cannot be encoded or does not fit the schema is
counted and skipped; articles the client itself rejects never reach us (its business).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import os
import random
import socket
from typing import Any, Final

import msgspec
from finlight_client import ApiConfig, FinlightApi, WebSocketOptions
from finlight_client.models import GetArticlesWebSocketParams

from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import Clock
from mdp_core.envelope import encode_envelope
from mdp_core.errors import MalformedInput
from mdp_core.logging import get_logger
from mdp_core.news import decode_article
from mdp_core.telemetry import Metrics, producer_span
from mdp_news_listener.settings import NewsListenerSettings
from mdp_queues import NEWS_KIND, OutgoingBatch, Publisher
from mdp_runtime import AuthError
from mdp_runtime.stream import Interruption, StreamState, UpstreamStream

__all__ = ["FinlightListener", "NewsListenerState", "StreamOutcome"]

_log = get_logger("mdp_news_listener")
_BLOCKED_CODE: Final = 1008


NewsListenerState = StreamState
"""What the news listener is doing (the state machine of :mod:`mdp_runtime.stream`)."""


class StreamOutcome(enum.StrEnum):
    """Why one client run ended by itself (ended by us: an ``Interruption``)."""

    BLOCKED = "blocked"
    PREEMPTED = "preempted"
    GAVE_UP = "gave_up"
    ERROR = "error"


class FinlightListener(UpstreamStream[StreamOutcome]):
    """Streams Finlight articles into the news queue until stopped.

    The connection state machine, pause/resume and the restart backoff are the shared
    :class:`mdp_runtime.stream.UpstreamStream`; this class adds the Finlight client's runs.

    Args:
        settings: the news listener settings.
        publisher: where envelopes go (never blocks).
        clock: time source for ``received_ns`` and backoff sleeps.
        metrics: the ``news_listener`` metrics registry.
        source: the envelope ``source``.
        instance: this process's id in batch ids and heartbeats.
        rng: random source of the backoff jitter.
    """

    def __init__(
        self,
        settings: NewsListenerSettings,
        publisher: Publisher,
        clock: Clock,
        metrics: Metrics,
        *,
        source: str = "finlight",
        instance: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if settings.api_key is None or not settings.api_key:
            msg = "a Finlight API key is required (FINLIGHT_API_KEY or MDP_FINLIGHT_API_KEY_FILE)"
            raise AuthError(msg)
        super().__init__(
            clock=clock,
            backoff=settings.restart_backoff,
            reconnects=metrics.counter("restarts", "{restart}", "client restarts by reason"),
            enabled=settings.autostart,
            rng=rng,
            log=_log,
        )
        self._settings = settings
        self._publisher = publisher
        self._metrics = metrics
        self._source = source
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self._queue = publisher.topology.news
        self._sequence = itertools.count(1)
        self._api: FinlightApi | None = None
        self._last_close: tuple[int, str] | None = None
        self._articles = metrics.counter("articles_in", "{article}", "articles received")
        self._published = metrics.counter("articles_out", "{article}", "articles queued")
        self._bad = metrics.counter("articles_skipped", "{article}", "articles we could not use")
        self._closes = metrics.counter("closes", "{close}", "websocket closes by code")

    # ---------------------------------------------------------------- observation

    @property
    def streaming(self) -> bool:
        """Whether the client holds an admitted lease right now."""
        api = self._api
        return api is not None and api.websocket.lease_id is not None

    @property
    def ready(self) -> bool:
        """Ready means streaming and connected to the broker."""
        return self.streaming and self._publisher.connected

    def upstream_readiness(self) -> tuple[bool, str]:
        """Ready upstream while streaming; the state says what it does otherwise."""
        return self.streaming, str(self.state)

    @property
    def runs(self) -> int:
        """Client runs started so far."""
        return self.connections

    def status(self) -> dict[str, Any]:
        """A JSON-friendly picture for ``/status`` and heartbeats."""
        stats = self._publisher.stats
        return {
            "state": "streaming" if self.streaming else str(self.state),
            "instance": self.instance,
            "wss_url": self._settings.wss_url,
            "enabled": self._enabled,
            "streaming": self.streaming,
            "broker_connected": self._publisher.connected,
            "runs": self.runs,
            "articles_in": self._articles.total,
            "articles_out": self._published.total,
            "last_outcome": None if self.last_outcome is None else str(self.last_outcome),
            "last_close": None if self._last_close is None else list(self._last_close),
            "published_events": dict(stats.published_events),
            "dropped_events": dict(stats.dropped_events),
        }

    def metrics_snapshot(self) -> dict[str, Any]:
        """The registry's figures plus the publisher's counters."""
        snapshot = self._metrics.snapshot()
        stats = self._publisher.stats
        snapshot["queue"] = {
            "published_events": dict(stats.published_events),
            "dropped_events": dict(stats.dropped_events),
            "broker_reconnects": stats.reconnects,
            "broker_connected": int(self._publisher.connected),
        }
        snapshot["upstream"] = {"streaming": int(self.streaming)}
        return snapshot

    # ---------------------------------------------------------------- supervision

    def _client(self) -> FinlightApi:
        settings = self._settings
        api_key = settings.api_key
        assert api_key is not None  # checked in __init__
        return FinlightApi(
            ApiConfig(
                api_key=api_key.reveal(), wss_url=settings.wss_url, base_url=settings.base_url
            ),
            websocket_options=WebSocketOptions(
                ping_interval=settings.ping_interval_seconds,
                pong_timeout=settings.pong_timeout_seconds,
                takeover=settings.takeover,
                on_close=self._on_close,
            ),
        )

    def _request(self) -> GetArticlesWebSocketParams:
        settings = self._settings
        return GetArticlesWebSocketParams(
            query=settings.query,
            tickers=list(settings.tickers) or None,
            sources=list(settings.sources) or None,
            language=settings.language,
            includeEntities=settings.include_entities,
        )

    async def _connect(self, stop: asyncio.Event) -> StreamOutcome | Interruption:
        """Run one client until it stops by itself (or we stop it); say why it ended."""
        self._last_close = None
        api = self._api = self._client()
        _log.info("finlight_connecting", url=self._settings.wss_url)
        client_run = asyncio.create_task(api.websocket.connect(self._request(), self._on_article))
        try:
            done, interruption = await self._until_interrupted(stop, {client_run})
        finally:
            api.websocket.stop()
            await cancel_until_done(client_run)
            api.websocket.lease_id = None
            self._api = None
        if client_run not in done or client_run.cancelled():
            return interruption or Interruption.RESTART
        error = client_run.exception()
        if error is not None:
            _log.error("finlight_client_failed", error=f"{type(error).__name__}: {error}")
            return StreamOutcome.ERROR
        return self._why_it_gave_up()

    def _why_it_gave_up(self) -> StreamOutcome:
        code, reason = self._last_close or (0, "")
        if code == _BLOCKED_CODE:
            _log.error(
                "finlight_policy_close",
                code=1008,
                hint="policy: blocked or refused; restarting the client after a long backoff",
                reason=reason,
            )
            return StreamOutcome.BLOCKED
        if "preempt" in reason.lower():
            _log.error(
                "finlight_preempted",
                hint="a second news listener with this key? Restarting after a long backoff",
                reason=reason,
            )
            return StreamOutcome.PREEMPTED
        _log.error("finlight_client_stopped_restarting", code=code, reason=reason)
        return StreamOutcome.GAVE_UP

    def _fixed_delay(self, outcome: StreamOutcome) -> float | None:
        """Long delays after a refusal or a takeover, so two copies cannot ping-pong."""
        if outcome is StreamOutcome.BLOCKED:
            return self._settings.blocked_backoff_seconds
        if outcome is StreamOutcome.PREEMPTED:
            return self._settings.preempted_backoff_seconds
        return None

    # ---------------------------------------------------------------- client callbacks

    def _on_close(self, code: int, reason: str) -> None:
        self._last_close = (code, reason)
        self._closes.add(1, code=code)
        api = self._api
        if api is not None:
            api.websocket.lease_id = None  # not streaming until the next admit

    def _on_article(self, article: Any) -> None:
        """The client's (synchronous) article callback: encode, check, queue; never raises."""
        self._articles.add(1)
        self._backoff.reset()  # articles flow: the next failure starts the backoff afresh
        self.state = NewsListenerState.STREAMING
        received_ns = self._clock.now_ns()
        try:
            data = article.model_dump_json(exclude_none=True).encode()
        except Exception as exc:  # a model the client built but that does not serialise
            self._bad.add(1, reason="unencodable")
            _log.warning("article_unencodable_skipped", error=str(exc))
            return
        try:
            decode_article(data)
        except MalformedInput as exc:
            self._bad.add(1, reason=exc.kind)
            _log.warning("article_schema_mismatch_skipped", error=str(exc))
            return
        batch_id = f"{self.instance}:{next(self._sequence)}"
        body = encode_envelope(
            kind=NEWS_KIND,
            source=self._source,
            batch=batch_id,
            received_ns=received_ns,
            events=[msgspec.Raw(data)],
        )
        with producer_span(
            "news_listener.article", component="news-listener", batch=batch_id
        ) as headers:
            self._publisher.publish(
                OutgoingBatch(
                    queue=self._queue,
                    body=body,
                    batch_id=batch_id,
                    received_ns=received_ns,
                    events=1,
                    headers=headers,
                )
            )
        self._published.add(1)
