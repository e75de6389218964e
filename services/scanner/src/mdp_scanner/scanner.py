"""The scanner core: WDC pub/sub in, analyzers in the middle, WDC writes out.

Usable in-process (the demo runs it in the same event loop as everything else) and wrapped by
``mdp-scanner``. The loop, per connection to Redis:

1. ``SUBSCRIBE``/``PSUBSCRIBE`` to what the analyzers consume (``quote:*``), **then** read the
   snapshots the analyzers rehydrate from (``range:*``), so nothing published in between is lost.
2. Block on the next message (no polling, no idle back-off: the first message after a quiet
   hour is handled at once), then drain whatever else is already buffered, up to
   ``batch_max``: one batch.
3. ``apply`` the batch to every analyzer, ``collect`` once, write everything in one pipeline
   (``mdp_cache.widgets``), which also publishes. A burst of quotes thus costs a few pipelines,
   not one round trip per quote, and Redis's output buffer for this subscriber never backs up.

A pause (the control plane's order, :meth:`Scanner.pause`) finishes the batch in hand, then
closes the pub/sub connection, so Redis buffers nothing for a scanner that reads nothing; what
is published meanwhile is not delivered (pub/sub keeps no backlog). A resume subscribes and
rehydrates as after a reconnect.

Losing Redis ends the connection's loop; the scanner reconnects with jittered backoff, subscribes
again and re-reads the snapshots (analyzer ``restore`` keeps newer in-memory state). Writes that
failed are kept (bounded) and retried first. Then it catches up (at start too): the current
documents of the value feeds it consumes (``quote:*``) are handled as one more batch, so a
record published while it was away or down still counts (a symbol that did not trade again
kept a stale range, or none, before).

Replicas: pub/sub is a broadcast, so every replica sees every message and computes the same
state; range documents are idempotent overwrites. Only list appends (alerts) would duplicate, so
each is guarded by ``SET NX`` on a digest of its bytes (``KEY_SCANNER_DEDUP``): two replicas
append each alert once. Alerts are a deterministic function of the ordered stream, so both
replicas produce the same bytes; right after one replica restarts, a rare alert may differ in
its ``previous`` field and appear twice. An alert that names what it is about
(``WidgetWrite.identity``: the unusual-volume, halt and news-mover alerts) is guarded by that
identity instead, so it appears once even when a restarted replica raises it again with other
figures (within the marker's TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import random
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisClusterException, RedisError

from mdp_analyzers.typing import Analyzer, FeedMessage, Rehydratable, WidgetWrite
from mdp_cache.client import PUBSUB_RECONNECT, discover, mget, subscriber
from mdp_cache.control import RuntimeState
from mdp_cache.keys import KEY_SCANNER_DEDUP, feed_for
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import Clock
from mdp_core.logging import get_logger
from mdp_core.telemetry import Metrics, traced

__all__ = ["Scanner", "ScannerStats"]

_log = get_logger(__name__)

_SCAN_COUNT = 1_000
_MGET_CHUNK = 500


class _LinkDead(Exception):
    """The pub/sub connection stopped answering."""


@dataclass(slots=True)
class ScannerStats:
    """Counters of one scanner process."""

    messages: int = 0
    processed: int = 0
    batches: int = 0
    writes: int = 0
    alerts_deduplicated: int = 0
    reconnects: int = 0
    rehydrations: int = 0
    snapshots_read: int = 0
    caught_up: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    unwritten: int = 0
    connected: bool = False
    paused: bool = False
    control_changes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures (``/status``; flattened into ``/metrics``)."""
        return {
            "messages_total": self.messages,
            "processed_total": self.processed,
            "batches_total": self.batches,
            "writes_total": self.writes,
            "alerts_deduplicated_total": self.alerts_deduplicated,
            "reconnects_total": self.reconnects,
            "rehydrations_total": self.rehydrations,
            "snapshots_read_total": self.snapshots_read,
            "caught_up_total": self.caught_up,
            "unwritten": self.unwritten,
            "connected": self.connected,
            "paused": self.paused,
            "control_changes_total": dict(self.control_changes),
            "errors_total": {f"reason={k}": v for k, v in self.errors.items()},
            "rejected_total": {f"reason={k}": v for k, v in self.rejected.items()},
        }


@runtime_checkable
class _CountsRejected(Protocol):
    """**Protocol:** an analyzer that counts the inputs it skipped, by reason (in ``/metrics``)."""

    @property
    def rejected(self) -> Counter[str]:
        """Skipped inputs so far, by reason."""
        ...


@dataclass(slots=True)
class _Route:
    """One analyzer and the globs of the channels it consumes."""

    analyzer: Analyzer[FeedMessage]
    patterns: tuple[str, ...]


class Scanner:
    """Runs analyzers over WDC pub/sub and writes their output back to WDC.

    Args:
        redis: The WDC client (bytes in/out, e.g. ``mdp_cache.client.create_redis``); the
            scanner also opens its pub/sub connection from it.
        analyzers: The analyzers to run; each declares the channels it consumes (``consumes``:
            names or globs such as ``quote:*``).
        clock: Time given to analyzers (``now_ns``) - a ManualClock in tests.
        batch_max: Most messages per batch.
        dedup_alerts: Guard list-feed appends with ``SET NX`` (safe with several replicas).
        backoff: Reconnect delays (:mod:`mdp_core.backoff`), restarted after a link that worked.
        rng: Random source of the reconnect jitter.
        keepalive: Seconds without traffic before the link is PINGed.
        unwritten_max: Writes kept for retry while Redis is down.
    """

    def __init__(
        self,
        redis: Redis,
        analyzers: Sequence[Analyzer[FeedMessage]],
        *,
        clock: Clock,
        batch_max: int = 1_000,
        dedup_alerts: bool = True,
        backoff: BackoffPolicy = PUBSUB_RECONNECT,
        rng: random.Random | None = None,
        keepalive: float = 15.0,
        unwritten_max: int = 10_000,
    ) -> None:
        if not analyzers:
            msg = "the scanner needs at least one analyzer"
            raise ValueError(msg)
        self._redis = redis
        self._writer = WidgetWriter(redis)
        self._routes = [_Route(a, tuple(sorted(type(a).consumes))) for a in analyzers]
        self._clock = clock
        self._batch_max = batch_max
        self._dedup = dedup_alerts
        self._backoff = Backoff(backoff, rng or random.Random())
        self._keepalive = keepalive
        #: Writes an outage held back, each with whether its dedup marker is already set.
        self._unwritten: deque[tuple[WidgetWrite, bool]] = deque(maxlen=unwritten_max or None)
        self._unwritten_max = unwritten_max
        self._route_cache: dict[str, tuple[int, ...]] = {}
        self._ready = asyncio.Event()
        self._running = asyncio.Event()  # cleared while paused
        self._running.set()
        self._pause_asked = asyncio.Event()
        self._idle = asyncio.Event()  # set while paused with no connection open
        self.stats = ScannerStats()
        self._batch_time = Metrics("scanner").latency("batch", "s", "seconds to handle a batch")
        patterns = {p for route in self._routes for p in route.patterns}
        self._psubscribe = sorted(p for p in patterns if any(c in p for c in "*?["))
        self._subscribe = sorted(patterns - set(self._psubscribe))

    @property
    def ready(self) -> bool:
        """Subscribed and rehydrated (readiness)."""
        return self._ready.is_set()

    async def wait_ready(self, within: float | None = None) -> bool:
        """Wait until subscribed and rehydrated; ``False`` when ``within`` passes first."""
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    @property
    def paused(self) -> bool:
        """Whether a pause was asked (and not undone by :meth:`resume`)."""
        return not self._running.is_set()

    async def pause(self) -> None:
        """Finish the batch in hand, close the pub/sub connection and wait for :meth:`resume`.

        Returns once the connection is closed (at once when none is open).
        """
        if self.paused:
            return
        self._idle.clear()
        self._running.clear()
        self._pause_asked.set()
        self.stats.paused = True
        self.stats.control_changes["paused"] += 1
        await self._idle.wait()

    async def resume(self) -> None:
        """Subscribe and rehydrate again after :meth:`pause`."""
        if not self.paused:
            return
        self.stats.control_changes["running"] += 1
        self._pause_asked.clear()
        self._running.set()
        self.stats.paused = False

    async def set_runtime_state(self, state: RuntimeState) -> None:
        """Apply the control plane's order (see :class:`mdp_runtime.RuntimeControl`)."""
        await (self.pause() if state == "paused" else self.resume())

    def metrics_snapshot(self) -> Mapping[str, object]:
        """Figures for the health server."""
        for route in self._routes:
            if isinstance(route.analyzer, _CountsRejected):
                for reason, count in route.analyzer.rejected.items():
                    self.stats.rejected[f"{route.analyzer.name}:{reason}"] = count
        self.stats.unwritten = len(self._unwritten)
        return {**self.stats.as_dict(), "batch_seconds": self._batch_time.summary().as_dict()}

    # --- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set, reconnecting as often as needed."""
        body = asyncio.ensure_future(self._run_forever())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({body, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._idle.set()  # a pause waiting for the loop does not outlive it
            # Again and again if need be: redis-py can swallow one cancel on Python 3.11.
            await cancel_until_done(body)
            await cancel_until_done(stopper)
            if body.done() and not body.cancelled() and body.exception() is not None:
                raise cast("BaseException", body.exception())

    async def _run_forever(self) -> None:
        backoff = self._backoff
        first = True
        while True:
            if self.paused:
                self._idle.set()
                await self._running.wait()
            try:
                await self._connection(first)
            except (RedisError, RedisClusterException, OSError, _LinkDead) as exc:
                if self.stats.connected:
                    backoff.reset()  # the previous connection worked: start the backoff afresh
                kind = type(exc).__name__
                self.stats.errors[f"redis_{kind}"] += 1
                _log.warning("scanner_lost_redis", error=repr(exc), failures=backoff.attempt + 1)
            else:  # returned: paused, not lost; no backoff
                first = False
                continue
            finally:
                self._ready.clear()
                self.stats.connected = False
            first = False
            self.stats.reconnects += 1
            await asyncio.sleep(backoff.wait())

    async def _connection(self, first: bool) -> None:
        # Subscribe confirmations are received (and skipped) by us: with redis-py ignoring them,
        # get_message would return None for them too, which must only mean "quiet".
        await discover(self._redis, refresh=not first)
        pubsub = subscriber(self._redis, ignore_subscribe_messages=False)
        try:
            if self._subscribe:
                await pubsub.subscribe(*self._subscribe)
            if self._psubscribe:
                await pubsub.psubscribe(*self._psubscribe)
            await self._rehydrate()
            await self._flush_unwritten()
            await self._catch_up()
            if self.paused:
                return
            self.stats.connected = True
            self._ready.set()
            _log.info(
                "scanner_subscribed",
                again=not first,
                channels=self._subscribe,
                patterns=self._psubscribe,
            )
            while True:
                batch = await self._next_batch_unless_paused(pubsub)
                if batch is None:
                    return
                await self._process(batch)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py lacks a hint

    async def _next_batch_unless_paused(self, pubsub: PubSub) -> list[FeedMessage] | None:
        """The next batch, or None once a pause is asked while waiting for one."""
        if self._pause_asked.is_set():
            return None
        read = asyncio.ensure_future(self._next_batch(pubsub))
        paused = asyncio.ensure_future(self._pause_asked.wait())
        try:
            await asyncio.wait({read, paused}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Cancelled while waiting: the read must not outlive this call.
            await cancel_until_done(read)
            raise
        finally:
            paused.cancel()
        if not read.done():
            # Until it has ended: redis-py can swallow one cancel on Python 3.11, and a
            # caller cancelled meanwhile is not held here (nor its cancellation swallowed).
            await cancel_until_done(read)
        if read.cancelled():
            return None
        # A batch in hand is handled even if a pause came with it, or with the cancel (which
        # the read outran); a failed read raises here as it would have without the pause.
        return read.result()

    async def _next_batch(self, pubsub: PubSub) -> list[FeedMessage]:
        """Block for the first message (PINGing when quiet), then drain what is buffered."""
        silent_rounds = 0
        batch: list[FeedMessage] = []
        while not batch:
            message = await pubsub.get_message(timeout=self._keepalive)
            if message is None:
                silent_rounds += 1
                if silent_rounds >= 2:
                    raise _LinkDead("no answer to PING on the pub/sub connection")
                await pubsub.ping()
                continue
            silent_rounds = 0
            self._append(batch, message)
        while len(batch) < self._batch_max:
            message = await pubsub.get_message(timeout=0)
            if message is None:
                break
            self._append(batch, message)
        return batch

    def _append(self, batch: list[FeedMessage], message: Mapping[str, object]) -> None:
        if message.get("type") not in {"message", "pmessage"}:
            return
        channel, data = message.get("channel"), message.get("data")
        if isinstance(channel, bytes) and isinstance(data, bytes):
            try:
                batch.append(FeedMessage(channel.decode(), data))
            except UnicodeDecodeError:
                self.stats.errors["bad_channel"] += 1

    def _routes_for(self, name: str) -> tuple[int, ...]:
        routes = self._route_cache.get(name)
        if routes is None:
            routes = tuple(
                i
                for i, route in enumerate(self._routes)
                if any(fnmatch.fnmatchcase(name, p) for p in route.patterns)
            )
            if len(self._route_cache) < 100_000:
                self._route_cache[name] = routes
        return routes

    @traced("scanner.batch", component="scanner")
    async def _process(self, batch: list[FeedMessage]) -> None:
        with self._batch_time.measure():
            await self._process_batch(batch)

    async def _process_batch(self, batch: list[FeedMessage]) -> None:
        self.stats.messages += len(batch)
        per_route: list[list[FeedMessage]] = [[] for _ in self._routes]
        for message in batch:
            for index in self._routes_for(message.name):
                per_route[index].append(message)
        now_ns = self._clock.now_ns()
        writes: list[WidgetWrite] = []
        for route, inputs in zip(self._routes, per_route, strict=True):
            name = route.analyzer.name
            try:
                if inputs:
                    route.analyzer.apply(inputs, now_ns)
                produced = route.analyzer.collect(now_ns).widgets
            except Exception:  # an analyzer bug must not end the stream
                self.stats.errors[f"analyzer:{name}"] += 1
                _log.exception("analyzer_failed_batch_skipped", analyzer=name)
                continue
            # A name outside its feed (a symbol no feed name can hold) would fail the whole
            # pipeline, and the batch again on every catch-up: it is dropped and counted.
            valid = [write for write in produced if write.feed.matches(write.name)]
            if len(valid) != len(produced):
                self.stats.errors[f"bad_write:{name}"] += len(produced) - len(valid)
                bad = next(w.name for w in produced if not w.feed.matches(w.name))
                _log.warning("bad_widget_write", analyzer=name, name=bad[:80])
            writes.extend(valid)
        await self._write(writes)
        self.stats.batches += 1  # counted once its output is written
        self.stats.processed += len(batch)

    async def _write(self, writes: list[WidgetWrite], marked: Sequence[bool] = ()) -> None:
        """Write ``writes``, alerts once across replicas; ``marked``: whose marker is ours.

        When the write fails after the markers were set, the writes are kept as marked: the
        replay must not take this process's own markers for another replica's append.
        """
        if not writes:
            return
        kept: list[WidgetWrite] | None = None
        try:
            kept = await self._deduplicated(writes, marked)
            await self._writer.write(kept)
        except (RedisError, RedisClusterException, OSError):
            if kept is None:
                self._keep(writes, marked)
            else:
                self._keep(kept, [True] * len(kept))
            raise
        self.stats.writes += len(kept)

    async def _deduplicated(
        self, writes: list[WidgetWrite], marked: Sequence[bool] = ()
    ) -> list[WidgetWrite]:
        appends = [
            i
            for i, w in enumerate(writes)
            if w.feed.shape == "list" and not (i < len(marked) and marked[i])
        ]
        if not self._dedup or not appends:
            return writes
        pipe = self._redis.pipeline(transaction=False)
        for index in appends:
            write = writes[index]
            basis = write.payload if write.identity is None else write.identity.encode()
            digest = hashlib.blake2b(basis, digest_size=16).hexdigest()
            key = KEY_SCANNER_DEDUP.name(feed=write.name, digest=digest)
            pipe.set(key, b"1", nx=True, ex=KEY_SCANNER_DEDUP.ttl)
        results = await pipe.execute()
        dropped = {index for index, fresh in zip(appends, results, strict=True) if not fresh}
        self.stats.alerts_deduplicated += len(dropped)
        return [w for i, w in enumerate(writes) if i not in dropped]

    def _keep(self, writes: list[WidgetWrite], marked: Sequence[bool] = ()) -> None:
        if self._unwritten_max <= 0:
            return
        before = len(self._unwritten)
        self._unwritten.extend(
            (write, index < len(marked) and marked[index]) for index, write in enumerate(writes)
        )
        lost = before + len(writes) - len(self._unwritten)
        if lost > 0:
            self.stats.errors["unwritten_dropped"] += lost

    async def _flush_unwritten(self) -> None:
        if not self._unwritten:
            return
        pending = list(self._unwritten)
        self._unwritten.clear()
        _log.info("outage_writes_replaying", writes=len(pending))
        await self._write([write for write, _ in pending], [mark for _, mark in pending])

    # --- rehydration ----------------------------------------------------------------------

    async def _rehydrate(self) -> None:
        """Read the snapshots each rehydratable analyzer asks for and hand them over."""
        for route in self._routes:
            analyzer = route.analyzer
            if not isinstance(analyzer, Rehydratable):
                continue
            snapshots: dict[str, bytes] = {}
            for pattern in analyzer.snapshot_patterns():
                snapshots.update(await self._read_values(pattern))
            analyzer.restore(snapshots, self._clock.now_ns())
            self.stats.snapshots_read += len(snapshots)
            self.stats.rehydrations += 1
            _log.info("analyzer_rehydrated", analyzer=analyzer.name, feeds=len(snapshots))

    async def _catch_up(self) -> None:
        """Handle the current documents of the value feeds the analyzers consume.

        Pub/sub keeps no backlog: a quote record published while this scanner was away (a
        lost connection, a failover, a pause, a restart) would never reach it, and a symbol
        that did not trade again would keep a range without it, or none. Its snapshot holds
        the record whole, so handling the snapshots once more after subscribing misses
        nothing; what was seen already merges as a no-op (ranges keep extremes and the latest
        bar; alerts are raised by what is new). List feeds are left out: a snapshot is not
        one element.
        """
        patterns = dict.fromkeys(p for route in self._routes for p in route.patterns)
        messages: list[FeedMessage] = []
        for pattern in patterns:
            values = await self._read_values(pattern, lists=False)
            messages.extend(FeedMessage(name, value) for name, value in sorted(values.items()))
        for start in range(0, len(messages), self._batch_max):
            await self._process(messages[start : start + self._batch_max])
        self.stats.caught_up += len(messages)
        if messages:
            _log.info("scanner_caught_up", messages=len(messages))

    async def _read_values(self, pattern: str, *, lists: bool = True) -> dict[str, bytes]:
        """Snapshots of the feeds matching ``pattern`` (a name is a pattern without globs).

        A value feed's snapshot is its document; a list feed's is the JSON array of its
        elements, newest first (left out unless ``lists``).
        """
        names: list[bytes] = []
        found: dict[str, bytes] = {}
        async for raw in self._redis.scan_iter(match=pattern, count=_SCAN_COUNT):
            name = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            feed = feed_for(name)
            if feed is not None and feed.shape == "value":
                names.append(name.encode())
            elif feed is not None and feed.shape == "list" and lists:
                items = await self._redis.lrange(name, 0, (feed.max_len or 1) - 1)
                found[name] = b"[" + b",".join(i for i in items if isinstance(i, bytes)) + b"]"
        for start in range(0, len(names), _MGET_CHUNK):
            chunk = names[start : start + _MGET_CHUNK]
            values = await mget(self._redis, chunk)
            for key, value in zip(chunk, values, strict=True):
                if isinstance(value, bytes):
                    found[key.decode()] = value
        return found
