"""Today's one-minute bars of each symbol, for the dashboard's intraday chart and sparklines.

The minute in progress is built from the second bars (``A``) received so far, so the chart moves
every second; the minute bar (``AM``) replaces it when it arrives. Each element carries a version
``n`` that orders the writes of one minute across replicas (see :mod:`mdp_cache.series`): twice
the end of the latest second folded in, and twice the minute's end plus one for the minute bar,
so the vendor's minute bar beats every bar built from seconds, and a bar built from more recent
seconds beats an older one. A second bar delivered twice is folded once (keyed by its start).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import msgspec

from mdp_analyzers.board import bar_problem
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import FEED_MINUTE_BARS
from mdp_core.clock import ET
from mdp_core.events import MinuteAggregate, SecondAggregate

__all__ = ["MINUTE_MS", "MinuteBar", "MinuteBook", "trading_day_number"]

MINUTE_MS: Final = 60_000


class MinuteBar(msgspec.Struct, frozen=True, gc=False):
    """One element of a ``bars:{symbol}`` series.

    ``t``, ``d`` and ``n`` come first: the merge reads them with a pattern
    (:mod:`mdp_cache.series`).
    """

    t: int
    d: int
    n: int
    o: float
    h: float
    l: float  # noqa: E741 - the wire's one-letter OHLCV names, as the vendor's bars use them
    c: float
    v: float


_ENCODER: Final = msgspec.json.Encoder()


def trading_day_number(start_ms: int) -> int:
    """The New York calendar date of an instant as ``YYYYMMDD`` (bars run 04:00-20:00 ET)."""
    day = datetime.fromtimestamp(start_ms / 1000, ET).date()
    return day.year * 10_000 + day.month * 100 + day.day


@dataclass(slots=True)
class _Building:
    """The seconds of one symbol's minute in progress, by second start (duplicates fold once).

    The bar's figures are kept up to date as seconds arrive (a bar is taken after nearly every
    second: rebuilding it from every second so far cost a sort per take); a second replaced by
    a later version of itself, which is rare, has them recomputed from the seconds.
    """

    minute: int
    seconds: dict[int, SecondAggregate] = field(default_factory=dict)
    #: The first and last second (by start), highest high, lowest low, volume, latest end.
    _first: SecondAggregate | None = None
    _last: SecondAggregate | None = None
    _high: float = 0.0
    _low: float = 0.0
    _volume: float = 0.0
    _end_ms: int = 0

    def add(self, event: SecondAggregate) -> bool:
        """Fold one second; whether it was kept (not an older version of a second held)."""
        old = self.seconds.get(event.start_ms)
        if old is not None and event.end_ms < old.end_ms:
            return False
        self.seconds[event.start_ms] = event
        if old is not None or self._first is None or self._last is None:
            self._recompute()  # a second replaced, or the minute's first
        else:
            if event.start_ms < self._first.start_ms:
                self._first = event
            if event.start_ms > self._last.start_ms:
                self._last = event
            self._high = max(self._high, event.high)
            self._low = min(self._low, event.low)
            self._volume += event.volume
            self._end_ms = max(self._end_ms, event.end_ms)
        return True

    def _recompute(self) -> None:
        held = self.seconds.values()
        self._first = min(held, key=lambda e: e.start_ms)
        self._last = max(held, key=lambda e: e.start_ms)
        self._high = max(e.high for e in held)
        self._low = min(e.low for e in held)
        self._volume = sum(e.volume for e in held)
        self._end_ms = max(e.end_ms for e in held)

    def bar(self, day: int) -> MinuteBar | None:
        """The minute's bar so far (None before its first second)."""
        if self._first is None or self._last is None:
            return None
        return MinuteBar(
            t=self.minute,
            d=day,
            n=2 * self._end_ms,
            o=self._first.open,
            h=self._high,
            l=self._low,
            c=self._last.close,
            v=self._volume,
        )


class MinuteBook:
    """Folds aggregates into minute bars; :meth:`take` returns the bars changed since last time."""

    def __init__(self) -> None:
        #: Bars skipped, by reason (see :meth:`fold`).
        self.rejected: Counter[str] = Counter()
        self._building: dict[str, _Building] = {}
        self._final: dict[tuple[str, int], MinuteAggregate] = {}
        self._changed: dict[tuple[str, int], None] = {}
        self._days: dict[int, int] = {}

    def fold(self, event: SecondAggregate | MinuteAggregate) -> None:
        """Fold one second or minute bar of a symbol; a bar that cannot be right is skipped.

        Skipped as the leaderboard drops it (:func:`~mdp_analyzers.board.bar_problem`), and
        counted in :attr:`rejected`; the leaderboard counts the same bars in the processor's
        ``bad_events``.
        """
        problem = bar_problem(event)
        if problem is not None:
            self.rejected[problem] += 1
            return
        minute = event.start_ms - event.start_ms % MINUTE_MS
        key = (event.symbol, minute)
        if isinstance(event, MinuteAggregate):
            old = self._final.get(key)
            if old is None or event.end_ms >= old.end_ms:
                self._final[key] = event
                self._changed[key] = None
            return
        building = self._building.get(event.symbol)
        if building is None or building.minute < minute:
            building = self._building[event.symbol] = _Building(minute)
        elif building.minute > minute:
            return  # a late second of a minute already left behind: its minute bar corrects it
        if building.add(event):
            self._changed[key] = None

    def _day(self, minute: int) -> int:
        day = self._days.get(minute)
        if day is None:
            if len(self._days) > 4_096:
                self._days.clear()
            day = self._days[minute] = trading_day_number(minute)
        return day

    def take(self) -> list[WidgetWrite]:
        """One write per (symbol, minute) changed since the last call."""
        writes: list[WidgetWrite] = []
        for symbol, minute in self._changed:
            final = self._final.pop((symbol, minute), None)
            day = self._day(minute)
            bar: MinuteBar | None = None
            if final is not None:
                bar = MinuteBar(
                    t=minute,
                    d=day,
                    n=2 * final.end_ms + 1,
                    o=final.open,
                    h=final.high,
                    l=final.low,
                    c=final.close,
                    v=final.volume,
                )
            elif (building := self._building.get(symbol)) is not None and building.minute == minute:
                bar = building.bar(day)
            if bar is None:
                continue
            name = FEED_MINUTE_BARS.of(symbol)
            writes.append(WidgetWrite(FEED_MINUTE_BARS, name, _ENCODER.encode(bar)))
        self._changed = {}
        return writes
