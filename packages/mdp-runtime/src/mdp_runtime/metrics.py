"""Typed Prometheus families from a service's metrics snapshot, through ``prometheus_client``.

Services keep their figures as a plain nested mapping (the one ``/status`` returns as JSON and
heartbeats carry), so the hot paths stay free of client-library calls and the processor's
workers can report plain numbers to their parent. What Prometheus needs on top of the figures
(the type, the HELP text, which part of a key is a label) is declared once per service as a
catalogue of :class:`Family` entries; :class:`SnapshotCollector` turns the snapshot into those
families at scrape time and ``prometheus_client`` writes the exposition. The catalogues are also
the source of the generated metrics reference (``docs/reference/metrics.md``).

How a family finds its samples (``path`` is dotted, into the snapshot):

- a number at ``path`` is the one sample (``bool`` counts as 0/1; a missing value is 0, so a
  documented family is always present), or the ``total`` of a counter's mapping;
- with ``labels``, the node at ``path`` is a mapping: a key ``k=v`` (or ``k=v,k2=v2``) gives
  those labels, any other key is the value of the single label; the key ``total`` is skipped;
- a path whose last part ends in ``*`` (``events_*``) takes every key of the parent mapping
  with that prefix, the rest of the key being the value of the single label;
- a histogram's node holds ``buckets`` (``{upper bound: cumulative count}``), ``sum`` and
  ``count`` (:meth:`mdp_core.telemetry.LatencySummary.as_dict`), or the parent mapping holds the
  same figures flat, as :func:`flat_histogram` writes them (the processor's workers report
  flat numbers, and their parent sums them key by key).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "SnapshotCollector",
    "exposition",
    "flat_histogram",
    "metric_prefix",
    "service_registry",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of the Prometheus text format that :func:`exposition` writes."""

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Family:
    """One documented metric family and where its samples are in the snapshot.

    Attributes:
        name: the name under the service prefix, without ``_total`` (added to counters):
            ``events_received`` becomes ``mdp_listener_events_received_total``.
        kind: ``counter`` (cumulative since the process started), ``gauge`` or ``histogram``.
        help: the HELP text: what one unit is and when it moves.
        path: where the figures are in the snapshot (see the module docstring).
        labels: the label names, for a mapping of figures.
    """

    name: str
    kind: Kind
    help: str
    path: str
    labels: tuple[str, ...] = ()

    def full_name(self, prefix: str) -> str:
        """The exposed family name (``_total`` included for counters)."""
        base = f"{prefix}_{self.name}"
        return base + "_total" if self.kind == "counter" else base


def metric_prefix(service: str) -> str:
    """Return ``mdp_<service>`` with the service name sanitized.

    A leading ``mdp-``/``mdp_`` is dropped, so ``mdp-listener`` and ``listener`` both give
    ``mdp_listener``.
    """
    bare = re.sub(r"^mdp[-_]", "", service)
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", bare).strip("_")
    return "mdp_" + cleaned if cleaned else "mdp"


def flat_histogram(
    name: str, bounds: Sequence[float], cumulative: Sequence[int], total: float, count: int
) -> dict[str, float]:
    """A histogram as flat numbers (``<name>_bucket_<bound>``, ``_sum``, ``_count``).

    Every figure is a plain sum over processes, so a parent adds its workers' reports key by
    key and the result is the histogram of all of them.
    """
    flat: dict[str, float] = {
        f"{name}_bucket_{bound!r}": n for bound, n in zip(bounds, cumulative, strict=True)
    }
    flat[f"{name}_sum"] = total
    flat[f"{name}_count"] = count
    return flat


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _node(snapshot: Mapping[str, object], parts: Sequence[str]) -> object:
    node: object = snapshot
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _labelled(node: object, labels: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    if not isinstance(node, Mapping):
        return
    for key, raw in node.items():
        value = _number(raw)
        text = str(key)
        if value is None or text == "total":
            continue
        if "=" in text:
            pairs = dict(part.partition("=")[::2] for part in text.split(","))
            yield tuple(pairs.get(label, "") for label in labels), value
        else:
            yield (text, *("" for _ in labels[1:])), value


def _samples(
    family: Family, snapshot: Mapping[str, object]
) -> Iterator[tuple[tuple[str, ...], float]]:
    parts = family.path.split(".")
    if parts[-1].endswith("*"):
        stem = parts[-1][:-1]
        parent = _node(snapshot, parts[:-1])
        if isinstance(parent, Mapping):
            for key, raw in parent.items():
                value = _number(raw)
                if value is not None and str(key).startswith(stem):
                    yield (str(key)[len(stem) :],), value
        return
    node = _node(snapshot, parts)
    if family.labels:
        yield from _labelled(node, family.labels)
        return
    if isinstance(node, Mapping):  # a counter's snapshot: {"total": n, "k=v": n, ...}
        node = node.get("total")
    value = _number(node)
    yield (), 0.0 if value is None else value


def _bound(text: str) -> float | None:
    try:
        bound = float(text)
    except ValueError:
        return None
    return bound if math.isfinite(bound) else None


def _histogram(
    family: Family, snapshot: Mapping[str, object]
) -> tuple[list[tuple[str, float]], float]:
    """``([(le, cumulative)...], sum)`` with the ``+Inf`` bucket, from either form."""
    parts = family.path.split(".")
    node = _node(snapshot, parts)
    cumulative: list[tuple[float, float]] = []
    if isinstance(node, Mapping):
        buckets = node.get("buckets")
        if isinstance(buckets, Mapping):
            for key, raw in buckets.items():
                bound, value = _bound(str(key)), _number(raw)
                if bound is not None and value is not None:
                    cumulative.append((bound, value))
        total, count = _number(node.get("sum")) or 0.0, _number(node.get("count")) or 0.0
    else:
        parent = _node(snapshot, parts[:-1])
        flat = parent if isinstance(parent, Mapping) else {}
        stem = f"{parts[-1]}_bucket_"
        for key, raw in flat.items():
            if str(key).startswith(stem):
                bound, value = _bound(str(key)[len(stem) :]), _number(raw)
                if bound is not None and value is not None:
                    cumulative.append((bound, value))
        total = _number(flat.get(f"{parts[-1]}_sum")) or 0.0
        count = _number(flat.get(f"{parts[-1]}_count")) or 0.0
    cumulative.sort()
    rows = [(repr(bound), value) for bound, value in cumulative]
    rows.append(("+Inf", max(count, cumulative[-1][1] if cumulative else 0.0)))
    return rows, total


class SnapshotCollector(Collector):
    """A ``prometheus_client`` collector reading a catalogue of families from a snapshot.

    Args:
        prefix: the name prefix, e.g. ``metric_prefix("listener")``.
        families: the service's catalogue.
        snapshot: returns the current figures (called once per scrape).
    """

    def __init__(
        self,
        prefix: str,
        families: Iterable[Family],
        snapshot: Callable[[], Mapping[str, object]],
    ) -> None:
        self._prefix = prefix
        self._families = tuple(families)
        self._snapshot = snapshot
        names = [family.full_name(prefix) for family in self._families]
        if len(set(names)) != len(names):
            msg = f"duplicate metric family names under {prefix}"
            raise ValueError(msg)

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not take a snapshot (it may not be ready yet)."""
        return ()

    def collect(self) -> Iterable[Metric]:
        """Every family of the catalogue, typed, from one snapshot."""
        snapshot = self._snapshot()
        for family in self._families:
            name = f"{self._prefix}_{family.name}"
            if family.kind == "histogram":
                buckets, total = _histogram(family, snapshot)
                histogram = HistogramMetricFamily(name, family.help, labels=())
                histogram.add_metric([], buckets, total)
                yield histogram
                continue
            metric: CounterMetricFamily | GaugeMetricFamily
            if family.kind == "counter":
                metric = CounterMetricFamily(name, family.help, labels=family.labels)
            else:
                metric = GaugeMetricFamily(name, family.help, labels=family.labels)
            for values, value in _samples(family, snapshot):
                metric.add_metric(list(values), value)
            yield metric


class _BuildInfo(Collector):
    def __init__(self, prefix: str, version: str) -> None:
        self._prefix = prefix
        self._version = version

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            f"{self._prefix}_build_info",
            "Always 1; the version label says which release this process runs.",
            labels=("version",),
        )
        info.add_metric([self._version], 1.0)
        yield info


def service_registry(
    service: str,
    version: str,
    families: Iterable[Family],
    snapshot: Callable[[], Mapping[str, object]],
    *extra: Collector,
) -> CollectorRegistry:
    """A registry of one service instance: its catalogue, ``build_info`` and ``extra``.

    One registry per instance (not the global one), so several services in one process (the
    demo, the tests) never collide.
    """
    prefix = metric_prefix(service)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_BuildInfo(prefix, version))
    registry.register(SnapshotCollector(prefix, families, snapshot))
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
    return generate_latest(registry)
