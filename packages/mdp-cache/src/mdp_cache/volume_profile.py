"""Time-of-day volume profiles: how much a symbol usually trades by each time of the day.

Relative volume against the *whole day's* average reads 0.0x before the open and 0.1x at 09:41
for every stock, which says nothing. Scanners compare today's cumulative volume with the
average cumulative volume **up to the same time of day** over the last N trading days; that is
what this module computes. Pure data and arithmetic, no I/O: :mod:`mdp_cache.reference` caches
profiles in MDC and the leaderboard rows read them.

Conventions (the whole extended day, pre-market to after-hours):

* The day is cut into 5-minute *slots* from 04:00 ET to 20:00 ET (192 slots; a half day's
  after-hours simply adds nothing). A minute bar belongs to the slot its start falls in.
* ``cumulative[i]`` is the average, over the days averaged, of the volume traded from 04:00
  to the **end** of slot ``i`` (04:00 + 5 (i + 1) minutes).
* Days are averaged only when the source has minute bars for them: a day missing from the
  source (a data gap, or the symbol was not listed) is left out, not counted as zero.
* :func:`expected_volume` interpolates linearly inside the slot in progress between the
  cumulative average at its start and at its end, so RVol does not jump at each slot edge;
  :func:`relative_volume` is today's cumulative volume over that figure, or None when the
  expected volume is zero (at 04:00 exactly, or a symbol that never traded that early).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Final

import msgspec

from mdp_core.clock import ET, from_ns, to_ns

__all__ = [
    "DAY_START",
    "SLOTS",
    "SLOT_MS",
    "VolumeProfile",
    "build_profile",
    "day_start_ms",
    "expected_volume",
    "lookback_start",
    "relative_volume",
    "slot_of",
]

DAY_START: Final = time(4, 0)
"""The first instant of the profile: 04:00 ET, when the pre-market opens."""
SLOT_MS: Final = 5 * 60 * 1000
"""Length of a slot: 5 minutes."""
SLOTS: Final = 16 * 12
"""Slots from 04:00 to 20:00 ET."""

_NS_PER_MS: Final = 1_000_000


class VolumeProfile(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A symbol's average cumulative volume at the end of each slot, as of ``trading_day``.

    Attributes:
        trading_day: The day the profile is for (only days before it are averaged).
        days: How many trading days were averaged (0: none: every figure is 0).
        cumulative: :data:`SLOTS` figures, each the average shares traded from 04:00 ET to the
            end of that slot; never decreasing.
    """

    trading_day: date
    days: int
    cumulative: tuple[float, ...]


def day_start_ms(day: date) -> int:
    """04:00 ET of ``day`` in epoch milliseconds."""
    return to_ns(datetime.combine(day, DAY_START, tzinfo=ET)) // _NS_PER_MS


def slot_of(at_ms: int, day: date) -> int:
    """The slot ``at_ms`` falls in on ``day`` (-1 before 04:00 ET, :data:`SLOTS` from 20:00)."""
    offset = at_ms - day_start_ms(day)
    if offset < 0:
        return -1
    return min(SLOTS, offset // SLOT_MS)


def build_profile(
    trading_day: date, minutes: Iterable[tuple[int, int]], *, days: int
) -> VolumeProfile:
    """The profile of ``trading_day`` from minute bars ``(start_ms, volume)`` of earlier days.

    Only the ``days`` most recent trading days before ``trading_day`` that have bars are
    averaged; bars outside 04:00-20:00 ET, of ``trading_day`` or later, or with a negative
    volume are ignored.
    """
    per_day: dict[date, list[int]] = {}
    # (day, its 04:00 ET) by UTC hour: one time-zone conversion per hour of bars, not per bar.
    hours: dict[int, tuple[date, int]] = {}
    for start_ms, volume in minutes:
        if volume < 0:
            continue
        hour = start_ms // 3_600_000
        known = hours.get(hour)
        if known is None:
            day_of = from_ns(start_ms * _NS_PER_MS, ET).date()
            known = hours[hour] = (day_of, day_start_ms(day_of))
        day, start_of_day = known
        if day >= trading_day:
            continue
        slot = (start_ms - start_of_day) // SLOT_MS
        if not 0 <= slot < SLOTS:
            continue
        slots = per_day.get(day)
        if slots is None:
            slots = per_day[day] = [0] * SLOTS
        slots[slot] += volume
    chosen = sorted(per_day)[-days:] if days > 0 else []
    totals = [0.0] * SLOTS
    for day in chosen:
        running = 0
        for index, volume in enumerate(per_day[day]):
            running += volume
            totals[index] += running
    count = len(chosen)
    cumulative = tuple(total / count for total in totals) if count else tuple(totals)
    return VolumeProfile(trading_day=trading_day, days=count, cumulative=cumulative)


def expected_volume(profile: VolumeProfile, at_ms: int) -> float:
    """The average cumulative volume by ``at_ms`` on the profile's day (interpolated in-slot).

    Before 04:00 ET it is 0; from 20:00 ET, the whole day's average.
    """
    if profile.days == 0 or len(profile.cumulative) != SLOTS:
        return 0.0
    offset = at_ms - day_start_ms(profile.trading_day)
    if offset <= 0:
        return 0.0
    slot, into = divmod(offset, SLOT_MS)
    if slot >= SLOTS:
        return profile.cumulative[-1]
    before = profile.cumulative[slot - 1] if slot > 0 else 0.0
    after = profile.cumulative[slot]
    return before + (after - before) * into / SLOT_MS


def relative_volume(profile: VolumeProfile | None, volume: int, at_ms: int) -> float | None:
    """Time-of-day RVol: ``volume`` traded by ``at_ms`` over the usual volume by then.

    None when there is no profile or the usual volume by then is zero (undefined, not infinite).
    Rounded to 4 decimals.
    """
    if profile is None:
        return None
    expected = expected_volume(profile, at_ms)
    if expected <= 0.0:
        return None
    return round(volume / expected, 4)


def lookback_start(trading_day: date, days: int) -> date:
    """The first calendar day to request so that ``days`` trading days before are covered.

    Weekends and up to a week of holidays: 7/5 of the trading days plus 10 calendar days.
    """
    return trading_day - timedelta(days=days * 7 // 5 + 10)
