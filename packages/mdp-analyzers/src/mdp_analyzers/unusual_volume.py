"""Unusual volume: a symbol's time-of-day relative volume crossing configured thresholds.

Runs in the scanner on the quote records (``quote:{symbol}``), whose ``rvol_tod`` is the day's
volume so far over the average volume traded by the same time of day over the last N trading
days (:mod:`mdp_cache.volume_profile`). Traders watch it to spot unusual activity early: a
stock trading 5x its usual volume by 08:15 is news, whatever its whole-day average says.

Rules (list feed ``alerts:volume``, newest first by ``as_of_ms``):

* Each threshold alerts at most once per symbol and trading day: the first record whose RVol
  reaches it, stamped with that record's event time (its bar end).
* A record that jumps past several thresholds raises one alert, for the highest; the lower ones
  count as crossed (a 1x -> 6x jump is one "5x" alert, not three).
* Records with less than ``rvol_min_volume`` shares traded are ignored: 3x of 300 shares at
  04:05 is noise.
* Records of a trading day already over are ignored; state is dropped at 04:00 ET.
* Each alert's identity is ``symbol|day|threshold``, so replicas and a restarted scanner (which
  starts with no state and sees the symbol already past its thresholds) append it once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.alerts import AlertQueue, DayClock, decode_quote_seen
from mdp_analyzers.typing import FeedMessage, Output
from mdp_cache.keys import FEED_ALERTS_VOLUME, FEED_QUOTE
from mdp_core.calendar import MarketCalendar
from mdp_core.errors import MalformedInput

__all__ = ["DEFAULT_RVOL_THRESHOLDS", "UnusualVolumeAlert", "UnusualVolumeAnalyzer"]

DEFAULT_RVOL_THRESHOLDS: Final = (2.0, 3.0, 5.0, 10.0)


class UnusualVolumeAlert(msgspec.Struct, kw_only=True):
    """One element of ``alerts:volume``."""

    symbol: str
    trading_day: str
    threshold: float
    rvol_tod: float
    volume: int
    price: float
    pct_change: float | None
    note: str
    as_of_ms: int


def _ratio(value: float) -> str:
    return f"{value:g}x"


class UnusualVolumeAnalyzer:
    """Time-of-day RVol threshold crossings per symbol (see the module docstring).

    Args:
        calendar: The market calendar (trading days).
        rvol_thresholds: The RVol levels that alert, e.g. ``(2, 3, 5, 10)``.
        rvol_min_volume: Shares a symbol must have traded today before it can alert.

    Raises:
        ValueError: no threshold, or one not above 0.
    """

    name: ClassVar[str] = "unusual_volume"
    consumes: ClassVar[frozenset[str]] = frozenset({FEED_QUOTE.pattern})

    def __init__(
        self,
        calendar: MarketCalendar | None = None,
        *,
        rvol_thresholds: Sequence[float] = DEFAULT_RVOL_THRESHOLDS,
        rvol_min_volume: int = 10_000,
    ) -> None:
        thresholds = tuple(sorted(set(rvol_thresholds)))
        if not thresholds or thresholds[0] <= 0:
            msg = f"RVol thresholds must be above 0; they were {rvol_thresholds!r}"
            raise ValueError(msg)
        self.thresholds = thresholds
        self.min_volume = rvol_min_volume
        self._clock = DayClock(calendar or MarketCalendar())
        #: Per symbol: how many thresholds (from the lowest) it crossed today.
        self._crossed: dict[str, int] = {}
        self._alerts = AlertQueue(FEED_ALERTS_VOLUME)

    @property
    def rejected(self) -> Counter[str]:
        """Inputs skipped, by reason (``invalid_json``, ``missing_field``, ``stale_day``...)."""
        return self._alerts.rejected

    def apply(self, inputs: Sequence[object], now_ns: int) -> None:
        """Fold a batch of quote records; anything else is ignored."""
        self._roll(now_ns)
        for message in inputs:
            if not isinstance(message, FeedMessage) or not FEED_QUOTE.matches(message.name):
                continue
            try:
                seen = decode_quote_seen(message.payload)
            except MalformedInput as exc:
                self._alerts.reject(exc)
                continue
            if self._clock.is_stale(seen.trading_day):
                self.rejected["stale_day"] += 1
                continue
            if self._clock.is_ahead(seen.trading_day, now_ns):
                self.rejected["future_day"] += 1
                continue
            rvol = seen.rvol_tod
            if rvol is None or seen.accumulated_volume < self.min_volume:
                continue
            done = self._crossed.get(seen.symbol, 0)
            reached = sum(1 for level in self.thresholds if rvol >= level)
            if reached <= done:
                continue
            self._crossed[seen.symbol] = reached
            threshold = self.thresholds[reached - 1]
            alert = UnusualVolumeAlert(
                symbol=seen.symbol,
                trading_day=seen.trading_day,
                threshold=threshold,
                rvol_tod=rvol,
                volume=seen.accumulated_volume,
                price=seen.price,
                pct_change=seen.pct_change,
                note=f"RVol {rvol:.1f}x crossed {_ratio(threshold)}",
                as_of_ms=seen.end_ms,
            )
            identity = f"{seen.symbol}|{seen.trading_day}|{threshold:g}"
            self._alerts.raise_alert(alert, as_of_ms=seen.end_ms, identity=identity)

    def collect(self, now_ns: int) -> Output:
        """The alerts raised since the last call, in event-time order."""
        self._roll(now_ns)
        return Output(widgets=self._alerts.take())

    def _roll(self, now_ns: int) -> None:
        if self._clock.roll(now_ns):
            self._crossed.clear()
