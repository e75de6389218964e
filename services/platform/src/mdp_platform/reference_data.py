"""Reference data straight from the simulated market, for the in-process demo.

The demo's processor runs in the same process as the simulator, so it reads the market's
reference views directly instead of through the REST stub (which the listener-side tests and the
benchmark exercise); the rows are the same either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date

from mdp_cache.records import DailyBar
from mdp_cache.reference import daily_bar_from_agg, daily_bars_by_ticker
from mdp_sim.market import Market

__all__ = ["SimReferenceSource"]


class SimReferenceSource:
    """A :class:`mdp_cache.reference.BulkReferenceSource` over a :class:`mdp_sim.market.Market`.

    Also a :class:`mdp_cache.reference.SlotVolumeSource` (time-of-day volume profiles).
    """

    def __init__(self, market: Market) -> None:
        self._market = market

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        """The market's completed daily bars of ``symbol`` within ``[start, end]``."""
        rows = self._market.daily_bars(symbol, start, end)
        return [bar for bar in map(daily_bar_from_agg, rows) if bar is not None]

    async def free_float(self, symbol: str) -> int | None:
        """The free float of ``symbol`` in shares."""
        row = self._market.free_float(symbol)
        value = None if row is None else row.get("free_float")
        return value if isinstance(value, int) else None

    async def slot_volumes(self, symbol: str, start: date, end: date) -> Sequence[tuple[int, int]]:
        """``(start_ms, volume)`` of the market's generated 5-minute history of ``symbol``."""
        rows = await asyncio.to_thread(self._market.minute_bars, symbol, start, end, 5)
        return [(int(row["t"]), int(row["v"])) for row in rows]  # type: ignore[call-overload]

    async def grouped_daily(self, day: date) -> Mapping[str, DailyBar]:
        """Every symbol's daily bar of ``day``."""
        return daily_bars_by_ticker(self._market.grouped_daily(day))

    async def free_floats(self) -> Mapping[str, int]:
        """Every symbol's free float in shares."""
        found: dict[str, int] = {}
        for symbol in self._market.profiles:
            value = await self.free_float(symbol)
            if value is not None:
                found[symbol] = value
        return found
