"""The news processor's metric families (see :mod:`mdp_runtime.metrics`)."""

from __future__ import annotations

from mdp_runtime.metrics import Family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    Family("articles_received", "counter", "Articles received from the news queue.",
           "counters.articles_in"),
    Family("articles_bad", "counter", "Articles skipped as malformed, by kind.",
           "counters.articles_bad", ("kind",)),
    Family("feed_writes", "counter", "News feed writes sent to the widget cache.",
           "counters.feed_writes"),
    Family("redis_errors", "counter", "Widget cache writes that failed (retried).",
           "counters.redis_errors"),
    Family("receipt_to_write_seconds", "histogram",
           "Seconds from the listener's receipt of an article to its feed write.",
           "latencies.receipt_to_write"),
)  # fmt: skip
