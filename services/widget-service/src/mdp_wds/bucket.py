"""Token bucket: the per-connection budget of client messages."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``burst`` messages at once and ``rate`` per second sustained.

    Time is passed in (monotonic seconds), so the bucket is exact in tests.
    """

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        """Spend one token; ``False`` when the budget is exhausted."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
