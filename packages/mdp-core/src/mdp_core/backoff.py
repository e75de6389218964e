"""The one backoff policy of the platform: how long a retry loop waits before its next attempt.

Every loop that retries something that failed for want of a connection (the processor's
consumer, seen-set, claims and writes, worker restarts, the listeners' reconnects, the WDS and
scanner pub/sub links) waits the same way: exponential growth from ``initial_seconds`` by
``multiplier`` per failure, capped at ``max_seconds``, then *jittered down* by a random fraction
of at most ``jitter`` (``jitter=1`` is "full jitter": anywhere between 0 and the capped delay),
so copies that failed together do not retry together, and the cap is a true upper bound.

The policy is pure data; :class:`Backoff` is the state of one loop (its attempt count) and takes
its random source and clock as arguments, so tests seed the one and drive the other. The
delays of a service come from its settings (``MDP_RETRY_*`` for connection retries, and each
component's own reconnect settings), never from constants in the loop.

Example::

    backoff = Backoff(settings.retry_backoff, rng)
    while True:
        try:
            await write()
        except ConnectionError:
            await clock.sleep(backoff.next_delay())
            continue
        backoff.reset()
        break
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backoff", "BackoffPolicy", "Monotonic", "RandomSource"]


class RandomSource(Protocol):
    """**Protocol:** a source of uniform floats in ``[0, 1)`` (``random.Random`` qualifies)."""

    def random(self) -> float:
        """A uniform float in ``[0, 1)``."""
        ...


class Monotonic(Protocol):
    """**Protocol:** the part of a clock a backoff needs (:class:`mdp_core.clock.Clock` fits)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go backwards."""
        ...


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff with a cap, jitter and optional limits.

    Attributes:
        initial_seconds: The (unjittered) delay before the first retry.
        max_seconds: The cap of every delay; no delay is ever longer.
        jitter: Fraction of each delay that may be taken off at random, in ``[0, 1]``.
        multiplier: Growth per failure (at least 1).
        max_attempts: Failures after which :meth:`Backoff.next_delay` gives up (None: never).
        stable_after_seconds: An attempt that lasted this long (see :meth:`Backoff.started`)
            counts as a success: the next failure starts again from ``initial_seconds``.
    """

    initial_seconds: float
    max_seconds: float
    jitter: float = 0.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    stable_after_seconds: float | None = None

    def __post_init__(self) -> None:
        """Refuse values no loop could use (a negative delay, a cap below the first delay)."""
        problems = []
        if not self.initial_seconds >= 0:
            problems.append(f"initial_seconds must be >= 0; it was {self.initial_seconds}")
        if not self.max_seconds >= self.initial_seconds:
            problems.append(
                f"max_seconds must be >= initial_seconds; it was {self.max_seconds} "
                f"< {self.initial_seconds}"
            )
        if not 0.0 <= self.jitter <= 1.0:
            problems.append(f"jitter must be within [0, 1]; it was {self.jitter}")
        if not self.multiplier >= 1.0:
            problems.append(f"multiplier must be >= 1; it was {self.multiplier}")
        if self.max_attempts is not None and self.max_attempts < 1:
            problems.append(f"max_attempts must be >= 1; it was {self.max_attempts}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_settings(
        cls,
        initial_seconds: float,
        max_seconds: float,
        jitter: float,
        *,
        stable_after_seconds: float | None = None,
    ) -> BackoffPolicy:
        """The policy of a component's settings, where the cap wins over a larger start.

        Settings are checked one variable at a time, so a start above the cap is not an error
        there; no delay may exceed the cap, so the start is lowered to it.
        """
        return cls(
            initial_seconds=min(initial_seconds, max_seconds),
            max_seconds=max_seconds,
            jitter=jitter,
            stable_after_seconds=stable_after_seconds,
        )

    def capped(self, attempt: int) -> float:
        """The delay after the ``attempt``-th failure in a row (1-based), before jitter."""
        if attempt < 1:
            msg = f"attempt is 1-based; it was {attempt}"
            raise ValueError(msg)
        if self.multiplier == 1.0 or self.initial_seconds == 0.0:
            return min(self.initial_seconds, self.max_seconds)
        try:
            grown = self.initial_seconds * self.multiplier ** (attempt - 1)
        except OverflowError:  # a loop that failed for days: long past the cap
            return self.max_seconds
        return min(self.max_seconds, grown)

    def jittered(self, seconds: float, rng: RandomSource) -> float:
        """``seconds`` less a random fraction of at most ``jitter`` of it.

        Also for fixed delays a loop chooses itself (the listener's kick delays), so they
        spread like the exponential ones.
        """
        return seconds * (1.0 - self.jitter * rng.random())

    def delay(self, attempt: int, rng: RandomSource) -> float:
        """The jittered delay after the ``attempt``-th failure in a row (1-based)."""
        return self.jittered(self.capped(attempt), rng)


class Backoff:
    """The backoff state of one retry loop: failures in a row since the last success.

    Args:
        policy: The delays.
        rng: Random source of the jitter (seed a ``random.Random`` in tests).
        clock: Needed only with ``policy.stable_after_seconds``: measures how long an attempt
            lasted between :meth:`started` and :meth:`next_delay`.
    """

    __slots__ = ("_clock", "_rng", "_started", "attempt", "policy")

    def __init__(
        self, policy: BackoffPolicy, rng: RandomSource, clock: Monotonic | None = None
    ) -> None:
        if policy.stable_after_seconds is not None and clock is None:
            msg = "a policy with stable_after_seconds needs a clock"
            raise ValueError(msg)
        self.policy = policy
        self._rng = rng
        self._clock = clock
        self._started: float | None = None
        self.attempt = 0
        """Failures in a row so far (0 after a success)."""

    def started(self) -> None:
        """An attempt begins (a connection, a worker run): its length decides a reset."""
        if self._clock is not None:
            self._started = self._clock.monotonic()

    def lasted(self) -> float:
        """Seconds since :meth:`started` (0 without a clock or before any start)."""
        if self._clock is None or self._started is None:
            return 0.0
        return self._clock.monotonic() - self._started

    @property
    def stable(self) -> bool:
        """Whether the current attempt has lasted ``stable_after_seconds`` (a success)."""
        limit = self.policy.stable_after_seconds
        return limit is not None and self._started is not None and self.lasted() >= limit

    def reset(self) -> None:
        """A success: the next failure waits ``initial_seconds`` again."""
        self.attempt = 0

    @property
    def exhausted(self) -> bool:
        """Whether ``max_attempts`` failures in a row have been used up."""
        limit = self.policy.max_attempts
        return limit is not None and self.attempt >= limit

    def next_delay(self) -> float | None:
        """Count a failure and return the wait before the next attempt (None: give up).

        A stable attempt (see :attr:`stable`) resets the count first, so a long-lived
        connection that drops is retried quickly.
        """
        if self.stable:
            self.reset()
        self._started = None
        if self.exhausted:
            return None
        self.attempt += 1
        return self.policy.delay(self.attempt, self._rng)

    def wait(self) -> float:
        """Like :meth:`next_delay` for loops that never give up (no ``max_attempts``)."""
        delay = self.next_delay()
        if delay is None:
            msg = "wait() is for policies without max_attempts; use next_delay()"
            raise RuntimeError(msg)
        return delay
