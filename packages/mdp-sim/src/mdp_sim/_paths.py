"""Price and activity paths of a simulated day: the intraday volume curve and the role scripts.

A symbol's price is ``target(t) * exp(noise)``: the *target* is the story its role tells (a gap,
a run after news, a squeeze into a halt, a staircase of new highs), the noise is a per-trade
random walk (mean-reverting for role symbols so they follow their script). Activity is a
U-shaped curve over the day times a per-role multiplier.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from mdp_sim.scenario import Role, SymbolProfile

__all__ = [
    "BAND_GRID_MS",
    "MINUTE_MS",
    "RolePlan",
    "SessionBounds",
    "minute_activity",
    "minute_profile",
    "minute_weights",
    "plan_role",
    "second_spikes",
]

MINUTE_MS = 60_000
_SECOND_MS = 1_000
BAND_GRID_MS = 30_000
"""LULD bands are republished every 30 s from the open (see ``_tape``)."""

# A standard session, in minutes after 04:00 ET, used to normalise the activity curve so a
# normal day trades about its average volume and an early-close day less.
_STD_OPEN_MIN = 330
_STD_CLOSE_MIN = 720
_STD_END_MIN = 960


@dataclass(frozen=True, slots=True)
class SessionBounds:
    """The session boundaries of the simulated day, Unix ms."""

    day_start_ms: int
    open_ms: int
    close_ms: int
    end_ms: int


def _activity(minute: int, open_min: int, close_min: int) -> float:
    """Relative trade intensity of one minute: thin pre-market, U-shaped day, thin evening."""
    if minute < open_min:
        return 0.02 + 0.3 * math.exp(-(open_min - minute) / 25.0)
    if minute < close_min:
        r = (minute - open_min) / (close_min - open_min)
        return 1.0 + 4.0 * math.exp(-r * 14.0) + 2.5 * math.exp(-(1.0 - r) * 18.0)
    return 0.03 + 0.4 * math.exp(-(minute - close_min) / 20.0)


_STD_TOTAL = sum(_activity(m, _STD_OPEN_MIN, _STD_CLOSE_MIN) for m in range(_STD_END_MIN))


def minute_profile(bounds: SessionBounds) -> list[float]:
    """Fraction of a normal day's trades expected in each minute of the day (04:00 first)."""
    start = bounds.day_start_ms
    open_min = (bounds.open_ms - start) // MINUTE_MS
    close_min = (bounds.close_ms - start) // MINUTE_MS
    minutes = (bounds.end_ms - start) // MINUTE_MS
    return [_activity(m, open_min, close_min) / _STD_TOTAL for m in range(minutes)]


def second_spikes(bounds: SessionBounds) -> dict[int, float]:
    """Per-second multipliers of the opening and closing crosses (09:30:00 and 16:00:00)."""
    spikes: dict[int, float] = {}
    for offset in range(20):
        spikes[bounds.open_ms + offset * _SECOND_MS] = 1.0 + 40.0 * math.exp(-offset / 3.0)
    for offset in range(-10, 3):
        factor = 1.0 + (30.0 if offset == 0 else 4.0 * math.exp(-abs(offset) / 3.0))
        spikes[bounds.close_ms + offset * _SECOND_MS] = factor
    return spikes


def minute_activity(bounds: SessionBounds) -> list[float]:
    """Expected trades per minute from 04:00 per unit of a symbol's rate (crosses included).

    The tape's trade rate is the minute profile times the opening and closing cross spikes:
    a symbol of base rate ``b`` makes about ``b * activity[m]`` trades in minute ``m``.
    """
    profile = minute_profile(bounds)
    weights = list(profile)
    for at_ms, factor in second_spikes(bounds).items():
        minute = (at_ms - bounds.day_start_ms) // MINUTE_MS
        if 0 <= minute < len(weights):
            weights[minute] += profile[minute] * (factor - 1.0) / 60.0
    return weights


def minute_weights(bounds: SessionBounds) -> list[float]:
    """Expected share of a day's volume in each minute from 04:00 (crosses included).

    Generated minute history spread by these weights has the shape of a simulated day.
    """
    weights = minute_activity(bounds)
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else weights


@dataclass(frozen=True, slots=True)
class RolePlan:
    """The scripted story of one role symbol for one day.

    Attributes:
        role: which story.
        base: the price level the story starts from (previous close times the gap).
        size: the story's magnitude (run height, fade depth, step size, squeeze size).
        event_ms: when the story's trigger happens (news time; first squeeze; first step).
        interval_ms: spacing of repeated triggers (squeezes, staircase steps).
        count: how many repeated triggers (squeezes, staircase steps).
        bounds: the day's sessions.
    """

    role: Role
    base: float
    size: float
    event_ms: int
    interval_ms: int
    count: int
    bounds: SessionBounds

    def target(self, now_ms: int) -> float:
        """The scripted price level at ``now_ms``."""
        script = _TARGETS.get(self.role)
        return self.base if script is None else script(self, now_ms)

    def intensity(self, now_ms: int) -> float:
        """How many times busier than usual the symbol trades at ``now_ms``."""
        script = _INTENSITIES.get(self.role)
        return 1.0 if script is None else script(self, now_ms)


def _news_runner_target(plan: RolePlan, now_ms: int) -> float:
    """Flat until the article, then a run of ``size`` that builds over a quarter hour or so."""
    if now_ms < plan.event_ms:
        return plan.base
    ramp = 1.0 - math.exp(-(now_ms - plan.event_ms) / (12.0 * MINUTE_MS))
    return plan.base * (1.0 + plan.size * ramp)


def _fader_target(plan: RolePlan, now_ms: int) -> float:
    """Holds the gap in pre-market, then gives back ``size`` of it through the morning."""
    if now_ms < plan.bounds.open_ms:
        return plan.base
    decay = math.exp(-(now_ms - plan.bounds.open_ms) / (50.0 * MINUTE_MS))
    return plan.base * (1.0 - plan.size * (1.0 - decay))


def _halter_target(plan: RolePlan, now_ms: int) -> float:
    """Squeezes of ``size`` within 15 s, fast enough to reach the LULD band and pause."""
    level = plan.base
    for j in range(plan.count):
        start = plan.event_ms + j * plan.interval_ms
        if now_ms <= start:
            break
        level *= 1.0 + plan.size * min(1.0, (now_ms - start) / 15_000.0)
    return level


def _hod_runner_target(plan: RolePlan, now_ms: int) -> float:
    """A staircase: ``count`` steps of ``size``, each over two minutes, ``interval_ms`` apart."""
    if now_ms < plan.event_ms:
        return plan.base
    steps, into = divmod(now_ms - plan.event_ms, plan.interval_ms)
    if steps >= plan.count:
        return float(plan.base * math.pow(1.0 + plan.size, plan.count))
    exponent = steps + min(1.0, into / (2.0 * MINUTE_MS))
    return float(plan.base * math.pow(1.0 + plan.size, exponent))


def _gapper_intensity(plan: RolePlan, now_ms: int) -> float:
    """In play all pre-market, busy through the first hour, then merely active."""
    if now_ms < plan.bounds.open_ms:
        return 30.0
    return 6.0 if now_ms < plan.bounds.open_ms + 60 * MINUTE_MS else 2.0


def _news_runner_intensity(plan: RolePlan, now_ms: int) -> float:
    """Ordinary until the news, then a burst of interest that fades over the hours."""
    if now_ms < plan.event_ms:
        return 1.0
    return 2.0 + 25.0 * math.exp(-(now_ms - plan.event_ms) / (45.0 * MINUTE_MS))


def _halter_intensity(plan: RolePlan, now_ms: int) -> float:
    del plan, now_ms
    return 4.0


def _hod_runner_intensity(plan: RolePlan, now_ms: int) -> float:
    return 8.0 if now_ms < plan.bounds.open_ms else 5.0


_TARGETS: dict[Role, Callable[[RolePlan, int], float]] = {
    Role.NEWS_RUNNER: _news_runner_target,
    Role.FADER: _fader_target,
    Role.HALTER: _halter_target,
    Role.HOD_RUNNER: _hod_runner_target,
}
_INTENSITIES: dict[Role, Callable[[RolePlan, int], float]] = {
    Role.GAPPER_UP: _gapper_intensity,
    Role.GAPPER_DOWN: _gapper_intensity,
    Role.FADER: _gapper_intensity,
    Role.NEWS_RUNNER: _news_runner_intensity,
    Role.HALTER: _halter_intensity,
    Role.HOD_RUNNER: _hod_runner_intensity,
}


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def plan_role(
    profile: SymbolProfile, rng: random.Random, bounds: SessionBounds, first_ms: int
) -> RolePlan:
    """Draw the day's story for a role symbol.

    Triggers are placed at or after ``first_ms`` (the first simulated instant of the day) so a
    run that starts late in the day still sees the news, the squeezes and the steps.
    """
    prev = profile.prev_close
    role = profile.role
    start = max(first_ms, bounds.day_start_ms)
    regular_from = max(bounds.open_ms, start)
    latest = bounds.close_ms - 30 * MINUTE_MS
    size, event_ms, interval_ms, count, gap = 0.0, bounds.open_ms, 20 * MINUTE_MS, 0, 0.0
    if role is Role.GAPPER_UP:
        gap = rng.uniform(0.16, 0.6)
    elif role is Role.GAPPER_DOWN:
        gap = -rng.uniform(0.16, 0.4)
    elif role is Role.FADER:
        gap = rng.uniform(0.2, 0.5)
        size = gap / (1.0 + gap) * rng.uniform(0.6, 0.85)
    elif role is Role.NEWS_RUNNER:
        gap = rng.uniform(-0.02, 0.02)
        size = rng.uniform(0.25, 0.6)
        earliest = max(bounds.open_ms + 10 * MINUTE_MS, start + 3 * MINUTE_MS)
        event_ms = _clamp(earliest + rng.randrange(0, 30) * MINUTE_MS, start, bounds.end_ms)
    elif role is Role.HALTER:
        gap = rng.uniform(-0.02, 0.05)
        size = rng.uniform(0.14, 0.2)
        # Squeezes start one second after a 30 s band update (bands are published on a grid
        # from the open), so the whole move lands against one reference price and breaks it.
        earliest = max(bounds.open_ms + 16 * MINUTE_MS, regular_from + 2 * MINUTE_MS)
        earliest += rng.randrange(0, 8) * MINUTE_MS
        grid = -(-(earliest - bounds.open_ms) // BAND_GRID_MS) * BAND_GRID_MS
        event_ms = bounds.open_ms + grid + _SECOND_MS
        interval_ms = rng.randrange(20, 40) * MINUTE_MS
        count = max(0, min(3, (latest - event_ms) // interval_ms + 1))
    elif role is Role.HOD_RUNNER:
        gap = rng.uniform(0.03, 0.12)
        size = rng.uniform(0.015, 0.03)
        event_ms = regular_from
        interval_ms = rng.randrange(6, 14) * MINUTE_MS
        count = rng.randint(8, 12)
    return RolePlan(
        role=role,
        base=prev * (1.0 + gap),
        size=size,
        event_ms=(event_ms // _SECOND_MS) * _SECOND_MS,
        interval_ms=interval_ms,
        count=count,
        bounds=bounds,
    )
