"""When ``mdp bench`` may compare: the pipeline has provably caught up, not merely gone quiet.

A pause in the counters proves nothing at 10,000 symbols: a worker may be writing one large
flush, reference data may still be on its way (each arrival rewrites a row), the scanner may
hold quote records not folded yet. So the drain waits for accounts that close:

1. **Listener**: it read every event the simulator offered and published or counted each one.
2. **Processor**: every event the listener published was applied, dropped as stale or counted
   as bad; every applied event was flushed; no reference lookup is in flight; then a few more
   flushes pass with the accounts unchanged (a row changed by the last lookup is written by
   the flush after it).
3. **Scanner**: a barrier published after all that on a quote channel nobody else uses is
   seen (it is rejected as unreadable, and counted), and every message before it was written:
   Redis delivers one subscriber's messages in publish order.

Pure functions over the components' flattened ``/status`` figures; unit tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from mdp_cache.keys import FEED_QUOTE
from mdp_platform.bench.report import pick, sum_matching

__all__ = [
    "BARRIER_CHANNEL",
    "BARRIER_REJECTION",
    "flushes",
    "listener_waiting",
    "processor_waiting",
    "scanner_waiting",
    "settled",
]

#: A quote channel no simulated symbol uses: the scanner's drain barrier.
BARRIER_CHANNEL: Final = FEED_QUOTE.name(symbol="ZZBENCHDRAIN")
#: The scanner counter the barrier moves (the range analyzer cannot read it as a quote record).
BARRIER_REJECTION: Final = "rejected_total.reason=daily_range:invalid_json"


def listener_waiting(listener: Mapping[str, float], offered: int) -> str | None:
    """Why the listener is not done with ``offered`` events (None: it is)."""
    read = pick(listener, "counters.events_in.total") or 0.0
    if read < offered:
        return f"listener read {read:,.0f} of {offered:,} offered events"
    published = sum_matching(listener, "queue.published_events")
    dropped = sum_matching(listener, "queue.dropped_events")
    pending = pick(listener, "upstream.pending_events") or 0.0
    if published + dropped < read or pending:
        return f"listener published {published + dropped:,.0f} of {read:,.0f} events read"
    return None


def _applied(processor: Mapping[str, float]) -> float:
    return sum(value for key, value in processor.items() if key.startswith("events_"))


def processor_waiting(
    processor: Mapping[str, float], published: float, expired: float = 0.0
) -> str | None:
    """Why the processor has not caught up with ``published`` events (None: it has).

    ``expired``: events of batches the broker dropped unread (past the TTL) and the bench
    read back from their dead-letter queue; they never reach a processor.
    """
    applied = _applied(processor)
    accounted = (
        applied
        + (pick(processor, "stale_dropped") or 0.0)
        + (pick(processor, "bad_events") or 0.0)
        + expired
    )
    if accounted < published:
        return f"processor accounted for {accounted:,.0f} of {published:,.0f} published events"
    flushed = pick(processor, "flushed_events") or 0.0
    if flushed < applied or pick(processor, "last_flush_events"):
        return f"processor flushed {flushed:,.0f} of {applied:,.0f} applied events"
    lookups = pick(processor, "reference_pending") or 0.0
    if lookups:
        return f"processor waits for {lookups:,.0f} reference lookups"
    return None


def settled(
    listener: Mapping[str, float], processor: Mapping[str, float], expired: float = 0.0
) -> float | None:
    """Events the pipeline is done with, by the drain's accounts: None when unknown.

    Flushed by the processors (not merely consumed: a saturated worker at 10,000 symbols holds
    seconds of consumed events not yet written), dropped by them as stale or bad, expired
    unread by the broker, or dropped by the listener. The closed-loop saturation keeps the
    simulator's offer a bounded backlog ahead of this. None when the processors' figures are
    missing (``/status`` unreachable): zero would read as a backlog of everything offered.
    """
    flushed = pick(processor, "flushed_events")
    if flushed is None:
        return None
    return (
        flushed
        + (pick(processor, "stale_dropped") or 0.0)
        + (pick(processor, "bad_events") or 0.0)
        + expired
        + sum_matching(listener, "queue.dropped_events")
    )


def flushes(processor: Mapping[str, float]) -> float:
    """Flushes completed over every worker."""
    return pick(processor, "flushes") or 0.0


def scanner_waiting(scanner: Mapping[str, float], barriers_before: float) -> str | None:
    """Why the scanner has not processed everything up to the barrier (None: it has)."""
    if (pick(scanner, BARRIER_REJECTION) or 0.0) <= barriers_before:
        return "scanner has not seen the drain barrier"
    messages = pick(scanner, "messages_total") or 0.0
    processed = pick(scanner, "processed_total") or 0.0
    if processed < messages:
        return f"scanner wrote {processed:,.0f} of {messages:,.0f} quote records"
    return None
