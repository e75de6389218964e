"""The WDS's own figures: counters, gauges and the delivery-lag histogram.

Kept in plain Python (no client library on the hot path) and rendered in the Prometheus text
format on ``/metrics`` and as JSON on ``/status``. Every rejected or closed connection is counted
under a reason, so a dashboard can tell an attack (bad tokens, floods) from slow networks.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LAG_BUCKETS_SECONDS", "LagHistogram", "WdsStats"]

LAG_BUCKETS_SECONDS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class LagHistogram:
    """Cumulative histogram of delivery lag (event time in the payload to socket write)."""

    bounds: tuple[float, ...] = LAG_BUCKETS_SECONDS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_SECONDS) + 1))
    total: float = 0.0
    count: int = 0

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

    def prometheus(self) -> str:
        """The figures in the Prometheus text exposition format."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        def labelled(counter: Counter[str], label: str) -> list[tuple[str, float]]:
            return [(f'{{{label}="{key}"}}', float(n)) for key, n in sorted(counter.items())]

        metric("mdp_wds_clients", "gauge", "Open client websockets.", [("", self.clients)])
        metric(
            "mdp_wds_subscriptions",
            "gauge",
            "Feed subscriptions held by clients.",
            [("", self.client_subscriptions)],
        )
        metric(
            "mdp_wds_redis_subscriptions",
            "gauge",
            "Channels and patterns subscribed on the Redis link.",
            [("", self.redis_subscriptions)],
        )
        metric(
            "mdp_wds_redis_connected",
            "gauge",
            "1 when the Redis pub/sub link is up.",
            [("", 1.0 if self.redis_connected else 0.0)],
        )
        metric(
            "mdp_wds_redis_messages_total",
            "counter",
            "Messages received from Redis pub/sub.",
            [("", self.messages_in)],
        )
        metric(
            "mdp_wds_messages_out_total",
            "counter",
            "Feed messages written to client sockets.",
            [("", self.messages_out)],
        )
        metric(
            "mdp_wds_snapshots_total",
            "counter",
            "Snapshot messages sent.",
            [("", self.snapshots_out)],
        )
        metric(
            "mdp_wds_redis_reconnects_total",
            "counter",
            "Times the Redis pub/sub link was re-established.",
            [("", self.redis_reconnects)],
        )
        metric(
            "mdp_wds_bad_payloads_total",
            "counter",
            "Published or stored payloads that were not JSON and were skipped.",
            [("", self.bad_payloads)],
        )
        metric(
            "mdp_wds_drops_total",
            "counter",
            "Messages dropped for a client.",
            labelled(self.drops, "reason"),
        )
        metric(
            "mdp_wds_disconnects_total",
            "counter",
            "Closed or refused connections.",
            labelled(self.disconnects, "reason"),
        )
        metric(
            "mdp_wds_violations_total",
            "counter",
            "Security and protocol violations.",
            labelled(self.violations, "reason"),
        )
        name = "mdp_wds_delivery_lag_seconds"
        lines.append(f"# HELP {name} Payload event time to socket write.")
        lines.append(f"# TYPE {name} histogram")
        running = 0
        for bound, count in zip(self.lag.bounds, self.lag.counts, strict=False):
            running += count
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.lag.count}')
        lines.append(f"{name}_sum {self.lag.total:g}")
        lines.append(f"{name}_count {self.lag.count}")
        return "\n".join(lines) + "\n"
