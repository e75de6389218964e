"""The scanner's metric families (see :mod:`mdp_runtime.metrics`)."""

from __future__ import annotations

from mdp_runtime.metrics import Family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    Family("messages", "counter", "Pub/sub messages received from the widget cache.",
           "messages_total"),
    Family("processed", "counter", "Messages handed to an analyzer.", "processed_total"),
    Family("batches", "counter", "Batches of messages handled.", "batches_total"),
    Family("writes", "counter", "Widget writes sent.", "writes_total"),
    Family("alerts_deduplicated", "counter",
           "Alerts another replica had already appended (SET NX marker held).",
           "alerts_deduplicated_total"),
    Family("reconnects", "counter", "Times the pub/sub link was rebuilt.", "reconnects_total"),
    Family("rehydrations", "counter", "Times state was re-read from range snapshots.",
           "rehydrations_total"),
    Family("snapshots_read", "counter", "Range snapshots read while rehydrating.",
           "snapshots_read_total"),
    Family("caught_up", "counter",
           "Input snapshots handled after a reconnect or resume (what pub/sub could not keep).",
           "caught_up_total"),
    Family("errors", "counter", "Errors by reason.", "errors_total", ("reason",)),
    Family("rejected", "counter", "Records an analyzer rejected, by analyzer:reason.",
           "rejected_total", ("reason",)),
    Family("unwritten", "gauge", "Writes waiting for Redis to come back.", "unwritten"),
    Family("connected", "gauge", "1 while the pub/sub link is subscribed.", "connected"),
    Family("paused", "gauge", "1 while paused by the control plane.", "paused"),
    Family("control_changes", "counter",
           "Runtime state changes ordered by the control plane, by new state (paused, running).",
           "control_changes_total", ("state",)),
    Family("batch_seconds", "histogram", "Seconds to handle one batch, writes included.",
           "batch_seconds"),
)  # fmt: skip
