"""The news processor: the news queue, through the news analyzer, into the WDC news feeds.

News is a few articles a minute, so one async process does it: take what the queue has (a small
batch), decode the envelopes, let :class:`~mdp_analyzers.news.FinlightDataAnalyzer` de-duplicate
and route the articles, write every feed in one Redis pipeline, then ack. A message is acked only
after its articles are in Redis; while Redis is down the batch waits and is retried, so news is
not lost to a Redis restart (the queue keeps it for its 15-minute TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from typing import Final

from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.client import REDIS_ERRORS
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.clock import Clock
from mdp_core.envelope import decode_news_batch
from mdp_core.errors import MalformedInput
from mdp_core.logging import get_logger
from mdp_core.telemetry import Metrics, consumer_span, traced
from mdp_queues import Consumer, ConsumerLost, QueueSpec, ReceivedBatch

__all__ = ["NewsProcessor"]

_log = get_logger("mdp_news_processor")
_RETRY: Final = BackoffPolicy(initial_seconds=0.2, max_seconds=5.0)
"""Write retries when the service passes none (it passes its ``MDP_RETRY_*`` settings)."""


class NewsProcessor:
    """Consumes news envelopes and keeps the WDC news feeds current.

    Args:
        consumer: the queue consumer (AMQP or in-process), already started.
        queue: the news queue of the topology.
        writer: writes widget feeds to WDC.
        analyzer: the news analyzer (de-duplication, ticker routing, caps).
        clock: time for the analyzer and for retry pacing.
        metrics: where counters go.
        batch_size: most messages handled per batch.
        batch_wait_seconds: longest wait for a batch to fill.
        retry: pauses between attempts of a failed Redis write (the ``MDP_RETRY_*`` settings).
        rng: random source of the retry jitter (seed it in tests).
    """

    def __init__(
        self,
        consumer: Consumer,
        queue: QueueSpec,
        writer: WidgetWriter,
        analyzer: FinlightDataAnalyzer,
        *,
        clock: Clock,
        metrics: Metrics,
        batch_size: int = 50,
        batch_wait_seconds: float = 0.1,
        retry: BackoffPolicy = _RETRY,
        rng: random.Random | None = None,
    ) -> None:
        self._consumer = consumer
        self._queue = queue
        self._writer = writer
        self._analyzer = analyzer
        self._clock = clock
        self._batch_size = batch_size
        self._batch_wait = batch_wait_seconds
        self._retry = retry
        self._rng = rng or random.Random()
        self._articles = metrics.counter("articles_in", "{article}", "Articles received")
        self._bad = metrics.counter("articles_bad", "{article}", "Articles skipped as malformed")
        self._writes = metrics.counter("feed_writes", "{write}", "Feed writes sent to WDC")
        self._redis_errors = metrics.counter("redis_errors", "{error}", "Failed WDC writes")
        self._lag = metrics.latency("receipt_to_write", "s")
        self._redis_ok = True
        self._batches = 0
        self._changed = asyncio.Condition()

    @property
    def redis_ok(self) -> bool:
        """Whether the last write to WDC succeeded (readiness)."""
        return self._redis_ok

    @property
    def batches(self) -> int:
        """Batches fully handled (written and acked) so far."""
        return self._batches

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is re-checked after every batch or write."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def status(self) -> dict[str, int]:
        """Key figures for heartbeats and ``/status``."""
        return {
            "articles_in": self._articles.total,
            "articles_bad": self._bad.total,
            "published": self._analyzer.published,
            "duplicates": self._analyzer.duplicates,
            "feed_writes": self._writes.total,
            "redis_errors": self._redis_errors.total,
            "batches": self._batches,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; the batch in hand is finished first.

        A consumer the broker stopped delivering to (:class:`~mdp_queues.ConsumerLost`,
        counted by the consumer) is replaced by a fresh one on the same queue.
        """
        while True:
            try:
                await self._consume(stop)
            except ConsumerLost:
                continue
            return

    async def _consume(self, stop: asyncio.Event) -> None:
        batches = self._consumer.consume_batches(
            self._queue, max_messages=self._batch_size, max_wait_seconds=self._batch_wait
        )
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                next_batch = asyncio.ensure_future(anext(batches))
                done, _ = await asyncio.wait(
                    {next_batch, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                if next_batch not in done:
                    next_batch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await next_batch
                    break
                try:
                    batch = next_batch.result()
                except StopAsyncIteration:
                    break
                await self.handle(batch, stop)
        finally:
            stopper.cancel()
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    @traced("news_processor.batch", component="news-processor")
    async def handle(self, batch: ReceivedBatch, stop: asyncio.Event | None = None) -> None:
        """Decode, analyze, write and ack one batch of messages."""
        now_ns = self._clock.now_ns()
        oldest_ns = now_ns
        for message in batch.messages:
            oldest_ns = min(oldest_ns, message.envelope.received_ns)
            try:
                news = decode_news_batch(message.body)
            except MalformedInput as exc:  # the consumer already drops unreadable envelopes
                self._bad.add(len(message.envelope.events), kind=exc.kind)
                continue
            self._articles.add(len(news.articles))
            for error in news.errors:
                self._bad.add(kind=error.kind)
                _log.warning("article_skipped", kind=error.kind, detail=error.detail,
                             batch=news.batch)  # fmt: skip
            with consumer_span(
                "news_processor.message", component="news-processor",
                carrier=message.headers, batch=news.batch,
            ):  # fmt: skip
                self._analyzer.apply(news.articles, now_ns)
        writes = self._analyzer.collect(now_ns).widgets
        if not await self._write(writes, stop):
            return  # stopping with Redis down: leave the batch unacked for redelivery
        self._writes.add(len(writes))
        self._lag.record(max(0, self._clock.now_ns() - oldest_ns) / 1e9)
        await batch.ack()
        self._batches += 1
        await self._notify()

    async def _write(self, writes: Sequence[WidgetWrite], stop: asyncio.Event | None) -> bool:
        backoff = Backoff(self._retry, self._rng)
        while True:
            try:
                await self._writer.write(writes)
            except REDIS_ERRORS as exc:
                self._redis_ok = False
                self._redis_errors.add()
                await self._notify()
                pause = backoff.wait()
                _log.warning(
                    "wdc_write_failed_retrying", error=str(exc), pause_seconds=round(pause, 3)
                )
                if stop is not None and stop.is_set():
                    return False
                await self._clock.sleep(pause)
                continue
            self._redis_ok = True
            return True
