"""The login attempt limit: a sliding window of failures per key.

The SCP keeps two: one keyed by user name *and* client address (stops guessing one account's
password, while a stranger's guesses cannot lock the real user out) and a looser one keyed by
client address (stops one client spraying many names). Addresses are counted per IPv6 /64.
Either over its limit blocks the attempt *before* the password is checked, so a blocked client
cannot keep burning scrypt time; and an attempt is recorded as a failure before the check
starts, so concurrent attempts cannot slip through while scrypt runs. A success clears the
user's counter and withdraws its own record from the address's, nothing more: a valid login
must not launder a spray.
"""

from __future__ import annotations

import contextlib
from collections import deque

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Sliding-window failure counter.

    Args:
        max_failures: failures allowed per key within ``window_seconds``.
        window_seconds: how long a failure counts.
        max_keys: bound on tracked keys, so a flood of names cannot exhaust memory.
    """

    def __init__(self, max_failures: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until an attempt for ``keys`` is allowed; 0.0 when allowed now."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self._max:
                wait = max(wait, times[0] + self._window - now)
        return wait

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        """Record one failed attempt against every key."""
        if len(self._failures) >= self._max_keys:
            for key in list(self._failures):
                self._recent(key, now)
        for key in keys:
            if key not in self._failures and len(self._failures) >= self._max_keys:
                continue  # still full of live keys: the per-address key keeps protecting
            self._failures.setdefault(key, deque(maxlen=self._max)).append(now)

    def withdraw(self, key: str, at: float) -> None:
        """Take back the one failure recorded at ``at`` for ``key`` (the attempt succeeded)."""
        times = self._failures.get(key)
        if times is None:
            return
        with contextlib.suppress(ValueError):
            times.remove(at)
        if not times:
            del self._failures[key]

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key`` (the user name after a correct password)."""
        self._failures.pop(key, None)
