"""The health page's rows: heartbeats turned into what an operator reads at a glance.

A heartbeat carries cumulative totals; a person wants a rate. :class:`HealthView` keeps, per
heartbeat key, the last few minutes of (time, total) points of the component's main figure
and derives the rate per second and a sparkline from consecutive beats. It also names the
state in plain words (a listener stopped from the controls reports ``idle``: it reads
``stopped``), computes the uptime from ``started_ms`` and the feed freshness from what the
component reports (the listener's last frame, the processor's event-to-write lag).

Pure: time comes in as an argument, nothing here talks to Redis.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from mdp_scp.heartbeats import ComponentHealth

__all__ = ["RATE_FIGURES", "HealthView", "RateFigure"]

HISTORY_SECONDS: Final = 300.0
"""How far back the sparkline reaches."""

_MAX_POINTS: Final = 400  # a beat every second for more than the history: bounded per key
_MAX_KEYS: Final = 1_000


@dataclass(frozen=True, slots=True)
class RateFigure:
    """Which cumulative figure of a component's heartbeat is its rate, and its unit."""

    path: tuple[str, ...]
    unit: str


RATE_FIGURES: Final[Mapping[str, RateFigure]] = {
    "listener": RateFigure(("events_received",), "events/s"),
    "news-listener": RateFigure(("articles_in",), "articles/s"),
    "processor": RateFigure(("events",), "events/s"),
    "news-processor": RateFigure(("articles_in",), "articles/s"),
    "scanner": RateFigure(("messages_total",), "messages/s"),
    "widget-service": RateFigure(("messages_out",), "messages/s"),
    "control-plane": RateFigure(("requests",), "requests/s"),
}
"""The figure each component's rate is computed from (its heartbeat ``figures``)."""

_STOPPED_WORDS: Final = frozenset({"idle", "stopped"})


def _number(figures: Mapping[str, object], path: tuple[str, ...]) -> float | None:
    node: object = figures
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def state_of(component: ComponentHealth) -> str:
    """The state word shown: ``stale``, ``stopped``, or what the component reported."""
    if component.error is not None or component.status in {"gone", "unreadable"}:
        return component.status
    if component.status in _STOPPED_WORDS:
        return "stopped"
    if component.stale:
        return "stale"
    return component.status


def freshness_of(component: ComponentHealth, now: float) -> float | None:
    """Seconds the component's data is behind: last frame age, or event-to-write lag (p99)."""
    figures = component.figures
    last_frame_ms = _number(figures, ("last_frame_ms",))
    if last_frame_ms is not None and last_frame_ms > 0:
        return max(0.0, now - last_frame_ms / 1000.0)
    return _number(figures, ("lag_event_p99_seconds",))


class HealthView:
    """Rates and sparklines from consecutive heartbeats, kept per heartbeat key."""

    def __init__(self) -> None:
        self._points: dict[str, deque[tuple[float, float]]] = {}

    def _remember(self, component: ComponentHealth) -> deque[tuple[float, float]] | None:
        figure = RATE_FIGURES.get(component.service)
        sent = component.sent_seconds
        if figure is None or sent is None:
            return None
        total = _number(component.figures, figure.path)
        if total is None:
            return None
        points = self._points.get(component.key)
        if points is None:
            if len(self._points) >= _MAX_KEYS:
                return None
            points = self._points[component.key] = deque(maxlen=_MAX_POINTS)
        if not points or sent > points[-1][0]:
            points.append((sent, total))
        while points and points[0][0] < sent - HISTORY_SECONDS:
            points.popleft()
        return points

    @staticmethod
    def _rates(points: Iterable[tuple[float, float]]) -> list[float]:
        rates: list[float] = []
        previous: tuple[float, float] | None = None
        for point in points:
            if previous is not None:
                seconds, delta = point[0] - previous[0], point[1] - previous[1]
                # A restarted component starts its totals again: no negative rate.
                rates.append(delta / seconds if delta >= 0 else 0.0)
            previous = point
        return rates

    def rows(self, components: Iterable[ComponentHealth], now: float) -> list[dict[str, object]]:
        """One JSON row per component instance, in the order given."""
        rows: list[dict[str, object]] = []
        seen: set[str] = set()
        for component in components:
            seen.add(component.key)
            points = self._remember(component)
            rates = self._rates(points) if points is not None else []
            figure = RATE_FIGURES.get(component.service)
            started = component.started_seconds
            rows.append(
                {
                    **component.as_json(),
                    "state": state_of(component),
                    "uptime_seconds": None if started is None else round(max(0.0, now - started)),
                    "freshness_seconds": _rounded(freshness_of(component, now)),
                    "rate_per_second": round(rates[-1], 2) if rates else None,
                    "rate_unit": figure.unit if figure is not None else None,
                    "sparkline": [round(rate, 2) for rate in rates],
                }
            )
        for key in [key for key in self._points if key not in seen]:
            del self._points[key]  # the instance is gone: forget its history
        return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
