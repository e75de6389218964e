"""The listener's metric families: what ``/metrics`` exposes, typed and described.

Read from :meth:`mdp_listener.listener.MassiveListener.metrics_snapshot` at scrape time (see
:mod:`mdp_runtime.metrics`); the metrics reference in the docs is generated from this list.
"""

from __future__ import annotations

from mdp_runtime.metrics import Family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    Family("events_received", "counter", "Events received from the provider, by event type.",
           "counters.events_in", ("ev",)),
    Family("events_unknown", "counter", "Events dropped because no queue takes their type.",
           "counters.events_unknown", ("ev",)),
    Family("malformed_elements", "counter", "Frame elements skipped as malformed, by kind.",
           "counters.malformed", ("kind",)),
    Family("provider_statuses", "counter", "Status messages from the provider, by status.",
           "counters.statuses", ("status",)),
    Family("reconnects", "counter",
           "Upstream reconnects by outcome (closed, error, kicked, stale).",
           "counters.reconnects", ("reason",)),
    Family("kicks", "counter",
           "max_connections kicks: another process uses the provider key.", "counters.kicks"),
    Family("stale_reconnects", "counter",
           "Reconnects forced by the watchdog after a silent session.", "counters.stale"),
    Family("frames", "counter", "Websocket frames received.", "counters.frames"),
    Family("frame_bytes", "counter", "Websocket payload bytes received.",
           "counters.frame_bytes"),
    Family("batches", "counter", "Queue messages (batches of events) built.",
           "counters.batches"),
    Family("published_messages", "counter", "Messages handed to the broker, by event type.",
           "queue.published_messages", ("ev",)),
    Family("published_events", "counter", "Events handed to the broker, by event type.",
           "queue.published_events", ("ev",)),
    Family("dropped_messages", "counter",
           "Messages lost before the broker, by reason (outbox_full, broker_down, expired, "
           "publish_failed, unroutable, closed).", "queue.dropped_messages", ("reason",)),
    Family("dropped_events", "counter", "Events lost before the broker, by reason.",
           "queue.dropped_events", ("reason",)),
    Family("broker_reconnects", "counter", "Times the broker link was re-established.",
           "queue.broker_reconnects"),
    Family("broker_connected", "gauge", "1 while batches reach the broker.",
           "queue.broker_connected"),
    Family("streaming", "gauge", "1 while connected to the provider and streaming.",
           "upstream.streaming"),
    Family("pending_events", "gauge", "Events waiting in the batcher for their batch.",
           "upstream.pending_events"),
    Family("lag_seconds", "histogram",
           "Seconds from the newest event's time to its batch being queued.", "latencies.lag"),
    Family("frame_size_bytes", "histogram", "Sizes of the websocket frames received.",
           "latencies.frame_size"),
)  # fmt: skip
