"""The WDS's own figures: counters, gauges and the delivery-lag histogram.

Kept in plain Python (no client library on the hot path), exposed through a ``prometheus_client``
collector on ``/metrics`` and as JSON on ``/status``. Every rejected or closed connection is
counted under a reason, so a dashboard can tell an attack (bad tokens, floods) from slow networks.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["FANOUT_BUCKETS_SECONDS", "LAG_BUCKETS_SECONDS", "LagHistogram", "WdsStats"]

LAG_BUCKETS_SECONDS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FANOUT_BUCKETS_SECONDS: Final = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1)
"""Fan-out of one message to its subscribers' queues: microseconds, unless thousands follow it."""


@dataclass(slots=True)
class LagHistogram:
    """Cumulative histogram of delivery lag (event time in the payload to socket write)."""

    bounds: tuple[float, ...] = LAG_BUCKETS_SECONDS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        """Record one delivery."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1


@dataclass(slots=True)
class WdsStats:
    """Counters of one WDS process (a single event loop, so no locking)."""

    clients: int = 0
    client_subscriptions: int = 0
    redis_subscriptions: int = 0
    redis_connected: bool = False
    messages_in: int = 0
    messages_out: int = 0
    snapshots_out: int = 0
    redis_reconnects: int = 0
    bad_payloads: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    lag: LagHistogram = field(default_factory=LagHistogram)
    fanout: LagHistogram = field(default_factory=lambda: LagHistogram(FANOUT_BUCKETS_SECONDS))

    def as_dict(self) -> dict[str, object]:
        """The figures as JSON-ready values (for ``/status``)."""
        return {
            "clients": self.clients,
            "client_subscriptions": self.client_subscriptions,
            "redis_subscriptions": self.redis_subscriptions,
            "redis_connected": self.redis_connected,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "snapshots_out": self.snapshots_out,
            "redis_reconnects": self.redis_reconnects,
            "bad_payloads": self.bad_payloads,
            "drops": dict(self.drops),
            "disconnects": dict(self.disconnects),
            "violations": dict(self.violations),
            "delivery_lag": {"count": self.lag.count, "sum_seconds": round(self.lag.total, 6)},
        }

    def prometheus(self) -> bytes:
        """The figures in the Prometheus text exposition format (through ``prometheus_client``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_WdsCollector(self))
        return generate_latest(registry)


_COUNTERS: Final = (
    ("redis_messages", "messages_in", "Messages received from Redis pub/sub."),
    ("messages_out", "messages_out", "Feed messages written to client sockets."),
    ("snapshots", "snapshots_out", "Snapshot messages sent."),
    ("redis_reconnects", "redis_reconnects", "Times the Redis pub/sub link was re-established."),
    ("bad_payloads", "bad_payloads", "Published or stored payloads that were not JSON, skipped."),
)
_BY_REASON: Final = (
    ("drops", "drops", "Messages dropped for a client, by reason."),
    ("disconnects", "disconnects", "Closed or refused connections, by reason."),
    ("violations", "violations", "Security and protocol violations, by reason."),
)


class _WdsCollector(Collector):
    """Typed families read from :class:`WdsStats` at scrape time."""

    def __init__(self, stats: WdsStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        stats = self._stats
        for name, value, help_text in (
            ("clients", stats.clients, "Open client websockets."),
            ("subscriptions", stats.client_subscriptions, "Feed subscriptions held by clients."),
            (
                "redis_subscriptions",
                stats.redis_subscriptions,
                "Channels and patterns subscribed on the Redis link.",
            ),
            ("redis_connected", int(stats.redis_connected), "1 when the Redis pub/sub link is up."),
        ):
            yield GaugeMetricFamily(f"mdp_wds_{name}", help_text, value=value)
        for name, attribute, help_text in _COUNTERS:
            yield CounterMetricFamily(f"mdp_wds_{name}", help_text, value=getattr(stats, attribute))
        for name, attribute, help_text in _BY_REASON:
            family = CounterMetricFamily(f"mdp_wds_{name}", help_text, labels=("reason",))
            for reason, count in sorted(getattr(stats, attribute).items()):
                family.add_metric([reason], count)
            yield family
        yield _histogram(
            "mdp_wds_delivery_lag_seconds", "Payload event time to socket write.", stats.lag
        )
        yield _histogram(
            "mdp_wds_fanout_seconds",
            "Seconds to hand one published message to every subscribed client's queue.",
            stats.fanout,
        )


def _histogram(name: str, help_text: str, histogram: LagHistogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text)
    cumulative = itertools.accumulate(histogram.counts)
    buckets = [
        (repr(bound), float(n)) for bound, n in zip(histogram.bounds, cumulative, strict=False)
    ]
    buckets.append(("+Inf", float(histogram.count)))
    family.add_metric([], buckets, histogram.total)
    return family
