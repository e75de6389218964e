"""The injectable clock: the only module in ``packages/`` that reads the wall clock.

Analyzers, schedulers and freshness checks take a :class:`Clock` instead of calling
``time.time()`` so that tests and simulations can drive time explicitly with
:class:`ManualClock` (including across DST changes and day boundaries) while services pass
:class:`LiveClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

__all__ = [
    "ET",
    "NS_PER_SECOND",
    "Clock",
    "LiveClock",
    "ManualClock",
    "from_ns",
    "sleep_or_wake",
    "to_ns",
]

ET = ZoneInfo("America/New_York")
"""The exchange time zone of US equities; sessions and trading days are defined in it."""

NS_PER_SECOND = 1_000_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(instant: datetime | int) -> int:
    """Convert an aware datetime (or pass through Unix nanoseconds) to Unix nanoseconds.

    Integer arithmetic on the timedelta keeps microsecond precision exact, which float
    ``timestamp()`` would not for instants far from the epoch.

    Raises:
        ValueError: if ``instant`` is a naive datetime; naive times are ambiguous across
            time zones and DST, so they are refused rather than guessed.
    """
    if isinstance(instant, int):
        return instant
    if instant.tzinfo is None or instant.utcoffset() is None:
        msg = f"datetime must be timezone-aware; it was naive ({instant.isoformat()})"
        raise ValueError(msg)
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


def from_ns(ns: int, tz: ZoneInfo | None = None) -> datetime:
    """Convert Unix nanoseconds to an aware datetime (UTC unless ``tz`` is given).

    Sub-microsecond digits are truncated because :class:`datetime` cannot hold them.
    """
    instant = _EPOCH + timedelta(microseconds=ns // 1_000)
    return instant if tz is None else instant.astimezone(tz)


@runtime_checkable
class Clock(Protocol):
    """**Protocol:** a source of time that components receive instead of reading the OS clock."""

    def now_ns(self) -> int:
        """Return the current instant as UTC Unix nanoseconds."""
        ...

    def now(self) -> datetime:
        """Return the current instant as a timezone-aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes backwards (for intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` of this clock's time."""
        ...


class LiveClock:
    """The real clock: the operating system's wall clock and monotonic clock."""

    __slots__ = ()

    def now_ns(self) -> int:
        """Return the OS wall clock as UTC Unix nanoseconds."""
        return time.time_ns()

    def now(self) -> datetime:
        """Return the OS wall clock as an aware UTC datetime."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return the OS monotonic clock in seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop (never blocks it)."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "LiveClock()"


class ManualClock:
    """A clock that moves only when told to, for tests and simulations.

    ``sleep`` registers a future keyed by its deadline; :meth:`advance` and :meth:`set`
    resolve every future whose deadline has been reached, in deadline order, so sleepers wake
    deterministically without polling. The monotonic reading moves with the wall reading but
    never backwards, even when :meth:`set` jumps the wall clock back.

    Args:
        start: the initial instant, an aware datetime or UTC Unix nanoseconds.
    """

    def __init__(self, start: datetime | int) -> None:
        self._ns = to_ns(start)
        self._mono_ns = 0
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._park_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def now_ns(self) -> int:
        """Return the current manual instant as UTC Unix nanoseconds."""
        return self._ns

    def now(self) -> datetime:
        """Return the current manual instant as an aware UTC datetime."""
        return from_ns(self._ns)

    def monotonic(self) -> float:
        """Return seconds elapsed through :meth:`advance` (and forward :meth:`set`) calls."""
        return self._mono_ns / NS_PER_SECOND

    @property
    def pending_sleepers(self) -> int:
        """Number of ``sleep`` calls still waiting (lets tests wait until a task is parked)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced by at least ``seconds``.

        A non-positive duration still yields to the event loop once, like ``asyncio.sleep(0)``.
        """
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        deadline = self._mono_ns + round(seconds * NS_PER_SECOND)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        self._notify_parked()
        await future

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` ``sleep`` calls are parked on this clock.

        Tests call this before :meth:`advance` so that the code under test has reached its
        sleep; advancing earlier would leave the sleeper waiting for the next advance.
        """
        if self.pending_sleepers >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._park_waiters.append((count, future))
        await future

    def _notify_parked(self) -> None:
        parked = self.pending_sleepers
        still_waiting: list[tuple[int, asyncio.Future[None]]] = []
        for count, future in self._park_waiters:
            if future.done():
                continue
            if parked >= count:
                future.set_result(None)
            else:
                still_waiting.append((count, future))
        self._park_waiters = still_waiting

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` and wake sleepers whose deadline passed.

        Raises:
            ValueError: if ``seconds`` is negative; use :meth:`set` to jump backwards.
        """
        if seconds < 0:
            msg = f"advance() needs a non-negative number of seconds; it was {seconds}"
            raise ValueError(msg)
        step = round(seconds * NS_PER_SECOND)
        self._ns += step
        self._mono_ns += step
        self._wake()

    def set(self, instant: datetime | int) -> None:
        """Jump the wall clock to ``instant``.

        A forward jump also moves the monotonic reading (and wakes sleepers); a backward jump
        moves only the wall reading, as an NTP correction would.
        """
        target = to_ns(instant)
        if target > self._ns:
            self._mono_ns += target - self._ns
        self._ns = target
        self._wake()

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._mono_ns:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def __repr__(self) -> str:
        return f"ManualClock({self.now().isoformat()})"


async def sleep_or_wake(clock: Clock, seconds: float | None, *events: asyncio.Event) -> None:
    """Return when any of ``events`` is set, or after ``seconds`` on ``clock`` (None: never).

    Supervisors wait like this between attempts: a backoff must end early on a stop request
    or a control change, and it must follow the injected clock so tests need no real waits.
    """
    waiters: set[asyncio.Task[object]] = {asyncio.create_task(event.wait()) for event in events}
    if seconds is not None:
        waiters.add(asyncio.create_task(clock.sleep(seconds)))
    if not waiters:
        return
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
