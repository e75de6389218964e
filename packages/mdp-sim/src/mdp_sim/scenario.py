"""What a simulated market day is made of: the knobs (:class:`ScenarioConfig`) and the universe.

A scenario is fully determined by its configuration: the same seed and symbol count always give
the same tickers, previous-day bars, floats and scenario roles, so tests, demos and benchmarks
can be replayed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum

__all__ = ["MAX_SYMBOLS", "Role", "ScenarioConfig", "ScenarioError", "SymbolProfile"]

MAX_SYMBOLS = 10_000
"""Largest universe the generator promises to build quickly (about the size of the US market)."""


class ScenarioError(ValueError):
    """A scenario configuration that cannot describe a market (bad symbol count, rate, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioConfig:
    """The knobs of one simulated market run.

    Attributes:
        seed: root of every random draw; the same seed gives the same stream.
        symbols: universe size, 1 .. :data:`MAX_SYMBOLS`.
        trading_day: the ET date simulated; ``None`` picks the most recent trading day.
        start: ET wall time the simulated clock starts at (e.g. 03:59 to watch the 04:00 reset).
        quotes: generate NBBO ``Q`` events (by far the most numerous).
        second_aggregates: generate per-second ``A`` bars.
        minute_aggregates: generate per-minute ``AM`` bars.
        news_per_hour: average rate of background Finlight articles.
        activity: multiplier on trade intensity, for load tests.
    """

    seed: int = 7
    symbols: int = 300
    trading_day: date | None = None
    start: time = time(9, 25)
    quotes: bool = True
    second_aggregates: bool = True
    minute_aggregates: bool = True
    news_per_hour: float = 30.0
    activity: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.symbols <= MAX_SYMBOLS:
            msg = f"symbols must be within 1..{MAX_SYMBOLS}; it was {self.symbols}"
            raise ScenarioError(msg)
        if self.news_per_hour < 0:
            msg = f"news_per_hour must not be negative; it was {self.news_per_hour}"
            raise ScenarioError(msg)
        if not self.activity > 0:
            msg = f"activity must be positive; it was {self.activity}"
            raise ScenarioError(msg)


class Role(StrEnum):
    """The part a symbol plays in the day's story; scanners should find the non-normal ones."""

    NORMAL = "normal"
    GAPPER_UP = "gapper_up"
    GAPPER_DOWN = "gapper_down"
    NEWS_RUNNER = "news_runner"
    FADER = "fader"
    HALTER = "halter"
    HOD_RUNNER = "hod_runner"


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolProfile:
    """Reference data of one simulated symbol as of the start of the trading day.

    ``avg_volume`` is exactly the mean of the last 30 daily bars served over REST, and the
    ``prev_*`` fields are exactly the last of those bars.
    """

    symbol: str
    name: str
    primary_exchange: str
    role: Role
    prev_open: float
    prev_high: float
    prev_low: float
    prev_close: float
    prev_volume: int
    prev_vwap: float
    avg_volume: int
    shares_outstanding: int
    free_float: int
