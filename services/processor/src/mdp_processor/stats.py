"""Counters and lag samples of one processor (exported as metrics and worker reports)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LagSamples", "ProcessorStats"]

_SAMPLES: Final = 4_096


@dataclass(slots=True)
class LagSamples:
    """A bounded reservoir of recent lag measurements (seconds) with percentiles."""

    values: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))

    def add(self, seconds: float) -> None:
        """Record one measurement."""
        self.values.append(seconds)

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
        flushes: Flushes completed.
        flush_state_ops: State operations written.
        flush_widget_writes: Widget writes sent.
        write_failures: Flush attempts that failed (Redis down); the flush is retried.
        write_errors: Writes Redis refused with an error reply; abandoned, not retried.
        compositions: Board compositions published (this replica held the lease).
        synchronisations: Merged state read back into analyzers (halts other replicas saw).
        hydrations: Rows MDC refused because this replica lacked figures or a newer row other
            replicas wrote; the analyzer folded the stored state in and offered the row again.
        bad_writes: Widget writes dropped because their name is not one of their feed's.
        reference_requests: Reference lookups started.
        lag_event: Seconds from event time to the write that carried it.
        lag_receipt: Seconds from listener receipt to the write.
        last_flush_events: Events carried by the last flush.
        flushed_events: Events whose flush landed (written, then acked): unlike ``events``,
            never those a worker applied and then died before writing (they are redelivered).
    """

    messages: int = 0
    events: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    poison: int = 0
    bad_events: Counter[str] = field(default_factory=Counter)
    analyzer_errors: Counter[str] = field(default_factory=Counter)
    flushes: int = 0
    flush_state_ops: int = 0
    flush_widget_writes: int = 0
    write_failures: int = 0
    write_errors: int = 0
    compositions: int = 0
    synchronisations: int = 0
    hydrations: int = 0
    bad_writes: int = 0
    reference_requests: int = 0
    last_flush_events: int = 0
    flushed_events: int = 0
    lag_event: LagSamples = field(default_factory=LagSamples)
    lag_receipt: LagSamples = field(default_factory=LagSamples)

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
            "flush_state_ops": self.flush_state_ops,
            "flush_widget_writes": self.flush_widget_writes,
            "write_failures": self.write_failures,
            "write_errors": self.write_errors,
            "compositions": self.compositions,
            "synchronisations": self.synchronisations,
            "hydrations": self.hydrations,
            "bad_writes": self.bad_writes,
            "reference_requests": self.reference_requests,
            "last_flush_events": self.last_flush_events,
            "flushed_events": self.flushed_events,
            "lag_event_p50_seconds": self.lag_event.percentile(0.5),
            "lag_event_p99_seconds": self.lag_event.percentile(0.99),
            "lag_receipt_p50_seconds": self.lag_receipt.percentile(0.5),
            "lag_receipt_p99_seconds": self.lag_receipt.percentile(0.99),
        }
        for kind, count in self.events.items():
            flat[f"events_{kind}"] = count
        for reason, count in self.bad_events.items():
            flat[f"bad_events_{reason}"] = count
        return flat
