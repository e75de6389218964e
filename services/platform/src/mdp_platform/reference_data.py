"""Reference data straight from the simulated market, for the in-process demo.

The demo's processor runs in the same process as the simulator, so it reads the market's
reference views directly instead of through the REST stub (which the listener-side tests and the
benchmark exercise); the rows are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from mdp_cache.records import DailyBar
from mdp_cache.reference import daily_bar_from_agg
from mdp_sim.market import Market

__all__ = ["SimReferenceSource"]


class SimReferenceSource:
    """A :class:`mdp_cache.reference.ReferenceSource` over a :class:`mdp_sim.market.Market`."""

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
