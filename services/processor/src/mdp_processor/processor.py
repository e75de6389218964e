"""The processing loop: queue batches through analyzers into MDC and WDC, acked after the write.

One :class:`Processor` runs in one event loop (one worker process, or the embedded demo with the
memory bus). Per queue it pulls batches of messages, decodes each envelope into models in one
call, skips batches it has applied before, and folds the events into the analyzers. A flusher
runs as soon as events wait, paced from the start of the previous flush by that flush's cost
(:mod:`mdp_processor.pacing`: at once after a slow one, sooner when ``flush_max_events`` are
waiting): it collects the
coalesced output of every analyzer, writes all state to MDC in one pipeline (the "batch
applied" marks last: no transaction, which would stop every other client of MDC for the whole
flush), hands rows MDC refused back to their analyzers (which hydrate from MDC
and offer them again), publishes the rows MDC stored and the other widgets in one WDC pipeline,
and only then acks the messages of that flush (one ack per queue). With a partitioned topology
and an ownership store, it consumes only the partitions it holds leases for (see
:mod:`mdp_cache.ownership`). A task apart from the flusher brings every analyzer that asks for it
in step with what other replicas merged (halts) and, unless the service composes elsewhere
(:mod:`mdp_processor.composition`), composes the boards when this replica holds their leases,
so a composition never delays a flush.

Outages: a failed flush write pauses consumption (unacked messages stay with the broker,
bounded by the prefetch), and the same output is retried with exponential backoff until it
lands; then consumption resumes. Nothing is acked that was not written. A failed composition
does not pause anything: its documents go out with the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from msgspec.structs import replace
from redis.exceptions import RedisClusterException, RedisError

from mdp_analyzers.typing import (
    Analyzer,
    ClosingMinutes,
    Hydrating,
    NeedsReference,
    Rejecting,
    Synchronized,
    WidgetWrite,
    published,
)
from mdp_cache.claims import BatchClaims
from mdp_cache.client import is_transient
from mdp_cache.control import RuntimeState
from mdp_cache.keys import KEY_SEEN_BATCH
from mdp_cache.ops import Applied, StateBackend, StateOp, checked_ops
from mdp_cache.ownership import Ownership, fair_share
from mdp_cache.reference import ReferenceCache
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.cancellation import RECANCEL_SECONDS, cancel_until_done
from mdp_core.clock import Clock, LiveClock
from mdp_core.envelope import EventBatch, decode_event_batch
from mdp_core.errors import MalformedInput
from mdp_core.events import MarketEvent
from mdp_core.logging import get_logger
from mdp_core.telemetry import attached_context, consumer_span, inject_context, traced
from mdp_processor.composition import Composition, WidgetSink, valid_writes
from mdp_processor.pacing import (
    DEFAULT_BUSY_FRACTION,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MAX_INTERVAL_SECONDS,
    DEFAULT_SATURATED_MAX_INTERVAL_SECONDS,
    DEFAULT_SATURATION_SECONDS,
    FlushPacing,
)
from mdp_processor.stats import ProcessorStats
from mdp_queues import Consumer, QueueSpec, ReceivedBatch, ack_all

__all__ = ["Processor", "ProcessorConfig", "WidgetSink"]

_log = get_logger(__name__)
_NS_PER_MS: Final = 1_000_000
_NS_PER_SECOND: Final = 1_000_000_000


_RETRY: Final = BackoffPolicy(initial_seconds=0.1, max_seconds=5.0)
"""Retries when the service passes none (the worker passes its ``MDP_RETRY_*`` settings)."""


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """Tuning of one processor.

    Attributes:
        flush_interval_seconds: Shortest time between the starts of two flushes. Events that arrive
            while nothing is pending are flushed at least this long after the previous flush
            started (at once after a slow one); the time is what coalescing may cost in
            freshness.
        flush_max_interval_seconds: Longest time between the starts of two flushes that the
            pacing adds because the previous flush was costly (:class:`FlushPacing`).
        flush_busy_fraction: Share of the time flushes may take while the processor keeps up:
            the next flush starts the previous one's duration divided by this after it
            started, within the two bounds above.
        flush_saturated_max_interval_seconds: The ceiling of that pacing while the processor
            is saturated: fewer, larger flushes, for throughput (off when not above
            ``flush_max_interval_seconds``).
        saturation_seconds: How long a consumer must have been handed batch after batch
            without waiting for one (its queue never drained) for the processor to count as
            saturated; it is no longer once a consumer that was waits.
        idle_flush_seconds: Longest time between two flushes while no event arrives (analyzers whose
            output moves with time alone, such as a sliding window, still get collected).
        flush_max_events: Events waiting that trigger an early flush; consumption waits while
            this many are pending (the flush takes them), so memory and lag stay bounded (by
            this plus one delivery batch).
        batch_messages: Messages per delivery batch pulled from a queue.
        max_in_flight: Concurrent background tasks (reference fetches).
        consumer_group: Namespace of the "batch applied" marks (one per processor kind).
        instance: This replica's id (lease holder name, logs).
        retry: Pauses between attempts of everything retried for want of a connection
            (consumer start and consumption, seen-set checks, claims, writes): the service
            passes its ``MDP_RETRY_*`` settings (:class:`mdp_core.backoff.BackoffPolicy`).
        remember_batches: Batch ids remembered in process for duplicate detection.
        reference_attempts: Lookups of a symbol's reference data while it has no previous day
            (a failed fetch at start must not leave the symbol without a gap for the day).
        reference_retry_seconds: Pause between those lookups (the cache's own retry pause
            applies too).
        future_tolerance_seconds: Events stamped further ahead of the clock are dropped as bad
            (``bad_events["future"]``): a garbage timestamp far in the future would otherwise
            move an analyzer's trading day there and make every real event stale.
        ownership_interval_seconds: With a partitioned topology and an ownership store: how often
            this processor announces itself, renews its partition leases and rebalances.
        lease_ttl_seconds: How long a partition lease (and the announcement) outlives its last
            renewal; below the queues' TTL, so a dead owner's partitions move on before their
            messages expire.
        compose: Compose boards on this event loop. False where the service composes apart:
            a worker runs its compositions in a thread of their own
            (:class:`~mdp_processor.composition.ComposerThread`), out of reach of the flush's
            synchronous stretches.
    """

    flush_interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    flush_max_interval_seconds: float = DEFAULT_MAX_INTERVAL_SECONDS
    flush_busy_fraction: float = DEFAULT_BUSY_FRACTION
    flush_saturated_max_interval_seconds: float = DEFAULT_SATURATED_MAX_INTERVAL_SECONDS
    saturation_seconds: float = DEFAULT_SATURATION_SECONDS
    idle_flush_seconds: float = 0.05
    flush_max_events: int = 20_000
    batch_messages: int = 100
    max_in_flight: int = 500
    consumer_group: str = "mdp"
    instance: str = "mdp-0"
    retry: BackoffPolicy = _RETRY
    remember_batches: int = 100_000
    reference_attempts: int = 4
    reference_retry_seconds: float = 30.0
    future_tolerance_seconds: float = 300.0
    ownership_interval_seconds: float = 1.0
    lease_ttl_seconds: float = 3.0
    compose: bool = True


class _Stopped(Exception):
    """Internal: a write was abandoned because the processor is stopping."""


class Processor:
    """Runs analyzers over queue batches and writes their output (see the module docstring).

    Args:
        consumer: Where batches come from (AMQP or the memory bus).
        analyzers: The analyzers to run; each receives the event kinds it ``consumes``.
        state: The MDC state backend (``RedisState``, or ``MemoryState`` in one process).
        widgets: The WDC sink.
        reference: Reference data cache for analyzers that want it (None: rows stay empty).
        clock: Source of ``now`` for analyzers and lag.
        config: Tuning.
        claims: Batch ids claimed across every worker and replica (MDC), so a batch published
            twice is applied once wherever its copies land; without it, only this process's
            memory and the "applied" marks of redelivered messages catch duplicates.
        ownership: Membership and partition leases shared by the processors of the group.
            With a partitioned topology, this processor then consumes only the partitions it
            owns (its fair share of the live members, see :mod:`mdp_cache.ownership`), and
            hands them over when members come or go; without it, it consumes them all.
    """

    def __init__(
        self,
        consumer: Consumer,
        analyzers: Sequence[Analyzer[MarketEvent]],
        *,
        state: StateBackend,
        widgets: WidgetSink,
        reference: ReferenceCache | None = None,
        clock: Clock | None = None,
        config: ProcessorConfig | None = None,
        claims: BatchClaims | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.consumer = consumer
        self.analyzers = list(analyzers)
        self.state = state
        self.widgets = widgets
        self.reference = reference
        self.claims = claims
        self.ownership = ownership
        self.clock = clock or LiveClock()
        self.config = config or ProcessorConfig()
        if not self.config.saturation_seconds >= 0:
            msg = f"saturation_seconds must be 0 or above; it was {self.config.saturation_seconds}"
            raise ValueError(msg)
        self._pacing = FlushPacing(
            self.config.flush_interval_seconds,
            self.config.flush_max_interval_seconds,
            self.config.flush_busy_fraction,
            self.config.flush_saturated_max_interval_seconds,
        )
        self.stats = ProcessorStats()
        self._by_kind: dict[str, list[Analyzer[MarketEvent]]] = {}
        for analyzer in self.analyzers:
            for kind in analyzer.consumes:
                self._by_kind.setdefault(kind, []).append(analyzer)
        # Which optional protocols each analyzer has, decided once: a runtime Protocol check
        # costs microseconds, and it would otherwise run for every message.
        self._rejecting: dict[int, Rejecting] = {
            id(a): a for a in self.analyzers if isinstance(a, Rejecting)
        }
        self._closing_minutes = [a for a in self.analyzers if isinstance(a, ClosingMinutes)]
        self._needs_reference: dict[int, NeedsReference] = {
            id(a): a for a in self.analyzers if isinstance(a, NeedsReference)
        }
        self._pending_batches: list[ReceivedBatch] = []
        self._pending_marks: list[str] = []
        self._pending_lag: list[tuple[int, int]] = []
        self._pending_events = 0
        # The trace context of the first batch since the last flush: that flush continues it.
        self._pending_trace: dict[str, str] | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._flush_now = asyncio.Event()
        # Per queue: loop time of the first of the batches handed out since its consumer last
        # waited for one (absent while it waits, or has not been handed one without waiting).
        self._backlogged_since: dict[str, float] = {}
        # Whether the flusher paces for saturation now (a consumer that waits wakes it).
        self._paced_saturated = False
        # Set while events wait for a flush (or to wake the flusher on stop).
        self._pending_work = asyncio.Event()
        # Set whenever a flush takes the pending events: consumption waits on it when full.
        self._taken = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._stopping = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._compose_lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(self.config.max_in_flight)
        self._background: set[asyncio.Task[None]] = set()
        self.composition: Composition | None = (
            Composition(
                self.analyzers,
                state=state,
                widgets=widgets,
                clock=self.clock,
                instance=self.config.instance,
                counts=self.stats,
            )
            if self.config.compose
            else None
        )
        self._next_sync: dict[int, int] = {}
        self._consumer_failures = 0
        self._jitter = random.Random()
        self._progress = asyncio.Condition()
        # Partition ownership: the partitions held, their consumers, and the queues whose
        # consumer has a delivery batch in hand (those are not cancelled, but let finish).
        self.partitions: set[int] = set()
        self._partition_stop: dict[int, asyncio.Event] = {}
        self._partition_tasks: dict[int, list[asyncio.Task[None]]] = {}
        self._busy: set[str] = set()
        # Runtime pause (the control plane's order): no deliveries are taken while it is set.
        self._paused = False
        self._round = asyncio.Lock()  # one ownership round, or a pause, at a time
        self._consumers: list[asyncio.Task[None]] = []
        self._consumers_stop = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    def queues(self, partition: int | None = None) -> list[QueueSpec]:
        """The queues carrying the event kinds the analyzers consume (of one partition)."""
        topology = self.consumer.topology
        found = {spec for kind in self._by_kind for spec in topology.partitions_of(kind)}
        if partition is not None:
            found = {spec for spec in found if spec.partition == partition}
        return sorted(found, key=lambda spec: spec.name)

    @property
    def _owns_partitions(self) -> bool:
        return self.ownership is not None and self.consumer.topology.partitioned

    @property
    def writable(self) -> bool:
        """False while writes to Redis fail (consumption is paused)."""
        return self._writable.is_set()

    @property
    def reference_pending(self) -> int:
        """Reference lookups not finished yet: each may still change rows (a drain waits)."""
        return len(self._background)

    @property
    def ready(self) -> bool:
        """Whether the processor is consuming and writing (readiness)."""
        return self.writable and self.consumer.connected and not self._stopping.is_set()

    async def run(self) -> None:
        """Consume and flush until :meth:`stop` (or cancellation); a final flush is attempted."""
        await self._start_consumer()
        owner: asyncio.Task[None] | None = None
        if self._owns_partitions:
            owner = asyncio.create_task(self._own_forever(), name="ownership")
        elif not self._paused:
            self._start_consumers()
        flusher = asyncio.create_task(self._flush_forever(), name="flusher")
        composer = asyncio.create_task(self._compose_forever(), name="composer")
        try:
            await self._stopping.wait()
        finally:
            self.stop()  # a cancelled run winds down like a stopped one
            # Cancelled until they end: a cancel that meets a library's wait_for (redis-py,
            # aiormq) is lost on Python 3.11, and the stop would then wait for the grace
            # period's hard cancel.
            if owner is not None:
                await cancel_until_done(owner)
            consumers = self._consumers + [
                task for tasks in self._partition_tasks.values() for task in tasks
            ]
            await self._end_consumers(consumers)
            # The flusher and the composer see the stop themselves: a flush in progress is
            # finished, not cut off in the middle of a Redis call (which lost the state and
            # "applied" marks it had collected, and left its batches unacked, so the broker
            # redelivered batches that had been applied). A write to an unreachable Redis is
            # abandoned at the stop, so this wait is bounded.
            await asyncio.gather(composer, flusher, return_exceptions=True)
            with contextlib.suppress(_Stopped):
                await self.flush()
            await self._release_all()
            await asyncio.gather(*(cancel_until_done(task) for task in list(self._background)))
            with contextlib.suppress(Exception):
                await self.consumer.close()

    def _backoff(self) -> Backoff:
        """The state of one retry loop, with the configured policy."""
        return Backoff(self.config.retry, self._jitter)

    async def _start_consumer(self) -> None:
        backoff = self._backoff()
        while not self._stopping.is_set():
            try:
                await self.consumer.start()
            except Exception as exc:  # the broker may come up later: keep trying
                self._consumer_failures += 1
                delay = backoff.wait()
                _log.warning("consumer_start_failed", error=repr(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
            else:
                return

    def stop(self) -> None:
        """Ask :meth:`run` to finish (after one last flush)."""
        self._stopping.set()
        self._writable.set()
        self._pending_work.set()
        self._flush_now.set()
        self._taken.set()

    # --- runtime pause --------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether consumption is paused by :meth:`pause`."""
        return self._paused

    async def pause(self) -> None:
        """Stop taking deliveries; finish, write and ack the batches in hand (a drain).

        Deliveries prefetched but not handed out go back to their queue, and partition leases
        are given back, so the other processors of the group take this one's share; what no
        one consumes waits in the queues until :meth:`resume` (within the queues' own
        message TTL, which drops stale market data whoever is paused).
        """
        if self._paused:
            return
        self._paused = True
        async with self._round:
            if self._owns_partitions:
                held = set(self.partitions)
                if held:
                    await self._stop_partitions(held)
                    assert self.ownership is not None
                    await self.ownership.release(held, self.config.instance)
                    self.stats.handovers += len(held)
                self.stats.partitions_owned = 0
            else:
                consumers, self._consumers = self._consumers, []
                self._consumers_stop.set()
                await self._stop_tasks(consumers)
        self.stats.pauses += 1

    async def set_runtime_state(self, state: RuntimeState) -> None:
        """Apply the control plane's order (see :class:`mdp_runtime.RuntimeControl`)."""
        await (self.pause() if state == "paused" else self.resume())

    async def resume(self) -> None:
        """Take deliveries again after :meth:`pause` (partitions: from the next round)."""
        if not self._paused:
            return
        self._paused = False
        if not self._owns_partitions and not self._stopping.is_set():
            self._start_consumers()
        self.stats.resumes += 1

    def _start_consumers(self) -> None:
        if self._consumers:  # resumed while run() was still connecting: started once
            return
        self._consumers_stop = asyncio.Event()
        self._consumers = [
            asyncio.create_task(
                self._consume(queue, self._consumers_stop), name=f"consume {queue.name}"
            )
            for queue in self.queues()
        ]

    # --- consumption ----------------------------------------------------------------------

    async def _consume(self, queue: QueueSpec, stop: asyncio.Event | None = None) -> None:
        """Ingest ``queue`` until cancelled, or until ``stop`` is set (between batches)."""
        try:
            await self._consume_until(queue, stop or self._stopping)
        finally:
            # A consumer of this queue started later must not inherit this one's backlog.
            self._backlogged_since.pop(queue.name, None)

    async def _consume_until(self, queue: QueueSpec, stop: asyncio.Event) -> None:
        """The body of :meth:`_consume`: batches in, until a stop; a failed pull is retried."""
        backoff = self._backoff()
        loop = asyncio.get_running_loop()
        while not stop.is_set() and not self._stopping.is_set():
            try:
                # No lingering for more messages: whatever is queued now is taken, and the
                # flush coalesces per symbol anyway, so waiting here would only add lag.
                async for batch in self.consumer.consume_batches(
                    queue, max_messages=self.config.batch_messages, max_wait_seconds=0.0
                ):
                    self._note_delivery(queue.name, waited=batch.waited, now=loop.time())
                    # A batch in hand is ingested whatever happens to the partition: a
                    # handover waits for it rather than cancelling it half applied.
                    self._busy.add(queue.name)
                    try:
                        await self._writable.wait()
                        await self._room()
                        await self.ingest(batch)
                    except Exception:
                        # Settle exactly once whatever happened: a batch neither queued for
                        # the flush's ack nor settled would stay unacked for good.
                        if batch not in self._pending_batches and not batch.settled:
                            await batch.reject()
                        raise
                    finally:
                        self._busy.discard(queue.name)
                    backoff.reset()
                    if stop.is_set():
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._consumer_failures += 1
                _log.warning("consume_failed", queue=queue.name, error=repr(exc))
                # Not a backlog: the time until the pull is retried must not count as one.
                self._backlogged_since.pop(queue.name, None)
                await asyncio.sleep(backoff.wait())

    def _note_delivery(self, queue: str, *, waited: bool, now: float) -> None:
        """Track whether the consumer of ``queue`` keeps up, for :meth:`_saturated`.

        ``now``: the event loop's time when the batch was handed out. A batch handed out
        without a wait starts (or continues) a run of them; one waited for ends it. If that
        run had made the processor saturated and the flusher is pacing for saturation, the
        flusher is woken: what the backlog left pending goes out now, not at the end of a
        long interval. A wait on another, quiet queue does not wake it.
        """
        if not waited:
            self._backlogged_since.setdefault(queue, now)
            return
        since = self._backlogged_since.pop(queue, None)
        if (
            self._paced_saturated
            and since is not None
            and now - since >= self.config.saturation_seconds
        ):
            self._flush_now.set()

    def _saturated(self, now: float) -> bool:
        """Whether some consumer has not waited for a batch for ``saturation_seconds``.

        Only a consumer holding a batch counts: one suspended outside its batches is waiting
        for a delivery (a consumer handed its batches without waiting never yields between
        them), and its record of a backlog is from before that wait.
        """
        threshold = self.config.saturation_seconds
        return any(
            now - since >= threshold and queue in self._busy
            for queue, since in self._backlogged_since.items()
        )

    async def _room(self) -> None:
        """Wait while a full flush's worth of events is pending (the flush takes them)."""
        while self._pending_events >= self.config.flush_max_events and not self._stopping.is_set():
            self._taken.clear()
            self._flush_now.set()
            await self._taken.wait()

    async def ingest(self, batch: ReceivedBatch) -> None:
        """Decode, de-duplicate and apply one delivery batch; it is acked by a later flush."""
        decoded: list[tuple[str, EventBatch, Mapping[str, str]]] = []
        fresh: list[str] = []  # first deliveries: claimed across consumers below
        for message in batch.messages:
            try:
                events = decode_event_batch(message.body)
            except MalformedInput as exc:
                self.stats.poison += 1
                _log.warning("poison_message", queue=message.queue.name, error=str(exc))
                continue
            for error in events.errors:
                self.stats.bad_events[error.kind] += 1
            mark = KEY_SEEN_BATCH.name(consumer=self.config.consumer_group, batch=events.batch)
            if mark in self._recent:
                self.stats.duplicates += 1
                continue
            if message.redelivered and await self._seen_before(mark):
                self.stats.duplicates += 1
                continue
            self._remember(mark)
            decoded.append((mark, events, message.headers))
            if message.redelivered:
                self.stats.redelivered_events += len(events.events)
            else:
                fresh.append(events.batch)
        if fresh and self.claims is not None:
            won = await self._claim(fresh)
            lost = set(fresh) - won
            if lost:
                self.stats.duplicates += len(lost)
                decoded = [item for item in decoded if item[1].batch not in lost]
        now_ns = self.clock.now_ns()
        for mark, events, headers in decoded:
            # One span per message (a batch of events), in the listener's trace.
            with consumer_span(
                "processor.batch",
                component="processor",
                carrier=headers,
                kind=events.kind,
                events=len(events.events),
                batch=events.batch,
            ):
                self._apply(events, now_ns)
                if self._pending_trace is None:
                    self._pending_trace = inject_context()
            self._pending_marks.append(mark)
            # A delivery batch can hold a hundred messages of hundreds of events: give the
            # flusher (waiting on Redis replies) a turn between messages, so a busy queue
            # never holds a flush and its acks back for a whole batch.
            await asyncio.sleep(0)
        self._pending_batches.append(batch)
        self._pending_work.set()
        if self._pending_events >= self.config.flush_max_events:
            self._flush_now.set()

    async def _seen_before(self, mark: str) -> bool:
        backoff = self._backoff()
        while True:
            try:
                return bool(await self.state.seen([mark]))
            except Exception as exc:
                self.stats.write_failures += 1
                _log.warning("seen_check_failed", error=repr(exc))
                if self._stopping.is_set():
                    return False
                await asyncio.sleep(backoff.wait())

    async def _claim(self, batches: list[str]) -> set[str]:
        assert self.claims is not None
        backoff = self._backoff()
        while True:
            try:
                return await self.claims.claim(batches)
            except Exception as exc:
                self.stats.write_failures += 1
                _log.warning("claim_failed", error=repr(exc))
                if self._stopping.is_set():
                    return set(batches)
                await asyncio.sleep(backoff.wait())

    def _remember(self, mark: str) -> None:
        self._recent[mark] = None
        if len(self._recent) > self.config.remember_batches:
            self._recent.popitem(last=False)

    def _apply(self, batch: EventBatch, now_ns: int) -> None:
        events = batch.events
        if not events:
            return
        limit_ms = (
            now_ns + int(self.config.future_tolerance_seconds * _NS_PER_SECOND)
        ) // _NS_PER_MS
        if max(event.event_time_ms for event in events) > limit_ms:
            kept = [event for event in events if event.event_time_ms <= limit_ms]
            self.stats.bad_events["future"] += len(events) - len(kept)
            _log.warning(
                "future_events_dropped",
                kind=batch.kind,
                batch=batch.batch,
                dropped=len(events) - len(kept),
            )
            events = kept
            if not events:
                return
        self.stats.messages += 1
        self.stats.events[batch.kind] += len(events)
        self._pending_events += len(events)
        self._pending_lag.append((batch.received_ns, events[-1].event_time_ms))
        self.stats.queue_wait.add(max(0, now_ns - batch.received_ns) / _NS_PER_SECOND)
        for analyzer in self._by_kind.get(batch.kind, ()):
            try:
                analyzer.apply(events, now_ns)
            except Exception:
                self.stats.analyzer_errors[analyzer.name] += 1
                _log.exception("analyzer_failed", analyzer=analyzer.name, kind=batch.kind)
            rejecting = self._rejecting.get(id(analyzer))
            if rejecting is not None:
                self.stats.bad_events.update(rejecting.take_rejected())
            needs_reference = self._needs_reference.get(id(analyzer))
            if self.reference is not None and needs_reference is not None:
                self._request_reference(needs_reference)

    # --- partition ownership --------------------------------------------------------------

    async def _own_forever(self) -> None:
        """Announce this processor, hold its fair share of partitions, hand over the rest.

        Each round: read the live members, release the partitions another member should own
        now (after their last events were written), take or renew the leases of this one's
        share, and consume exactly the partitions whose lease it holds. A partition whose
        lease is still held elsewhere (its old owner is finishing) is taken on a later round.
        When the store cannot be reached for longer than a lease lives, this processor stops
        consuming: its leases may have passed to others meanwhile.
        """
        member = self.config.instance
        partitions = self.consumer.topology.partitions
        ttl_ms = max(1, int(self.config.lease_ttl_seconds * 1000))
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while not self._stopping.is_set():
            try:
                async with self._round:
                    if not self._paused:  # paused: not a member, its share goes to the others
                        await self._own_round(member, partitions, ttl_ms)
                last_ok = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.ownership_failures += 1
                _log.warning("ownership_failed", error=repr(exc))
                if self.partitions and loop.time() - last_ok > self.config.lease_ttl_seconds * 0.8:
                    self.stats.leases_lost += len(self.partitions)
                    await self._stop_partitions(set(self.partitions))
            self.stats.partitions_owned = len(self.partitions)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.ownership_interval_seconds):
                    await self._stopping.wait()

    async def _own_round(self, member: str, partitions: int, ttl_ms: int) -> None:
        """One ownership round (see :meth:`_own_forever`)."""
        assert self.ownership is not None
        ownership = self.ownership
        members = await ownership.members(member, ttl_ms)
        wanted = fair_share(member, members or [member], partitions)
        giving_up = self.partitions - wanted
        if giving_up:
            await self._stop_partitions(giving_up)
            await ownership.release(giving_up, member)
            self.stats.handovers += len(giving_up)
        held = await ownership.hold(wanted, member, ttl_ms)
        lost = self.partitions - held
        if lost:  # taken by another while this processor stalled
            await self._stop_partitions(lost)
            self.stats.leases_lost += len(lost)
        for partition in sorted(held - self.partitions):
            self._start_partition(partition)

    def _start_partition(self, partition: int) -> None:
        stop = self._partition_stop[partition] = asyncio.Event()
        self._partition_tasks[partition] = [
            asyncio.create_task(self._consume(queue, stop), name=f"consume {queue.name}")
            for queue in self.queues(partition)
        ]
        self.partitions.add(partition)

    async def _stop_partitions(self, partitions: set[int]) -> None:
        """Stop consuming ``partitions`` and write what was taken from them (then acked)."""
        tasks: list[asyncio.Task[None]] = []
        for partition in partitions:
            self._partition_stop.pop(partition).set()
            tasks += self._partition_tasks.pop(partition)
            self.partitions.discard(partition)
        await self._stop_tasks(tasks)

    async def _stop_tasks(self, tasks: list[asyncio.Task[None]]) -> None:
        """End consumer tasks whose stop event is set, then write (and ack) what they took.

        A consumer with a batch in hand finishes it; one idle in its queue is cancelled, as it
        has nothing in hand to lose.
        """
        await self._end_consumers([task for task in tasks if not self._is_busy(task)])
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush()

    def _is_busy(self, task: asyncio.Task[None]) -> bool:
        """Whether the consumer ``task`` holds a batch it has not finished ingesting."""
        return task.get_name().removeprefix("consume ") in self._busy

    async def _end_consumers(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        """Cancel consumer tasks now, and again until they have ended.

        The first cancel lands in this loop turn, before any of them can take a delivery. A
        cancel lost inside a library's ``wait_for`` (Python 3.11) is repeated every
        ``RECANCEL_SECONDS``, but never on a consumer that took a batch meanwhile: that one
        finishes the batch and returns on its stop event, rather than being cut off with the
        batch neither applied nor settled.
        """
        for task in tasks:
            task.cancel()
        pending = {task for task in tasks if not task.done()}
        while pending:
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
            for task in pending:
                if not self._is_busy(task):
                    task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # their errors are retrieved

    async def _release_all(self) -> None:
        """On the way out: give every held lease back, so successors need not wait it out."""
        if self.ownership is None or not self.partitions:
            return
        held, self.partitions = set(self.partitions), set()
        with contextlib.suppress(Exception):
            await self.ownership.release(held, self.config.instance)

    # --- reference data -------------------------------------------------------------------

    def _request_reference(self, analyzer: NeedsReference) -> None:
        for symbol, day in analyzer.wanted_reference():
            self.stats.reference_requests += 1
            task = asyncio.create_task(self._fetch_reference(analyzer, symbol, day))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _fetch_reference(self, analyzer: NeedsReference, symbol: str, day: date) -> None:
        assert self.reference is not None
        for attempt in range(max(1, self.config.reference_attempts)):
            if attempt:
                await asyncio.sleep(self.config.reference_retry_seconds)
            async with self._semaphore:
                data = await self.reference.get(symbol, day)
            if not attempt and self.reference.unknown(symbol, day):
                # Not dropped: a first-day listing has no history either (see design.md).
                self.stats.unknown_symbols += 1
            analyzer.provide_reference(data)
            if data.prev_day is not None or self._stopping.is_set():
                break
        if self.reference.has_profiles and not self._stopping.is_set():
            # The time-of-day volume profile is the slow part: asked for after the rest, so a
            # row never waits for it; rows carry rvol_tod from the symbol's next bar.
            async with self._semaphore:
                profile = await self.reference.volume_profile(symbol, day)
            if profile is not None:
                analyzer.provide_reference(replace(data, volume_profile=profile))

    # --- flushing -------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        """Flush as soon as events wait, paced from the start of the previous flush.

        Nothing waits for a timer when events arrive after a quiet spell: they are written
        one interval after the previous flush started at the latest, the interval following
        that flush's cost (:class:`FlushPacing`). A flush that took longer than the
        interval is followed at once by the next, and a full batch of events flushes early.
        Without events, analyzers are still collected every ``idle_flush_seconds``.
        """
        pacing = self._pacing
        interval = pacing.interval_seconds
        loop = asyncio.get_running_loop()
        last_start = loop.time()
        # The stop is checked as well as cancellation: a cancellation can be lost inside a
        # library's wait_for on Python 3.11 (the processor's stop also cancels until done).
        while not self._stopping.is_set():
            idle_left = last_start + self.config.idle_flush_seconds - loop.time()
            if idle_left > 0 and not self._pending_work.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle_left):
                        await self._pending_work.wait()
            remaining = last_start + interval - loop.time()
            if remaining > 0 and not self._flush_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._flush_now.wait()
            if self._stopping.is_set():
                return  # the run's final flush takes what is pending
            self._flush_now.clear()
            last_start = loop.time()
            carrier, self._pending_trace = self._pending_trace or {}, None
            flushed = False
            try:
                with attached_context(carrier):  # the flush joins its first batch's trace
                    await self.flush()
                flushed = True
            except _Stopped:
                return
            except Exception:
                # A bug must not stop flushing for good (nothing would be acked again).
                self.stats.write_errors += 1
                _log.exception("flush_failed")
            now = loop.time()
            self._paced_saturated = saturated = pacing.saturates and self._saturated(now)
            if saturated and flushed:
                self.stats.saturated_flushes += 1
            interval = pacing.next_interval(now - last_start, saturated=saturated)

    async def _compose_forever(self) -> None:
        """Compose boards and read merged state back on their own cadence, off the flush path.

        Compositions read MDC as every replica left it; they never hold up a flush, its acks
        or the events waiting behind it.
        """
        intervals = [
            analyzer.sync_interval_ns
            for analyzer in self.analyzers
            if isinstance(analyzer, Synchronized)
        ]
        if self.composition is not None:
            intervals += [a.compose_interval_ns for _, a in self.composition.composers]
        if not intervals:
            return
        tick_seconds = min(0.25, max(0.005, min(intervals) / _NS_PER_SECOND / 4))
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick_seconds):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            now_ns = self.clock.now_ns()
            composing = self.composition is not None and self.composition.due(now_ns)
            if not (composing or self._sync_due(now_ns)):
                continue
            try:
                await self.compose_now()
            except _Stopped:
                return
            except Exception:
                self.stats.write_errors += 1
                _log.exception("compose_failed")

    async def compose_now(self) -> None:
        """Synchronise and compose (when composing here) whatever is due now."""
        async with self._compose_lock:
            now_ns = self.clock.now_ns()
            await self._sync(now_ns)
            if self.composition is not None:
                await self.composition.compose(now_ns)
        async with self._progress:
            self._progress.notify_all()

    @traced("processor.flush", component="processor")
    async def flush(self) -> None:
        """Collect, write state (retrying until it lands), publish what MDC stored, then ack."""
        async with self._flush_lock:
            now_ns = self.clock.now_ns()
            ops: list[StateOp] = []
            writes: list[WidgetWrite] = []
            for analyzer in self.analyzers:
                try:
                    output = analyzer.collect(now_ns)
                    # Checked here, so a stray object is this analyzer's error (its output
                    # of this flush is dropped and counted), not the whole state write's.
                    ops.extend(checked_ops(output.state))
                except Exception:
                    self.stats.analyzer_errors[analyzer.name] += 1
                    _log.exception("collect_failed", analyzer=analyzer.name)
                    continue
                writes.extend(valid_writes(analyzer.name, output.widgets, self.stats))
            for minutes in self._closing_minutes:
                self.stats.minutes_closed.update(minutes.take_closed_minutes())
            marks, self._pending_marks = self._pending_marks, []
            batches, self._pending_batches = self._pending_batches, []
            lags, self._pending_lag = self._pending_lag, []
            flushed_events, self._pending_events = self._pending_events, 0
            self._pending_work.clear()
            self._taken.set()
            applied = Applied()
            if ops or marks:
                applied = await self._retry_state(ops, marks)
            self._hand_back(applied)
            # Rows MDC stored are published only now, versioned by MDC: a record never goes
            # back, whichever replica stored last. They follow the analyzers' versioned
            # documents (the writer keeps those first, in order, and the minute bars last):
            # the scanner's halt alerts need a resume's LULD record before the quote record
            # that carries its reopening print.
            stored = published(applied.accepted)
            self.stats.bad_writes += len(applied.accepted) - len(stored)
            writes.extend(stored)
            if writes:
                await self._retry(lambda: self.widgets.write(writes))
            try:
                await ack_all(batches)
            except Exception as exc:
                _log.warning("ack_failed", error=repr(exc))
            self._account(ops, writes, lags, flushed_events)
            self.stats.flush_time.add(max(0, self.clock.now_ns() - now_ns) / _NS_PER_SECOND)
        async with self._progress:
            self._progress.notify_all()

    async def _retry_state(self, ops: list[StateOp], marks: list[str]) -> Applied:
        """Write ``ops`` and ``marks`` to MDC (retrying like :meth:`_retry`); what it applied."""
        result = Applied()

        async def write() -> None:
            nonlocal result
            result = await self.state.apply(ops, marks=marks)

        await self._retry(write)
        return result

    def _hand_back(self, applied: Applied) -> None:
        """Give every analyzer that merges rows the refusals (it hydrates from them)."""
        if not applied.refused:
            return
        self.stats.hydrations += len(applied.refused)
        for analyzer in self.analyzers:
            if isinstance(analyzer, Hydrating):
                try:
                    analyzer.refused(applied.refused)
                except Exception:
                    self.stats.analyzer_errors[analyzer.name] += 1
                    _log.exception("hydrate_failed", analyzer=analyzer.name)

    async def wait_until(self, predicate: Callable[[ProcessorStats], bool]) -> None:
        """Return once ``predicate(stats)`` holds after a flush (tests, benchmarks, the demo).

        Callers bound the wait themselves (``asyncio.timeout``).
        """
        async with self._progress:
            await self._progress.wait_for(lambda: predicate(self.stats))

    def _account(
        self,
        ops: list[StateOp],
        writes: list[WidgetWrite],
        lags: list[tuple[int, int]],
        events: int,
    ) -> None:
        stats = self.stats
        stats.flushes += 1
        stats.flush_state_ops += len(ops)
        stats.flush_widget_writes += len(writes)
        stats.last_flush_events = events
        stats.flushed_events += events
        done_ns = self.clock.now_ns()
        for received_ns, event_ms in lags:
            stats.lag_receipt.add((done_ns - received_ns) / _NS_PER_SECOND)
            stats.lag_event.add((done_ns - event_ms * _NS_PER_MS) / _NS_PER_SECOND)

    async def _retry(self, write: Callable[[], Awaitable[object]]) -> None:
        """Run ``write`` until it lands; only connection trouble is retried.

        Connection trouble includes a Redis Cluster failing over (``is_transient``): the slots
        of a lost master answer again once its replica is promoted. An error *reply* (a bug,
        or a value Redis refuses) would fail forever, so it is counted and the write
        abandoned: the stream goes on.
        """
        backoff = self._backoff()
        while True:
            try:
                await write()
            except (RedisError, RedisClusterException) as exc:
                if not is_transient(exc):
                    self.stats.write_errors += 1
                    _log.exception("write_rejected")
                    return
                await self._pause(exc, backoff.wait())
            except (OSError, TimeoutError) as exc:
                await self._pause(exc, backoff.wait())
            except Exception:
                # Not a connection problem: a bug, or a value the sink refuses. Retrying would
                # fail forever, so it is counted and abandoned like an error reply.
                self.stats.write_errors += 1
                _log.exception("write_failed_unexpectedly")
                return
            else:
                self._writable.set()
                return

    async def _pause(self, exc: BaseException, delay: float) -> None:
        """A write failed for want of a connection: pause consumption, wait, then retry."""
        self.stats.write_failures += 1
        self._writable.clear()
        _log.warning("write_failed", error=repr(exc), retry_in=round(delay, 3))
        async with self._progress:
            self._progress.notify_all()
        if self._stopping.is_set():
            raise _Stopped from exc
        await asyncio.sleep(delay)

    def _sync_due(self, now_ns: int) -> bool:
        return any(
            isinstance(analyzer, Synchronized) and now_ns >= self._next_sync.get(id(analyzer), 0)
            for analyzer in self.analyzers
        )

    async def _sync(self, now_ns: int) -> None:
        """Every replica: fold merged state other replicas wrote into the analyzers."""
        for analyzer in self.analyzers:
            if not isinstance(analyzer, Synchronized):
                continue
            if now_ns < self._next_sync.get(id(analyzer), 0):
                continue
            self._next_sync[id(analyzer)] = now_ns + analyzer.sync_interval_ns
            try:
                answers = await self.state.top(analyzer.sync_reads(now_ns))
                analyzer.sync(now_ns, answers)
                self.stats.synchronisations += 1
            except Exception as exc:
                self.stats.write_failures += 1
                _log.warning("sync_failed", analyzer=analyzer.name, error=repr(exc))
