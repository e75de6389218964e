"""The WDS's own figures: counters, gauges and the delivery-lag histogram.

Kept in plain Python (no client library on the hot path), exposed on ``/metrics`` through the
catalogue in :mod:`mdp_wds.metrics` and as JSON on ``/status``. Every rejected or closed
connection is counted under a reason, so a dashboard can tell an attack (bad tokens, floods)
from slow networks.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from mdp_runtime.metrics import exposition, service_registry
from mdp_wds.metrics import FAMILIES

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

    def as_dict(self) -> dict[str, object]:
        """Count, sum and cumulative buckets (``{upper bound: count}``) as JSON-ready values."""
        cumulative = itertools.accumulate(self.counts)
        return {
            "count": self.count,
            "sum_seconds": round(self.total, 6),
            "sum": self.total,
            "buckets": {repr(b): n for b, n in zip(self.bounds, cumulative, strict=False)},
        }


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
    deltas_out: int = 0
    redis_reconnects: int = 0
    bad_payloads: int = 0
    revocation_errors: int = 0
    snapshot_errors: int = 0
    draining: bool = False
    control_changes: Counter[str] = field(default_factory=Counter)
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
            "deltas_out": self.deltas_out,
            "redis_reconnects": self.redis_reconnects,
            "bad_payloads": self.bad_payloads,
            "revocation_errors": self.revocation_errors,
            "snapshot_errors": self.snapshot_errors,
            "draining": self.draining,
            "control_changes": dict(self.control_changes),
            "drops": dict(self.drops),
            "disconnects": dict(self.disconnects),
            "violations": dict(self.violations),
            "delivery_lag": self.lag.as_dict(),
            "fanout": self.fanout.as_dict(),
        }

    def prometheus(self, version: str = "") -> bytes:
        """The figures in the Prometheus text format (the catalogue in :mod:`mdp_wds.metrics`)."""
        return exposition(service_registry("wds", version, FAMILIES, self.as_dict))
