"""Today's one-minute bars of each symbol, for the dashboard's intraday chart and sparklines.

The minute in progress is built from the second bars (``A``) received so far, so the chart moves
every second; the minute bar (``AM``) replaces it when it arrives. Each element carries a version
``n`` that orders the writes of one minute across replicas (see :mod:`mdp_cache.series`): the
vendor's minute bar ranks first; a bar of seconds ranks by how far its seconds run unbroken from
the minute's start, which their day volumes prove (:class:`_Building`), then by the seconds held
past a gap; a bar without the minute's start ranks last. So a processor holding only part of a
minute (after a handoff, or one of several consumers of a partition) never replaces the bar of
the one that held its start. A second bar delivered twice is folded once (keyed by its start).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
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


#: How far an element built from seconds not known to run from the minute's start ranks
#: below one that is (subtracted from twice its end): every bar of a verified run wins, for
#: corrections up to a minute late.
_UNVERIFIED: Final = 4 * MINUTE_MS
#: A second bar's span: a verified run is versioned by its last second's start plus this
#: (never by a correction's later end, which would outrank a longer run).
_SECOND_MS: Final = 1_000
#: A bar of the run and seconds past a gap is ranked by how far its seconds reach past the
#: run, in steps this long, at most this many (below the next second's run: 2 * 1,000 ms).
_PAST_STEP_MS: Final = 60
_PAST_STEPS: Final = 998


@dataclass(slots=True)
class _Run:
    """Running figures of a set of seconds of one minute: first and last, extremes, volume."""

    first: SecondAggregate | None = None
    last: SecondAggregate | None = None
    high: float = 0.0
    low: float = 0.0
    volume: float = 0.0
    end_ms: int = 0

    @classmethod
    def of(cls, seconds: Iterable[SecondAggregate]) -> _Run:
        run = cls()
        for second in seconds:
            run.add(second)
        return run

    def add(self, event: SecondAggregate) -> None:
        first, last = self.first, self.last
        if first is None or last is None:
            self.first = self.last = event
            self.high, self.low = event.high, event.low
            self.volume, self.end_ms = event.volume, event.end_ms
            return
        if event.start_ms < first.start_ms:
            self.first = event
        if event.start_ms > last.start_ms:
            self.last = event
        self.high = max(self.high, event.high)
        self.low = min(self.low, event.low)
        self.volume += event.volume
        self.end_ms = max(self.end_ms, event.end_ms)

    def bar(self, minute: int, day: int, n: int) -> MinuteBar | None:
        if self.first is None or self.last is None:
            return None
        return MinuteBar(
            t=minute,
            d=day,
            n=n,
            o=self.first.open,
            h=self.high,
            l=self.low,
            c=self.last.close,
            v=self.volume,
        )


@dataclass(slots=True)
class _Building:
    """The seconds of one symbol's minute in progress, by second start (duplicates fold once).

    A processor that took a symbol over mid-minute, or one of several consumers of a
    partition, holds only some of the minute's seconds: a bar of them would end later than
    the fuller bar of the processor that held the start, outrank it and shrink the chart's
    volume, high and low. So the book finds the *verified run*, the seconds that provably are
    all of the minute's from its start: the run's first second's day volume before it
    (``av - v``) equals the day volume when the minute began (0 for the day's first trade),
    and each next second's equals the previous one's ``av``. Versions (``n``), highest wins:

    * the minute bar (``AM``): twice the minute's end, plus one;
    * the run and every second held past a gap in it (or of no volume, which proves nothing):
      twice the run's end (its last second's start plus a second), plus one, plus how far
      the latest held second reaches past the run (so a sole owner that lost a second
      still moves the chart, and never past a longer run);
    * the run alone, when it is every second held: twice its end; exactly the minute's
      seconds up to then, so a longer run outranks it and a shorter one never does;
    * no run (the minute's start unknown): every second held, ranked below every run.

    The figures are kept up to date as seconds arrive (a bar is taken after nearly every
    second): the run's and those of every second held. A second
    replaced by a later version of itself (rare) has them made again, and its run stops
    wherever the new version's volumes no longer chain: the chart then keeps the longer run
    another writer stored, not the corrected figures, until the minute bar.
    """

    minute: int
    #: The day volume when the minute began, as far as the book knows (None: unknown).
    prior: int | None = None
    seconds: dict[int, SecondAggregate] = field(default_factory=dict)
    #: The start of each held second outside the run by the day volume before it (``av - v``).
    _by_before: dict[int, int] = field(default_factory=dict)
    #: Figures of every held second (a bar past a gap, or with no run), kept up to date while
    #: ``_held_live``; not while the run holds every second (then they are the run's).
    _held: _Run = field(default_factory=_Run)
    _held_live: bool = True
    _run: _Run = field(default_factory=_Run)
    #: The day volume at the end of the verified run (None: no run yet), its last second's
    #: start and how many seconds it holds.
    _run_av: int | None = None
    _run_last: int = -1
    _run_count: int = 0

    def add(self, event: SecondAggregate) -> bool:
        """Fold one second; whether anything changed (not a copy or an older version)."""
        start = event.start_ms
        old = self.seconds.get(start)
        if old is not None and (event.end_ms < old.end_ms or event == old):
            return False
        self.seconds[start] = event
        if old is not None:
            self._replace()
            return True
        if self._held_live:
            self._held.add(event)
        if not event.volume:
            self._hold_all()  # no volume: its place in the run cannot be proved
            return True
        before = event.accumulated_volume - event.volume
        if self._run_av is None:
            self._by_before[before] = start
            if before in {0, self.prior}:  # it may begin the run
                self._extend()
        elif before == self._run_av and start > self._run_last:
            # The run's next second (nearly always: the latest second, in order).
            self._run.add(event)
            self._run_av, self._run_last = event.accumulated_volume, start
            self._run_count += 1
            if self._by_before:  # seconds held past a gap it may have closed
                self._extend()
        else:
            self._by_before[before] = start
            self._hold_all()
        return True

    def _hold_all(self) -> None:
        """Keep the figures of every held second from now on (made once from the seconds)."""
        if not self._held_live:
            self._held = _Run.of(self.seconds.values())
            self._held_live = True

    def _replace(self) -> None:
        """A second replaced by a later version of itself (rare): the figures made again."""
        self._held, self._held_live = _Run.of(self.seconds.values()), True
        self._run, self._run_av, self._run_last, self._run_count = _Run(), None, -1, 0
        self._by_before = {
            held.accumulated_volume - held.volume: held.start_ms
            for held in self.seconds.values()
            if held.volume
        }
        self._extend()

    def closing(self, limit_ms: int) -> tuple[int, int]:
        """The latest end by ``limit_ms`` of a held second, and the day volume then (or 0s).

        A second's end is its start plus a second: a version sent late says the same.
        """
        end = self._run_last + _SECOND_MS
        if not self._held_live and self._run_av is not None and end <= limit_ms:
            return (end, self._run_av)  # the run is every second held: its last is the latest
        ends = (
            (min(e.end_ms, e.start_ms + _SECOND_MS), e.accumulated_volume)
            for e in self.seconds.values()
        )
        return max((mark for mark in ends if mark[0] <= limit_ms), default=(0, 0))

    def learn_prior(self, volume: int) -> bool:
        """The day volume at the minute's start, learned late (the previous minute's bar).

        Whether that started the verified run (the bar changed).
        """
        if self._run_av is not None or self.prior == volume:
            return False
        self.prior = volume
        self._extend()
        return self._run_av is not None

    def _extend(self) -> None:
        """Start the verified run if a held second begins it, and extend it as far as held."""
        by_before = self._by_before
        volume = self._run_av
        started = volume is None
        if volume is None:
            starts = [by_before.get(0), by_before.get(self.prior) if self.prior else None]
            found = [start for start in starts if start is not None]
            if not found:
                return
            first = self.seconds[min(found)]
            del by_before[first.accumulated_volume - first.volume]
            self._run.add(first)
            self._run_last, self._run_count = first.start_ms, 1
            volume = self._run_av = first.accumulated_volume
        while (following := by_before.get(volume)) is not None and following > self._run_last:
            second = self.seconds[following]
            del by_before[volume]
            self._run.add(second)
            volume = self._run_av = second.accumulated_volume
            self._run_last = following
            self._run_count += 1
        if started and self._run_count == len(self.seconds):
            # The run's figures are every second's; once a gap was seen, both are kept.
            self._held_live = False

    def verified(self) -> str:
        """How far the seconds held were proved to run from the minute's start.

        ``verified`` (every second held with volume is in the run; a second without volume
        proves nothing either way), ``gapped`` (a run, and seconds with volume held past it:
        a second lost, or a correction whose volumes no longer chain) or ``unverified`` (no
        run: the minute's start is unknown).
        """
        if self._run_av is None:
            return "unverified"
        traded = sum(1 for second in self.seconds.values() if second.volume)
        return "verified" if self._run_count == traded else "gapped"

    def bar(self, day: int) -> MinuteBar | None:
        """The minute's bar so far (None before its first second)."""
        if self._run_av is None:
            return self._held.bar(self.minute, day, 2 * self._held.end_ms - _UNVERIFIED)
        frontier = self._run_last + _SECOND_MS
        if self._run_count == len(self.seconds):
            return self._run.bar(self.minute, day, 2 * frontier)
        # Past a gap: later seconds rank higher, all below a run reaching one second further.
        held = self._held
        past = min(_PAST_STEPS, max(0, held.end_ms - frontier) // _PAST_STEP_MS)
        return held.bar(self.minute, day, 2 * frontier + 1 + 2 * past)


class MinuteBook:
    """Folds aggregates into minute bars; :meth:`take` returns the bars changed since last time."""

    def __init__(self) -> None:
        #: Bars skipped, by reason (see :meth:`fold`).
        self.rejected: Counter[str] = Counter()
        #: Minutes of seconds left behind (the symbol's next minute began), by how far their
        #: seconds were verified (:meth:`_Building.verified`). The run rests on the vendor's
        #: ``av`` being the running sum of the seconds' ``v``: if it is not, nearly every
        #: minute is ``unverified``; lost seconds make minutes ``gapped``. A symbol's first
        #: minute after a start or a handoff is ``unverified`` by nature.
        self.closed: Counter[str] = Counter()
        self._building: dict[str, _Building] = {}
        self._final: dict[tuple[str, int], MinuteAggregate] = {}
        self._changed: dict[tuple[str, int], None] = {}
        self._days: dict[int, int] = {}
        #: Each symbol's latest minute bar's end and the day volume then.
        self._minute_volume: dict[str, tuple[int, int]] = {}

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
        symbol = event.symbol
        minute = event.start_ms - event.start_ms % MINUTE_MS
        key = (symbol, minute)
        building = self._building.get(symbol)
        if isinstance(event, MinuteAggregate):
            old = self._final.get(key)
            if old is None or event.end_ms >= old.end_ms:
                self._final[key] = event
                self._changed[key] = None
            mark = (event.end_ms, event.accumulated_volume)
            known = self._minute_volume.get(symbol)
            if known is None or mark > known:
                self._minute_volume[symbol] = mark
            # The previous minute's bar says the volume the minute in progress started with.
            if (
                building is not None
                and building.minute == event.end_ms
                and building.learn_prior(event.accumulated_volume)
            ):
                self._changed[(symbol, building.minute)] = None
            return
        if building is None or building.minute < minute:
            if building is not None:
                self.closed[building.verified()] += 1
            building = self._building[symbol] = _Building(minute, self._prior(symbol, minute))
        elif building.minute > minute:
            return  # a late second of a minute already left behind: its minute bar corrects it
        if building.add(event):
            self._changed[key] = None

    def _prior(self, symbol: str, minute: int) -> int | None:
        """The day volume when ``minute`` began, or None when unknown.

        That of the latest bar of its trading day ending by then: another day's volume says
        nothing (it starts again at 0).
        """
        # (0, 0) stands for "nothing known": a minute bar of this very minute (it may come
        # before a late second of it) ends after its start and counts for nothing.
        marks = [(0, 0), self._minute_volume.get(symbol, (0, 0))]
        old = self._building.get(symbol)
        if old is not None:
            marks.append(old.closing(minute))
        end, volume = max(mark for mark in marks if mark[0] <= minute)
        if not end or self._day(end - 1 - (end - 1) % MINUTE_MS) != self._day(minute):
            return None
        return volume

    def _day(self, minute: int) -> int:
        day = self._days.get(minute)
        if day is None:
            if len(self._days) > 4_096:
                self._days.clear()
            day = self._days[minute] = trading_day_number(minute)
        return day

    def take_closed(self) -> Counter[str]:
        """Minutes left behind since the last call, by how far their seconds were verified."""
        taken, self.closed = self.closed, Counter()
        return taken

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
