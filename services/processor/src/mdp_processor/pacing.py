"""Flush pacing: how long the flusher lets events coalesce before the next flush.

A flush has a cost that does not depend on its size (a state pipeline, a widget pipeline,
the socket writes and replies, the acks): at a full-market universe a worker's 10 ms flushes
of a few dozen rows kept it busy flushing a third of the time and cost Redis as much again.
The pace therefore follows the flushes' own cost: the next flush starts ``duration /
busy_fraction`` after the previous one started, so flushing takes at most that share of the
time, never sooner than the interval (freshness of a small universe) and never later than
the ceiling (freshness of a large one). A flush that took longer than the ceiling is followed
at once, as before: a backlog is drained without a pause.

A worker that cannot keep up gets a higher ceiling. Its queue always has a backlog, so the
events' wait is set by the backlog, not by the flushes, and every flush's fixed cost taken
out of its time lowers its throughput further: at saturation, fewer and larger flushes cut
Redis's cost per event by about 40 % (``docs/performance.md``). The processor tells the
pacing when it is saturated: some consumer has not waited for a delivery for a while
(sustained, not a burst that one second of a large universe brings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_BUSY_FRACTION",
    "DEFAULT_INTERVAL_SECONDS",
    "DEFAULT_MAX_INTERVAL_SECONDS",
    "DEFAULT_SATURATED_MAX_INTERVAL_SECONDS",
    "DEFAULT_SATURATION_SECONDS",
    "FlushPacing",
]

#: The defaults, shared by the pacing, :class:`~mdp_processor.processor.ProcessorConfig` and
#: the service's settings.
DEFAULT_INTERVAL_SECONDS: Final = 0.01
DEFAULT_MAX_INTERVAL_SECONDS: Final = 0.025
DEFAULT_BUSY_FRACTION: Final = 0.2
DEFAULT_SATURATED_MAX_INTERVAL_SECONDS: Final = 0.25
DEFAULT_SATURATION_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class FlushPacing:
    """The time between the starts of two flushes, from the duration of the first.

    Attributes:
        interval_seconds: Shortest time between the starts of two flushes.
        max_interval_seconds: Longest time events wait for a flush because the last one was
            costly (taken as ``interval_seconds`` when below it).
        busy_fraction: Share of the time flushes may take while the worker keeps up, in
            (0, 1]; 1 flushes again as soon as the interval allows.
        saturated_max_interval_seconds: The ceiling while the worker is saturated (taken as
            the higher of the other two when below them, which turns the mode off).
    """

    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    max_interval_seconds: float = DEFAULT_MAX_INTERVAL_SECONDS
    busy_fraction: float = DEFAULT_BUSY_FRACTION
    saturated_max_interval_seconds: float = DEFAULT_SATURATED_MAX_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        if not self.interval_seconds > 0:
            msg = f"interval_seconds must be above 0; it was {self.interval_seconds}"
            raise ValueError(msg)
        if not self.saturated_max_interval_seconds > 0:
            msg = (
                "saturated_max_interval_seconds must be above 0; "
                f"it was {self.saturated_max_interval_seconds}"
            )
            raise ValueError(msg)
        if not 0 < self.busy_fraction <= 1:
            msg = f"busy_fraction must be in (0, 1]; it was {self.busy_fraction}"
            raise ValueError(msg)

    @property
    def saturates(self) -> bool:
        """Whether saturation changes anything: its ceiling is above the other two bounds."""
        return self.saturated_max_interval_seconds > max(
            self.interval_seconds, self.max_interval_seconds
        )

    def next_interval(self, flush_seconds: float, *, saturated: bool = False) -> float:
        """Seconds from the start of a flush that took ``flush_seconds`` to the next one's.

        ``saturated``: the worker is not keeping up, and the saturated ceiling applies.
        """
        ceiling = max(self.interval_seconds, self.max_interval_seconds)
        if saturated:
            ceiling = max(ceiling, self.saturated_max_interval_seconds)
        return min(ceiling, max(self.interval_seconds, flush_seconds / self.busy_fraction))
