"""A clock that tells simulated market time, for running the platform against the simulator.

In production every component's clock is the wall clock. Against the simulator, the market's
"now" is simulated (say 09:28 ET on the last trading day, running five times faster than real
time), and everything that reasons about the market (analyzers: sessions, day boundaries, the
09:30 open) must follow it, while transport concerns (message freshness, timeouts, sleeps) stay
on real time. This adapter gives the former without touching the latter: ``now`` follows the
simulator, ``monotonic`` and ``sleep`` are real.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mdp_core.clock import LiveClock
from mdp_sim.simclock import SimClock

__all__ = ["MarketClock"]


class MarketClock:
    """The simulated market's time, as a :class:`mdp_core.clock.Clock`.

    Args:
        sim: the simulator's clock (it maps real elapsed time to simulated time).
    """

    def __init__(self, sim: SimClock) -> None:
        if sim.speed is None:
            msg = "a consumer-paced simulator has no market time to follow; give it a speed"
            raise ValueError(msg)
        self._sim = sim
        self._real = LiveClock()

    def now_ns(self) -> int:
        """Simulated Unix nanoseconds."""
        return self._sim.target_ns()

    def now(self) -> datetime:
        """Simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self._sim.target_ns() / 1e9, UTC)

    def monotonic(self) -> float:
        """Real monotonic seconds (durations are real)."""
        return self._real.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real seconds."""
        await asyncio.sleep(seconds)
