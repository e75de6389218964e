"""Reference data records: what the MDC knows about a symbol for one trading day.

Pure data, no I/O: analyzers import these to fill leaderboard rows, while
:mod:`mdp_cache.reference` fetches and caches them.
"""

from __future__ import annotations

from datetime import date

import msgspec

from mdp_cache.volume_profile import VolumeProfile

__all__ = ["DailyBar", "ReferenceData"]


class DailyBar(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One completed trading day's bar."""

    day: date
    open: float
    high: float
    low: float
    close: float
    volume: int
    vwap: float | None = None


class ReferenceData(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Reference data of ``symbol`` as of ``trading_day``; every part may be unknown.

    Attributes:
        symbol: The ticker.
        trading_day: The trading day this applies to (``prev_day`` is the day before it).
        prev_day: The previous completed trading day's bar.
        avg_volume: Mean daily volume over up to 30 completed days before ``trading_day``
            (today's partial bar never included).
        free_float: Shares available to trade.
        volume_profile: Average cumulative volume by time of day over the last N trading days
            (:mod:`mdp_cache.volume_profile`); not part of :attr:`completeness`.
    """

    symbol: str
    trading_day: date
    prev_day: DailyBar | None = None
    avg_volume: float | None = None
    free_float: int | None = None
    volume_profile: VolumeProfile | None = None

    @property
    def completeness(self) -> int:
        """A 0-7 bit mask of the known parts: a row with more reference data wins a tie."""
        return (
            (4 if self.prev_day is not None else 0)
            | (2 if self.avg_volume is not None else 0)
            | (1 if self.free_float is not None else 0)
        )

    @classmethod
    def from_bars(
        cls, symbol: str, trading_day: date, bars: list[DailyBar], free_float: int | None
    ) -> ReferenceData:
        """Derive the record from daily bars (any order; bars on or after the day are ignored)."""
        completed = sorted((bar for bar in bars if bar.day < trading_day), key=lambda b: b.day)
        last30 = completed[-30:]
        avg = sum(bar.volume for bar in last30) / len(last30) if last30 else None
        return cls(
            symbol=symbol,
            trading_day=trading_day,
            prev_day=completed[-1] if completed else None,
            avg_volume=avg,
            free_float=free_float,
        )
