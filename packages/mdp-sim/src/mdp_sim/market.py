"""The synthetic market: a seeded stream of Massive events and Finlight articles, plus REST views.

Interface skeleton: the generator is filled in behind these signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ET, LiveClock, to_ns
from mdp_sim.scenario import Role, ScenarioConfig, SymbolProfile

__all__ = ["Market", "MarketUpdate", "event_time_ms"]

_NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """Everything the market produced over one stretch of simulated time.

    Attributes:
        events: Massive wire events (keys exactly as on the wire), in non-decreasing time order
            (``t`` for T/Q/LULD/NOI, the window end ``e`` for A/AM, see :func:`event_time_ms`).
        articles: Finlight article dicts with camelCase wire keys, in publication order.
    """

    events: list[dict[str, object]]
    articles: list[dict[str, object]]


def event_time_ms(event: Mapping[str, object]) -> int:
    """The instant (Unix ms) an event belongs to: ``t``, or the window end ``e`` for bars."""
    stamp = event.get("t", event.get("e", 0))
    return stamp if isinstance(stamp, int) else 0


class Market:
    """A deterministic synthetic market day (skeleton)."""

    def __init__(self, config: ScenarioConfig, calendar: MarketCalendar | None = None) -> None:
        self.config = config
        self.calendar = calendar if calendar is not None else MarketCalendar()
        day = config.trading_day
        if day is None:
            day = self.calendar.trading_day(LiveClock().now_ns())
        self.trading_day: date = day
        self.profiles: Mapping[str, SymbolProfile] = {
            f"SIM{i}": SymbolProfile(
                symbol=f"SIM{i}",
                name=f"Simulated {i} Inc.",
                primary_exchange="XNAS",
                role=Role.NORMAL,
                prev_open=10.0,
                prev_high=10.5,
                prev_low=9.5,
                prev_close=10.0,
                prev_volume=1_000_000,
                prev_vwap=10.0,
                avg_volume=1_000_000,
                shares_outstanding=50_000_000,
                free_float=40_000_000,
            )
            for i in range(config.symbols)
        }
        self._now_ns = to_ns(datetime.combine(day, config.start, tzinfo=ET))

    @property
    def now_ns(self) -> int:
        """The simulated UTC instant (ns) reached so far."""
        return self._now_ns

    def advance(self, until_ns: int) -> MarketUpdate:
        """Return everything that happens in ``(now_ns, until_ns]`` and move the clock there."""
        self._now_ns = max(self._now_ns, until_ns)
        return MarketUpdate(events=[], articles=[])

    def take(self, n: int) -> MarketUpdate:
        """Return at least ``n`` events (whole instants), moving the clock as far as needed."""
        del n
        return MarketUpdate(events=[], articles=[])

    def snapshot(self, symbol: str) -> dict[str, object] | None:
        """The ``TickerSnapshot`` wire row of ``symbol`` (None if unknown)."""
        prof = self.profiles.get(symbol)
        if prof is None:
            return None
        return {"ticker": symbol, "todaysChange": 0.0, "todaysChangePerc": 0.0, "updated": 0}

    def snapshot_all(self, symbols: Sequence[str] | None = None) -> list[dict[str, object]]:
        """Snapshot rows of ``symbols`` (all when None), unknown symbols left out."""
        wanted = list(self.profiles) if symbols is None else symbols
        return [row for s in wanted if (row := self.snapshot(s)) is not None]

    def previous_close(self, symbol: str) -> dict[str, object] | None:
        """The ``/v2/aggs/ticker/{T}/prev`` results row."""
        prof = self.profiles.get(symbol)
        if prof is None:
            return None
        return {"T": symbol, "o": prof.prev_open, "h": prof.prev_high, "l": prof.prev_low,
                "c": prof.prev_close, "v": prof.prev_volume, "vw": prof.prev_vwap, "t": 0, "n": 1}

    def daily_bars(self, symbol: str, start: date, end: date) -> list[dict[str, object]]:
        """Daily ``Agg`` rows (o,h,l,c,v,vw,t,n) of ``symbol`` for trading days in [start, end]."""
        del symbol, start, end
        return []

    def grouped_daily(self, day: date) -> list[dict[str, object]]:
        """Every symbol's daily bar of ``day`` (T,o,h,l,c,v,vw,t,n)."""
        del day
        return []

    def ticker_details(self, symbol: str) -> dict[str, object] | None:
        """The ``/v3/reference/tickers/{T}`` results object."""
        prof = self.profiles.get(symbol)
        return None if prof is None else {"ticker": symbol, "name": prof.name}

    def free_float(self, symbol: str) -> dict[str, object] | None:
        """A ``/stocks/vX/float`` ``FinancialFloat`` row."""
        prof = self.profiles.get(symbol)
        return None if prof is None else {"ticker": symbol, "free_float": prof.free_float}

    def market_status(self, at_ns: int) -> dict[str, object]:
        """The ``/v1/marketstatus/now`` body at ``at_ns``."""
        del at_ns
        return {"market": "closed", "earlyHours": False, "afterHours": False}

    def upcoming_holidays(self, at_ns: int) -> list[dict[str, object]]:
        """The ``/v1/marketstatus/upcoming`` body at ``at_ns``."""
        del at_ns
        return []


_ = time
