"""Simulated time: how far the synthetic market should have got, given how much real time passed.

Servers pace the market with a :class:`SimClock`: at ``speed=1.0`` one simulated second per real
second, at ``speed=10`` ten, and with ``speed=None`` the market is unbounded and runs as fast as
the consumer reads (benchmarks use this with a target event rate instead).
"""

from __future__ import annotations

from mdp_core.clock import NS_PER_SECOND, Clock, LiveClock

__all__ = ["SimClock"]

_UNBOUNDED_NS = 2**62
"""A simulated instant far beyond any run; what an unpaced clock reports as its target."""


class SimClock:
    """Maps real time to simulated time.

    Args:
        start_ns: the simulated UTC instant (ns) that corresponds to "now" at construction.
        speed: simulated seconds per real second; ``None`` means as fast as the consumer reads.
        real: the real clock to measure elapsed time with (tests pass a ``ManualClock``).

    Raises:
        ValueError: if ``speed`` is not positive.
    """

    __slots__ = ("_real", "_real_origin", "_sim_origin", "speed")

    def __init__(self, start_ns: int, speed: float | None = 1.0, real: Clock | None = None) -> None:
        if speed is not None and not speed > 0:
            msg = f"speed must be positive or None; it was {speed}"
            raise ValueError(msg)
        self._real: Clock = real if real is not None else LiveClock()
        self._real_origin = self._real.monotonic()
        self._sim_origin = start_ns
        self.speed = speed

    @property
    def start_ns(self) -> int:
        """The simulated instant the clock started at (or was last re-anchored to)."""
        return self._sim_origin

    def target_ns(self) -> int:
        """Return the simulated instant that should have been reached by now.

        With ``speed=None`` there is no pacing, so the target is effectively unbounded.
        """
        if self.speed is None:
            return _UNBOUNDED_NS
        elapsed = self._real.monotonic() - self._real_origin
        return self._sim_origin + int(elapsed * self.speed * NS_PER_SECOND)

    def set_speed(self, speed: float | None, *, at_ns: int | None = None) -> None:
        """Change the speed from now on.

        Args:
            speed: the new speed (``None``: unpaced).
            at_ns: the simulated instant to continue from; by default the current target, which
                keeps a paced clock seamless. Pass the market's ``now_ns`` when leaving unpaced
                mode (whose target is unbounded) so pacing resumes where the market is.

        Raises:
            ValueError: if ``speed`` is not positive.
        """
        if speed is not None and not speed > 0:
            msg = f"speed must be positive or None; it was {speed}"
            raise ValueError(msg)
        if at_ns is not None:
            self._sim_origin = at_ns
        elif self.speed is not None:
            self._sim_origin = self.target_ns()
        self._real_origin = self._real.monotonic()
        self.speed = speed

    def __repr__(self) -> str:
        return f"SimClock(start_ns={self._sim_origin}, speed={self.speed})"
