"""The processor's metric families (see :mod:`mdp_runtime.metrics`).

The parent process serves them from the sum of its workers' reports
(:func:`mdp_processor.__main__.metrics_of`): counters and histogram buckets add up over the
workers, the way ``prometheus_client``'s multiprocess mode sums per-process files, and the
gauges count workers.
"""

from __future__ import annotations

from mdp_runtime.metrics import Family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    Family("messages", "counter", "Queue messages applied.", "messages"),
    Family("events_applied", "counter", "Events applied, by event type.", "events_*", ("ev",)),
    Family("duplicates", "counter", "Messages skipped because their batch was applied before.",
           "duplicates"),
    Family("redelivered_events", "counter",
           "Events of redelivered messages applied: no replica had marked their batch applied "
           "yet (a consumer that lost its channel may write its copy too; merges are "
           "idempotent).", "redelivered_events"),
    Family("stale_dropped", "counter",
           "Events dropped at the consumer gate: older than the freshness limit.",
           "stale_dropped"),
    Family("poison_dropped", "counter",
           "Messages dropped at the consumer gate: unreadable envelope.", "poison_dropped"),
    Family("consumers_lost", "counter",
           "Queue consumers the broker stopped delivering to and nothing restored; each is "
           "consumed again.", "consumers_lost"),
    Family("poison", "counter", "Messages whose event batch could not be decoded.", "poison"),
    Family("bad_events", "counter", "Events skipped inside good messages, by kind.",
           "bad_events_*", ("kind",)),
    Family("analyzer_errors", "counter", "Exceptions raised by analyzers, by analyzer.",
           "analyzer_errors_*", ("analyzer",)),
    Family("minutes_closed", "counter",
           "Minute bars of seconds left behind, by how far their seconds were verified to run "
           "from the minute's start (verified, gapped, unverified).",
           "minutes_closed_*", ("run",)),
    Family("flushes", "counter", "Flushes completed.", "flushes"),
    Family("saturated_flushes", "counter",
           "Flushes paced for saturation: a consumer had not waited for a batch for "
           "MDP_SATURATION_SECONDS, so the next may come up to "
           "MDP_FLUSH_SATURATED_MAX_INTERVAL_SECONDS later.", "saturated_flushes"),
    Family("flush_state_ops", "counter", "State operations written to the internal cache.",
           "flush_state_ops"),
    Family("flush_widget_writes", "counter", "Widget writes sent to the widget cache.",
           "flush_widget_writes"),
    Family("write_failures", "counter", "Flushes and compositions that failed; retried.",
           "write_failures"),
    Family("write_errors", "counter", "Writes Redis refused with an error; abandoned.",
           "write_errors"),
    Family("bad_writes", "counter", "Widget writes dropped: name not of their feed.",
           "bad_writes"),
    Family("compositions", "counter",
           "Board compositions published (this replica held the analyzer's lease).",
           "compositions"),
    Family("synchronisations", "counter", "Merged state read back into the analyzers.",
           "synchronisations"),
    Family("hydrations", "counter",
           "Rows MDC refused (figures missing or a newer row stored); folded in and offered again.",
           "hydrations"),
    Family("reference_requests", "counter", "Reference data lookups started.",
           "reference_requests"),
    Family("partitions_owned", "gauge", "MDQ partitions the workers consume now.",
           "partitions_owned"),
    Family("partition_handovers", "counter",
           "Partitions given to another processor after their last events were written.",
           "handovers"),
    Family("partition_leases_lost", "counter",
           "Partitions no longer consumed because their lease ran out (store unreachable).",
           "leases_lost"),
    Family("ownership_failures", "counter",
           "Partition ownership rounds that failed (store unreachable).", "ownership_failures"),
    Family("control_changes", "counter",
           "Runtime state changes ordered by the control plane, by new state (paused, running).",
           "control_changes_*", ("state",)),
    Family("workers_paused", "gauge", "Workers whose consumption is paused by the control plane.",
           "paused"),
    Family("unknown_symbols", "counter",
           "Symbols the reference source knows nothing of (no previous day, no float); "
           "processed all the same: a first-day listing looks the same.", "unknown_symbols"),
    Family("reference_pending", "gauge",
           "Reference lookups not finished yet (their rows are written once they are).",
           "reference_pending"),
    Family("reference_bulk_errors", "counter",
           "Bulk reference loads that failed (the symbols fall back to their own lookups).",
           "reference_bulk_errors"),
    Family("reference_errors", "counter",
           "Reference lookups that failed (retried after a pause).", "reference_errors"),
    Family("reference_fetches", "counter",
           "Reference requests sent for one symbol (misses of the bulk load and of MDC).",
           "reference_fetches"),
    Family("reference_bulk_symbols", "counter",
           "Symbols whose reference data a bulk load wrote to MDC.", "reference_bulk_symbols"),
    Family("worker_restarts", "counter", "Worker processes restarted since the parent started.",
           "worker_restarts"),
    Family("workers", "gauge", "Worker processes configured.", "workers"),
    Family("workers_alive", "gauge", "Worker processes running.", "workers_alive"),
    Family("workers_ready", "gauge",
           "Workers with the broker connected and Redis writable.", "workers_ready"),
    Family("event_to_write_seconds", "histogram",
           "Seconds from an event's time to the Redis write that carried it.",
           "hist_lag_event"),
    Family("receipt_to_write_seconds", "histogram",
           "Seconds from the listener's receipt of a batch to the Redis write.",
           "hist_lag_receipt"),
    Family("queue_wait_seconds", "histogram",
           "Seconds from the listener's receipt of a batch to the processor applying it.",
           "hist_queue_wait"),
    Family("flush_seconds", "histogram",
           "Seconds one flush took: collect, write, publish and ack.", "hist_flush"),
)  # fmt: skip
