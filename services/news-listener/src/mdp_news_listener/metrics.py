"""The news listener's metric families (see :mod:`mdp_runtime.metrics`)."""

from __future__ import annotations

from mdp_runtime.metrics import Family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    Family("articles_received", "counter", "Articles received from Finlight.",
           "counters.articles_in"),
    Family("articles_queued", "counter", "Articles handed to the queue.",
           "counters.articles_out"),
    Family("articles_skipped", "counter", "Articles that could not be used, by reason.",
           "counters.articles_skipped", ("reason",)),
    Family("restarts", "counter", "Client restarts by reason.", "counters.restarts",
           ("reason",)),
    Family("closes", "counter", "Websocket closes by close code.", "counters.closes",
           ("code",)),
    Family("published_events", "counter", "Articles handed to the broker, by event type.",
           "queue.published_events", ("ev",)),
    Family("dropped_events", "counter", "Articles lost before the broker, by reason.",
           "queue.dropped_events", ("reason",)),
    Family("broker_reconnects", "counter", "Times the broker link was re-established.",
           "queue.broker_reconnects"),
    Family("broker_connected", "gauge", "1 while batches reach the broker.",
           "queue.broker_connected"),
    Family("streaming", "gauge", "1 while connected to Finlight and streaming.",
           "upstream.streaming"),
)  # fmt: skip
