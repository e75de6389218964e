"""The control plane's metrics, through ``prometheus_client`` on a registry of its own.

The SCP is not on the data path, so it counts with the client library directly: requests by
route and status with their duration, logins by outcome, heartbeat reads, database calls and
WDS revocations that failed, refused API bodies by reason, and the
components it sees by state (what an alert on a stale component reads).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mdp_core.telemetry import LATENCY_BUCKETS_SECONDS
from mdp_runtime.metrics import Family

__all__ = ["FAMILIES", "ScpMetrics"]


class ScpMetrics:
    """Every family the SCP serves on ``/metrics`` (one registry per instance).

    Args:
        version: the release, exposed as ``mdp_scp_build_info{version}``.
    """

    def __init__(self, version: str) -> None:
        registry = CollectorRegistry(auto_describe=True)
        #: What ``/metrics`` serves: the families without their ``_created`` series.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_WithoutCreated(registry))
        self.build_info = Gauge(
            "mdp_scp_build_info",
            "Always 1; the version label says which release this process runs.",
            ("version",),
            registry=registry,
        )
        self.build_info.labels(version).set(1)
        self.requests = Counter(
            "mdp_scp_http_requests",
            "HTTP requests served, by route, method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.request_seconds = Histogram(
            "mdp_scp_http_request_seconds",
            "Seconds to serve a request, by route.",
            ("route",),
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.logins = Counter(
            "mdp_scp_logins",
            "Password logins by outcome (ok, failed, throttled, expired_form, invalid).",
            ("outcome",),
            registry=registry,
        )
        self.heartbeat_read_errors = Counter(
            "mdp_scp_heartbeat_read_errors",
            "Failed reads of the heartbeat keys (Redis trouble).",
            registry=registry,
        )
        self.database_errors = Counter(
            "mdp_scp_database_errors",
            "Requests answered 503 because the database was unavailable.",
            registry=registry,
        )
        self.revocation_errors = Counter(
            "mdp_scp_revocation_errors",
            "WDS token revocations that could not be written to the widget data cache.",
            registry=registry,
        )
        self.bad_requests = Counter(
            "mdp_scp_bad_requests",
            "API requests refused for their body or parameters, by reason.",
            ("reason",),
            registry=registry,
        )
        self.components = Gauge(
            "mdp_scp_components",
            "Component instances seen in the heartbeats, by service and state.",
            ("service", "state"),
            registry=registry,
        )
        self._component_series: set[tuple[str, str]] = set()
        self.requests_served = 0

    def saw_components(self, rows: Iterable[tuple[str, str]]) -> None:
        """Set the components gauge from ``(service, state)`` pairs; vanished pairs go to 0."""
        counts = Tally(rows)
        for series in self._component_series - set(counts):
            self.components.labels(*series).set(0)
        for series, count in counts.items():
            self.components.labels(*series).set(count)
        self._component_series |= set(counts)


class _WithoutCreated(Collector):
    """The inner registry's families minus ``_created`` samples.

    The 0.0.4 text format has no place for them, so they would appear as extra, undocumented
    gauge families; rates and increases need only the counters.
    """

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterable[Metric]:
        for metric in self._inner.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


FAMILIES: tuple[Family, ...] = (
    Family("build_info", "gauge",
           "Always 1; the version label says which release this process runs.", "", ("version",)),
    Family("http_requests", "counter", "HTTP requests served, by route, method and status.", "",
           ("route", "method", "status")),
    Family("http_request_seconds", "histogram", "Seconds to serve a request, by route.", "",
           ("route",)),
    Family("logins", "counter",
           "Password logins by outcome (ok, failed, throttled, expired_form, invalid).", "",
           ("outcome",)),
    Family("heartbeat_read_errors", "counter",
           "Failed reads of the heartbeat keys (Redis trouble).", ""),
    Family("database_errors", "counter",
           "Requests answered 503 because the database was unavailable.", ""),
    Family("revocation_errors", "counter",
           "WDS token revocations that could not be written to the widget data cache.", ""),
    Family("bad_requests", "counter",
           "API requests refused for their body or parameters, by reason.", "reason"),
    Family("components", "gauge",
           "Component instances seen in the heartbeats, by service and state.", "",
           ("service", "state")),
)  # fmt: skip
"""What :class:`ScpMetrics` serves, for the generated reference (a test keeps them equal)."""
