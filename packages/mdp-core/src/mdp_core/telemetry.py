"""Telemetry conventions: OpenTelemetry through the API only, plus a local metrics snapshot.

Libraries call :func:`tracer` and :func:`meter` (or build a :class:`Metrics` registry) and never
install SDK pieces; without an SDK every call is a cheap no-op. A service entry point calls
:func:`configure_telemetry`, which installs the SDK with OTLP (or console) exporters only when the
optional SDK is importable and the standard ``OTEL_*`` variables ask for it.

Naming: instruments are ``mdp.<component>.<name>`` (``mdp.listener.events_in``), counters use
curly-brace units (``{event}``, ``{message}``), durations are histograms in seconds (``s``), and
attributes are short keys (``type``, ``queue``, ``feed``, ``reason``).

:class:`Metrics` records to OpenTelemetry *and* keeps an in-process snapshot, because health
endpoints and heartbeats must report key figures (events in, errors, p99 latency) even when no
exporter is configured.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import importlib
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.trace import Tracer

from mdp_core.logging import get_logger
from mdp_core.settings import otel_variables

__all__ = [
    "LATENCY_BUCKETS_SECONDS",
    "SIZE_BUCKETS_BYTES",
    "BoundCounter",
    "Counter",
    "Gauge",
    "LatencyRecorder",
    "LatencySummary",
    "Metrics",
    "attached_context",
    "configure_telemetry",
    "consumer_span",
    "extract_context",
    "inject_context",
    "meter",
    "producer_span",
    "traced",
    "tracer",
]

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Histogram buckets for latencies in seconds: sub-millisecond hot paths up to slow REST calls."""

SIZE_BUCKETS_BYTES: tuple[float, ...] = (
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
)  # fmt: skip
"""Histogram buckets for sizes in bytes (unit ``By``): a small frame up to a 4 MiB burst."""

_log = get_logger(__name__)
_state: dict[str, bool] = {"configured": False}

Attributes = Mapping[str, str | bool | int | float]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def traced(
    name: str, *, component: str
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], Callable[_P, Coroutine[Any, Any, _R]]]:
    """Wrap a coroutine function in a span named ``name``: one span per unit of work.

    Meant for batch-level work (a flush, a batch of messages), never per event: a span costs
    microseconds, an event should not. Without an SDK the span is a no-op.
    """

    def decorate(
        function: Callable[_P, Coroutine[Any, Any, _R]],
    ) -> Callable[_P, Coroutine[Any, Any, _R]]:
        span_source = tracer(f"mdp.{component}")

        @functools.wraps(function)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with span_source.start_as_current_span(name):
                return await function(*args, **kwargs)

        return wrapper

    return decorate


def tracer(name: str, version: str = "") -> Tracer:
    """The tracer for an instrumentation scope (usually the module or component name)."""
    return trace.get_tracer(name, version or None)


def meter(name: str, version: str = "") -> Meter:
    """The meter for an instrumentation scope (usually the component name)."""
    return metrics.get_meter(name, version)


# --- SDK installation ------------------------------------------------------------------------


def _wanted(variables: Mapping[str, str], signal: str) -> list[str]:
    """Exporter names requested for ``signal`` (``traces`` or ``metrics``)."""
    explicit = variables.get(f"OTEL_{signal.upper()}_EXPORTER")
    if explicit is not None:
        names = [n.strip().lower() for n in explicit.split(",") if n.strip()]
        return [n for n in names if n != "none"]
    endpoint_keys = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    return ["otlp"] if any(k in variables for k in endpoint_keys) else []


_EXPORTERS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("traces", "console", ""): ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
    ("traces", "otlp", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("traces", "otlp", "http"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("metrics", "console", ""): ("opentelemetry.sdk.metrics.export", "ConsoleMetricExporter"),
    ("metrics", "otlp", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("metrics", "otlp", "http"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
}
"""(signal, exporter name, OTLP transport) -> (module, class), imported only when chosen."""


def _build_exporter(signal: str, name: str, grpc: bool) -> Any:
    transport = ("grpc" if grpc else "http") if name == "otlp" else ""
    where = _EXPORTERS.get((signal, name, transport))
    if where is None:
        msg = f"unsupported {signal} exporter {name!r} (use otlp, console or none)"
        raise ValueError(msg)
    module_name, class_name = where
    return getattr(importlib.import_module(module_name), class_name)()


def _exporters(kind: str, names: list[str], grpc: bool) -> list[Any]:
    exporters: list[Any] = []
    for name in names:
        try:
            exporters.append(_build_exporter(kind, name, grpc))
        except ImportError as exc:
            _log.warning(
                "otel_exporter_missing",
                hint="install opentelemetry-exporter-otlp-proto-http or -grpc",
                signal=kind,
                exporter=name,
                error=str(exc),
            )
        except ValueError as exc:
            _log.warning("otel_exporter_unsupported", signal=kind, error=str(exc))
    return exporters


def _resource_attributes(
    service: str, version: str, variables: Mapping[str, str]
) -> dict[str, str]:
    """``service.name`` and ``service.version`` unless the operator set them.

    ``Resource.create`` lets explicit attributes win over ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``, so the code's defaults are only passed when the environment
    names neither.
    """
    given = {
        pair.partition("=")[0].strip()
        for pair in variables.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
        if "=" in pair
    }
    attributes: dict[str, str] = {}
    if "OTEL_SERVICE_NAME" not in variables and "service.name" not in given:
        attributes["service.name"] = service
    if "service.version" not in given:
        attributes["service.version"] = version
    return attributes


def configure_telemetry(
    service: str, version: str, environ: Mapping[str, str] | None = None
) -> bool:
    """Install the OpenTelemetry SDK for a service process, if it is present and wanted.

    The SDK is installed only when ``opentelemetry-sdk`` is importable and the environment asks
    for export: ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp``, ``console``,
    ``none``) or ``OTEL_EXPORTER_OTLP_ENDPOINT``. ``OTEL_SDK_DISABLED=true`` wins over both.
    Exporters read their own ``OTEL_EXPORTER_OTLP_*`` settings; the resource gets
    ``service.name`` and ``service.version`` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name them (the operator's value wins).
    Otherwise nothing happens and the API stays a no-op. Only the first successful call
    installs providers (OpenTelemetry's global providers can be set once).

    Args:
        service: ``service.name`` of the resource, e.g. ``mdp-listener``.
        version: ``service.version``, usually the distribution version.
        environ: the variables to consult; the process environment when omitted.

    Returns:
        True when SDK providers are installed (now or by an earlier call).
    """
    if _state["configured"]:
        return True
    variables = otel_variables(environ)
    if variables.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    traces, metric_names = _wanted(variables, "traces"), _wanted(variables, "metrics")
    if not traces and not metric_names:
        return False
    try:
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        _log.warning(
            "otel_sdk_missing",
            hint="OTel export was requested but opentelemetry-sdk is not installed",
        )
        return False

    grpc = variables.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").lower() == "grpc"
    resource = Resource.create(_resource_attributes(service, version, variables))
    installed = False
    span_exporters = _exporters("traces", traces, grpc)
    if span_exporters:
        provider = TracerProvider(resource=resource)
        for exporter in span_exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        installed = True
    metric_exporters = _exporters("metrics", metric_names, grpc)
    if metric_exporters:
        readers = [PeriodicExportingMetricReader(e) for e in metric_exporters]
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
        installed = True
    _state["configured"] = installed
    if installed:
        _log.info("otel_sdk_installed", traces=traces, metrics=metric_names)
    return installed


# --- trace context across processes and queues -----------------------------------------------


def inject_context(context: Context | None = None) -> dict[str, str]:
    """Serialize the current (or given) trace context into a carrier dict (``traceparent``...).

    Pass the result to worker processes or put it in AMQP headers; empty when no span is active.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_context(carrier: Mapping[str, str]) -> Context:
    """Rebuild a trace context from a carrier made by :func:`inject_context`."""
    return propagate.extract(dict(carrier))


@contextlib.contextmanager
def attached_context(carrier: Mapping[str, str]) -> Iterator[Context]:
    """Make the carrier's trace context current for the ``with`` block (spans become children)."""
    ctx = extract_context(carrier)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def producer_span(
    name: str, *, component: str, **attributes: str | int
) -> Iterator[dict[str, str]]:
    """A PRODUCER span around publishing one message; yields the carrier for its headers.

    The carrier is empty when tracing is off (no SDK, or not sampled), so nothing is added to
    the message then.
    """
    with tracer(f"mdp.{component}").start_as_current_span(
        name, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        yield inject_context()


@contextlib.contextmanager
def consumer_span(
    name: str, *, component: str, carrier: Mapping[str, str], **attributes: str | int
) -> Iterator[None]:
    """A CONSUMER span around handling one message, child of its producer's span.

    ``carrier`` holds the message headers; without a trace context in them the span starts a
    new trace. One span per message (a batch of events), never per event.
    """
    parent = extract_context(carrier) if carrier else None
    with tracer(f"mdp.{component}").start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ):
        yield


# --- metrics registry ------------------------------------------------------------------------


def _attr_key(attrs: Attributes) -> str:
    return ",".join(f"{k}={attrs[k]}" for k in sorted(attrs))


class BoundCounter:
    """A counter handle with a fixed attribute set: the cheap hot-path form of :class:`Counter`."""

    __slots__ = ("_add", "_attrs", "_cell", "_parent")

    def __init__(self, parent: Counter, attrs: Attributes) -> None:
        self._parent = parent
        self._attrs = dict(attrs)
        self._add = parent.instrument.add
        self._cell = parent._cell(_attr_key(attrs))

    def add(self, n: int = 1) -> None:
        """Count ``n`` occurrences with the bound attributes."""
        self._add(n, self._attrs)
        self._cell[0] += n
        self._parent._total[0] += n


class Counter:
    """A monotonic counter recorded to OpenTelemetry and kept locally per attribute set."""

    __slots__ = ("_by_attrs", "_total", "instrument", "name")

    def __init__(self, meter_: Meter, name: str, unit: str, description: str) -> None:
        self.name = name
        self.instrument = meter_.create_counter(name, unit=unit, description=description)
        self._total = [0]
        self._by_attrs: dict[str, list[int]] = {}

    def _cell(self, key: str) -> list[int]:
        return self._by_attrs.setdefault(key, [0])

    def add(self, n: int = 1, **attrs: str | bool | int | float) -> None:
        """Count ``n`` occurrences; prefer :meth:`bind` on hot paths with fixed attributes."""
        self.instrument.add(n, attrs)
        self._total[0] += n
        if attrs:
            self._cell(_attr_key(attrs))[0] += n

    def bind(self, **attrs: str | bool | int | float) -> BoundCounter:
        """A handle that adds with these attributes without rebuilding them each call."""
        return BoundCounter(self, attrs)

    @property
    def total(self) -> int:
        """The sum over all attribute sets since start."""
        return self._total[0]

    def snapshot(self) -> dict[str, int]:
        """``{"total": n, "<k=v,...>": n, ...}`` for health and heartbeats."""
        out = {"total": self._total[0]}
        out.update({key: cell[0] for key, cell in sorted(self._by_attrs.items())})
        return out


class Gauge:
    """A last-value gauge (queue depth, connected flag) recorded to OpenTelemetry and locally."""

    __slots__ = ("_values", "instrument", "name")

    def __init__(self, meter_: Meter, name: str, unit: str, description: str) -> None:
        self.name = name
        self.instrument = meter_.create_gauge(name, unit=unit, description=description)
        self._values: dict[str, float] = {}

    def set(self, value: float, **attrs: str | bool | int | float) -> None:
        """Record the current value for this attribute set."""
        self.instrument.set(value, attrs)
        self._values[_attr_key(attrs) or "value"] = value

    def snapshot(self) -> dict[str, float]:
        """The last value per attribute set (``value`` for the attribute-less series)."""
        return dict(sorted(self._values.items()))


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Count, sum and max since start; p50/p99 over the recent reservoir (seconds).

    ``buckets`` holds the cumulative count of observations at or below each upper bound since
    start (the ``+Inf`` bucket is ``count``): what a Prometheus histogram exposes.
    """

    count: int
    sum: float
    max: float
    p50: float
    p99: float
    buckets: tuple[tuple[float, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for JSON health payloads (bucket bounds as text keys)."""
        return {
            "count": self.count,
            "sum": self.sum,
            "max": self.max,
            "p50": self.p50,
            "p99": self.p99,
            "buckets": {repr(bound): n for bound, n in self.buckets},
        }


class LatencyRecorder:
    """A latency histogram: OpenTelemetry buckets plus a bounded local reservoir for percentiles.

    The reservoir keeps the most recent ``reservoir`` samples (a ring), so p50/p99 describe
    current behaviour rather than the whole uptime, at fixed memory.
    """

    __slots__ = (
        "_bounds",
        "_count",
        "_counts",
        "_max",
        "_next",
        "_ring",
        "_size",
        "_sum",
        "instrument",
        "name",
    )

    def __init__(
        self, meter_: Meter, name: str, unit: str, description: str, reservoir: int = 1024
    ) -> None:
        if reservoir < 1:
            msg = f"reservoir must hold at least one sample; it was {reservoir}"
            raise ValueError(msg)
        self.name = name
        self._bounds = SIZE_BUCKETS_BYTES if unit == "By" else LATENCY_BUCKETS_SECONDS
        self._counts = [0] * len(self._bounds)
        self.instrument = meter_.create_histogram(
            name,
            unit=unit,
            description=description,
            explicit_bucket_boundaries_advisory=self._bounds if unit in {"s", "By"} else None,
        )
        self._size = reservoir
        self._ring: list[float] = []
        self._next = 0
        self._count = 0
        self._sum = 0.0
        self._max = 0.0

    def record(self, value: float, **attrs: str | bool | int | float) -> None:
        """Record one observation (seconds for durations)."""
        self.instrument.record(value, attrs)
        self._count += 1
        self._sum += value
        self._max = max(self._max, value)
        slot = bisect.bisect_left(self._bounds, value)
        if slot < len(self._counts):
            self._counts[slot] += 1
        if len(self._ring) < self._size:
            self._ring.append(value)
        else:
            self._ring[self._next] = value
            self._next = (self._next + 1) % self._size

    @contextlib.contextmanager
    def measure(self, **attrs: str | bool | int | float) -> Iterator[None]:
        """Record the duration of the ``with`` block (monotonic performance counter)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(time.perf_counter() - start, **attrs)

    def summary(self) -> LatencySummary:
        """Count/sum/max since start and nearest-rank p50/p99 over the reservoir."""
        ordered = sorted(self._ring)
        return LatencySummary(
            count=self._count,
            sum=self._sum,
            max=self._max,
            p50=_percentile(ordered, 0.50),
            p99=_percentile(ordered, 0.99),
            buckets=tuple(zip(self._bounds, itertools.accumulate(self._counts), strict=True)),
        )


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples (0.0 when there are none)."""
    if not ordered:
        return 0.0
    parts_per_million = round(q * 1_000_000)
    rank = max(1, -(-parts_per_million * len(ordered) // 1_000_000))  # ceil(q * n)
    return ordered[min(rank, len(ordered)) - 1]


class Metrics:
    """The metrics of one component: OTel instruments named ``mdp.<component>.<name>``.

    Instruments are created once (creating the same name again returns the existing one), and
    :meth:`snapshot` reports every local figure for health endpoints and heartbeats.

    Args:
        component: the component segment of instrument names (``listener``, ``processor``).
        meter_: the meter to create instruments on; the global meter for ``mdp.<component>``
            when omitted (a no-op until a service configures the SDK).
    """

    def __init__(self, component: str, meter_: Meter | None = None) -> None:
        self.component = component
        self.prefix = f"mdp.{component}."
        self._meter = meter_ if meter_ is not None else meter(f"mdp.{component}")
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._latencies: dict[str, LatencyRecorder] = {}

    def counter(self, name: str, unit: str = "{event}", description: str = "") -> Counter:
        """The counter ``mdp.<component>.<name>`` (created on first use)."""
        found = self._counters.get(name)
        if found is None:
            found = Counter(self._meter, self.prefix + name, unit, description)
            self._counters[name] = found
        return found

    def gauge(self, name: str, unit: str = "1", description: str = "") -> Gauge:
        """The gauge ``mdp.<component>.<name>`` (created on first use)."""
        found = self._gauges.get(name)
        if found is None:
            found = Gauge(self._meter, self.prefix + name, unit, description)
            self._gauges[name] = found
        return found

    def latency(
        self, name: str, unit: str = "s", description: str = "", reservoir: int = 1024
    ) -> LatencyRecorder:
        """The histogram ``mdp.<component>.<name>`` with a local summary (created on first use)."""
        found = self._latencies.get(name)
        if found is None:
            found = LatencyRecorder(self._meter, self.prefix + name, unit, description, reservoir)
            self._latencies[name] = found
        return found

    def snapshot(self) -> dict[str, Any]:
        """Every local figure: ``{"counters": {...}, "gauges": {...}, "latencies": {...}}``."""
        return {
            "counters": {n: c.snapshot() for n, c in sorted(self._counters.items())},
            "gauges": {n: g.snapshot() for n, g in sorted(self._gauges.items())},
            "latencies": {n: h.summary().as_dict() for n, h in sorted(self._latencies.items())},
        }
