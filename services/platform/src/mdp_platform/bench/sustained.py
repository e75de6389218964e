"""The sustained-rate search: the highest offered rate the pipeline keeps up with.

The saturation phase offers events as fast as the simulator can make them. On one machine
the simulator and the listener then take the CPU the processors need (at 10,000 symbols they
produce more than twice what the processors can take), so its end-to-end rate measures the
pipeline *and* the cost of overfeeding it. A real feed is not generated on the processors'
machine. The search answers the capacity question instead: it offers fixed rates, rising by
a constant factor, and keeps the highest one at which the pipeline kept up, the method of
streaming benchmarks' *sustainable throughput* (a rate is sustainable when no backlog grows).

A step kept up when the processors wrote at least :data:`KEPT_UP_SHARE` of what the simulator
produced in the measured window and, by their own receipt-to-write histogram, wrote at least
:data:`IN_BOUND_SHARE` of it within the latency bound (a backlog shows there long before it
shows in the rates); the search stops at the first step that did not, or that the simulator
itself could not offer. The verdict is final only once the run's event -> Redis
latencies are known (:meth:`SustainedSearch.best`): a step whose p99 exceeds the bound did not
keep up either, however fast it wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "IN_BOUND_SHARE",
    "KEPT_UP_SHARE",
    "OFFERED_SHARE",
    "SearchStep",
    "SustainedSearch",
    "share_within",
]

KEPT_UP_SHARE: Final = 0.9
"""Share of the simulator's events the processors must write in a step's window.

A gross check only: the pipeline's lag rises with the rate, and the rise within a window
shifts events out of the processors' count (0.25 s more lag in a 5 s window reads as 5 %
behind although nothing piles up), so the latency shares decide whether a backlog grows.
"""
OFFERED_SHARE: Final = 0.95
"""Share of the asked rate the simulator must produce for the step to count at all."""
IN_BOUND_SHARE: Final = 0.99
"""Share of the processors' writes in a window that must be within the latency bound."""
_HISTOGRAM: Final = "hist_lag_receipt"


def share_within(change: Mapping[str, float], bound_seconds: float) -> float | None:
    """Share of a window's processor writes within ``bound_seconds`` of their receipt.

    ``change`` is the difference of two flattened processor statuses: cumulative buckets in
    the form :func:`mdp_runtime.metrics.flat_histogram` writes. None when the histogram has no
    bucket at the bound or no write in the window.
    """
    count = change.get(f"{_HISTOGRAM}_count")
    within = change.get(f"{_HISTOGRAM}_bucket_{float(bound_seconds)!r}")
    if not count or within is None:
        return None
    return within / count


@dataclass(frozen=True, slots=True)
class SearchStep:
    """One measured step of the search.

    Attributes:
        asked: events/s asked of the simulator.
        simulator: events/s it produced in the window.
        processor: events/s the processors wrote in the window.
        p99_ms: event -> Redis p99 in the window (None: not known yet, or no sample).
        in_bound: share of the processors' writes within the latency bound of their
            receipt (None: not reported).
    """

    asked: float
    simulator: float
    processor: float
    p99_ms: float | None = None
    in_bound: float | None = None

    @property
    def offered(self) -> bool:
        """Whether the simulator produced the asked rate (else the step measures the simulator)."""
        return self.simulator >= OFFERED_SHARE * self.asked

    @property
    def wrote_enough(self) -> bool:
        """Whether the processors wrote what the simulator produced (rates only)."""
        return self.processor >= KEPT_UP_SHARE * self.simulator

    @property
    def wrote_in_time(self) -> bool:
        """Whether the processors' own latencies stayed within the bound (True: not reported)."""
        return self.in_bound is None or self.in_bound >= IN_BOUND_SHARE

    @property
    def kept_up(self) -> bool:
        """Whether the processors wrote what was offered, in time by their own account."""
        return self.offered and self.wrote_enough and self.wrote_in_time


@dataclass(slots=True)
class SustainedSearch:
    """Rates to offer, in order, and the verdict once the steps are measured.

    Attributes:
        start: the first rate offered (events/s).
        factor: each next rate is the last times this (> 1).
        max_steps: the search ends after this many steps whatever they showed.
        lag_bound_ms: a step whose event -> Redis p99 is above this did not keep up.
        steps: the steps measured so far, in order.
    """

    start: float
    factor: float = 1.2
    max_steps: int = 12
    lag_bound_ms: float = 1_000.0
    steps: list[SearchStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.start <= 0 or self.factor <= 1 or self.max_steps < 1 or self.lag_bound_ms <= 0:
            msg = "the search needs start > 0, factor > 1, max_steps >= 1 and lag_bound_ms > 0"
            raise ValueError(msg)

    def next_rate(self) -> float | None:
        """The rate to offer next; None once a step fell behind or the steps are spent."""
        if len(self.steps) >= self.max_steps:
            return None
        if not self.steps:
            return self.start
        last = self.steps[-1]
        if not last.kept_up:
            return None
        return last.asked * self.factor

    def record(self, step: SearchStep) -> None:
        """Add a measured step (its p99 may follow later through :meth:`with_lags`)."""
        self.steps.append(step)

    def with_lags(self, p99_ms: list[float | None]) -> None:
        """Give every step its event -> Redis p99, in step order."""
        if len(p99_ms) != len(self.steps):
            msg = f"{len(p99_ms)} latencies for {len(self.steps)} steps"
            raise ValueError(msg)
        self.steps = [
            dataclasses.replace(step, p99_ms=p99)
            for step, p99 in zip(self.steps, p99_ms, strict=True)
        ]

    def sustained(self, step: SearchStep) -> bool:
        """Whether ``step`` kept up, latency included (a step without samples did not)."""
        return step.kept_up and step.p99_ms is not None and step.p99_ms <= self.lag_bound_ms

    def best(self) -> int | None:
        """Index of the highest step sustained with every lower step sustained too; None: none.

        A step above one that fell behind does not count even if it looked fine: its window
        was still writing the backlog of the step before.
        """
        found = None
        for index, step in enumerate(self.steps):
            if not self.sustained(step):
                break
            found = index
        return found

    def ceiling(self) -> str:
        """Why the search ended: what the first step that was not sustained showed."""
        if not self.steps:
            return "not run"
        best = self.best()
        first = 0 if best is None else best + 1
        if first >= len(self.steps):
            return f"all {len(self.steps)} steps sustained (the most the search asks)"
        step = self.steps[first]
        at = f"at {step.asked:,.0f} ev/s asked"
        if not step.offered:
            return f"{at} the simulator produced {step.simulator:,.0f} ev/s"
        if not step.wrote_enough:
            return f"{at} the processors wrote {step.processor:,.0f} of {step.simulator:,.0f} ev/s"
        if not step.wrote_in_time:
            return (
                f"{at} the processors wrote {step.in_bound or 0.0:.1%} of their events within"
                f" {self.lag_bound_ms:,.0f} ms of receipt"
            )
        p99 = "no sample" if step.p99_ms is None else f"{step.p99_ms:,.0f} ms"
        return f"{at} event->Redis p99 was {p99}, over the {self.lag_bound_ms:,.0f} ms bound"
