"""Counters and lag samples of one processor (exported as metrics and worker reports).

Everything a worker reports is a plain number that its parent sums over the workers: counters,
and each histogram's cumulative bucket counts, sum and count (:func:`flat_histogram`). Only the
``*_seconds`` percentiles are not sums; the parent keeps the worst worker's for ``/status``.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

from mdp_core.telemetry import LATENCY_BUCKETS_SECONDS
from mdp_runtime.metrics import flat_histogram

__all__ = ["LagSamples", "ProcessorStats"]

_SAMPLES: Final = 4_096


@dataclass(slots=True)
class LagSamples:
    """Recent lag measurements (seconds) for percentiles, and a histogram since start."""

    values: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_SECONDS))
    total: float = 0.0
    count: int = 0

    def add(self, seconds: float) -> None:
        """Record one measurement."""
        self.values.append(seconds)
        slot = bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)
        if slot < len(self.counts):
            self.counts[slot] += 1
        self.total += seconds
        self.count += 1

    def histogram(self, name: str) -> dict[str, float]:
        """The histogram since start as flat numbers named after ``name``."""
        cumulative = list(itertools.accumulate(self.counts))
        return flat_histogram(name, LATENCY_BUCKETS_SECONDS, cumulative, self.total, self.count)

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the recent samples, 0.0 when there are none."""
        if not self.values:
            return 0.0
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class ProcessorStats:
    """What one processor did.

    Attributes:
        messages: Queue messages applied.
        events: Events applied, by ``ev`` code.
        duplicates: Messages skipped because their batch was applied before.
        poison: Messages whose envelope could not be decoded (acked, not retried).
        bad_events: Events skipped inside good envelopes, by error kind.
        analyzer_errors: Exceptions raised by analyzers, by analyzer name.
        minutes_closed: Minute bars built from seconds and left behind, by how far their
            seconds were verified to run from the minute's start (``verified``, ``gapped``,
            ``unverified``; see :class:`mdp_analyzers.minute_bars.MinuteBook`).
        flushes: Flushes completed.
        saturated_flushes: Flushes after which the pacing allowed the saturated ceiling: a
            consumer had been handed batches for ``saturation_seconds`` without waiting.
        flush_state_ops: State operations written.
        flush_widget_writes: Widget writes sent.
        write_failures: Flush attempts that failed (Redis down; the flush is retried) and
            compositions that failed (their documents go out with the next one).
        write_errors: Writes Redis refused with an error reply; abandoned, not retried.
        compositions: Board compositions published (this replica held the lease).
        synchronisations: Merged state read back into analyzers (halts other replicas saw).
        hydrations: Rows MDC refused because this replica lacked figures or a newer row other
            replicas wrote; the analyzer folded the stored state in and offered the row again.
        bad_writes: Widget writes dropped because their name is not one of their feed's.
        partitions_owned: MDQ partitions this processor consumes now (partitioned topology).
        handovers: Partitions given to another member (after their last events were written).
        leases_lost: Partitions this processor stopped consuming because its lease ran out
            (the ownership store was unreachable, or this processor stalled).
        ownership_failures: Ownership rounds that failed (the store was unreachable).
        pauses: Times consumption was paused by the control plane.
        resumes: Times it was resumed.
        reference_requests: Reference lookups started.
        unknown_symbols: Symbols the reference source does not know at all (no previous day,
            no float): still processed (a first-day listing looks exactly like this), counted.
        lag_event: Seconds from event time to the write that carried it.
        lag_receipt: Seconds from listener receipt to the write.
        queue_wait: Seconds from listener receipt to the processor applying the batch.
        flush_time: Seconds one flush took (collect, write, publish, ack).
        last_flush_events: Events carried by the last flush.
        flushed_events: Events whose flush landed (written, then acked): unlike ``events``,
            never those a worker applied and then died before writing (they are redelivered).
        redelivered_events: Events of redelivered messages applied because no replica had
            marked their batch applied yet. Usually the batch of a consumer that died before
            its flush; but a consumer that lost only its channel (a broker stopping) flushes
            its copy too, so these may be applied twice: harmless to the figures (every
            merge is idempotent), and counted so that a loss audit can tell them apart.
    """

    messages: int = 0
    events: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    poison: int = 0
    bad_events: Counter[str] = field(default_factory=Counter)
    analyzer_errors: Counter[str] = field(default_factory=Counter)
    minutes_closed: Counter[str] = field(default_factory=Counter)
    flushes: int = 0
    saturated_flushes: int = 0
    flush_state_ops: int = 0
    flush_widget_writes: int = 0
    write_failures: int = 0
    write_errors: int = 0
    compositions: int = 0
    synchronisations: int = 0
    hydrations: int = 0
    bad_writes: int = 0
    partitions_owned: int = 0
    handovers: int = 0
    leases_lost: int = 0
    ownership_failures: int = 0
    pauses: int = 0
    resumes: int = 0
    reference_requests: int = 0
    unknown_symbols: int = 0
    last_flush_events: int = 0
    flushed_events: int = 0
    redelivered_events: int = 0
    lag_event: LagSamples = field(default_factory=LagSamples)
    lag_receipt: LagSamples = field(default_factory=LagSamples)
    queue_wait: LagSamples = field(default_factory=LagSamples)
    flush_time: LagSamples = field(default_factory=LagSamples)

    @property
    def total_events(self) -> int:
        """Events applied, all kinds."""
        return sum(self.events.values())

    def snapshot(self) -> dict[str, int | float]:
        """Flat name -> value mapping (worker reports and the metrics endpoint)."""
        flat: dict[str, int | float] = {
            "messages": self.messages,
            "events": self.total_events,
            "duplicates": self.duplicates,
            "poison": self.poison,
            "bad_events": sum(self.bad_events.values()),
            "analyzer_errors": sum(self.analyzer_errors.values()),
            "flushes": self.flushes,
            "saturated_flushes": self.saturated_flushes,
            "flush_state_ops": self.flush_state_ops,
            "flush_widget_writes": self.flush_widget_writes,
            "write_failures": self.write_failures,
            "write_errors": self.write_errors,
            "compositions": self.compositions,
            "synchronisations": self.synchronisations,
            "hydrations": self.hydrations,
            "bad_writes": self.bad_writes,
            "partitions_owned": self.partitions_owned,
            "handovers": self.handovers,
            "leases_lost": self.leases_lost,
            "ownership_failures": self.ownership_failures,
            "control_changes_paused": self.pauses,
            "control_changes_running": self.resumes,
            "reference_requests": self.reference_requests,
            "unknown_symbols": self.unknown_symbols,
            "last_flush_events": self.last_flush_events,
            "flushed_events": self.flushed_events,
            "redelivered_events": self.redelivered_events,
            "lag_event_p50_seconds": self.lag_event.percentile(0.5),
            "lag_event_p99_seconds": self.lag_event.percentile(0.99),
            "lag_receipt_p50_seconds": self.lag_receipt.percentile(0.5),
            "lag_receipt_p99_seconds": self.lag_receipt.percentile(0.99),
        }
        for kind, count in self.events.items():
            flat[f"events_{kind}"] = count
        for reason, count in self.bad_events.items():
            flat[f"bad_events_{reason}"] = count
        for name, count in self.analyzer_errors.items():
            flat[f"analyzer_errors_{name}"] = count
        for outcome, count in self.minutes_closed.items():
            flat[f"minutes_closed_{outcome}"] = count
        flat.update(self.lag_event.histogram("hist_lag_event"))
        flat.update(self.lag_receipt.histogram("hist_lag_receipt"))
        flat.update(self.queue_wait.histogram("hist_queue_wait"))
        flat.update(self.flush_time.histogram("hist_flush"))
        return flat
