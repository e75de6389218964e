"""The US equities market calendar: sessions, trading days, holidays and early closes.

Every component asks one object which session an instant belongs to and when the next one
starts, so resets and alerts agree across services. The trading day begins at 04:00
America/New_York (the start of pre-market), never at midnight: an event at 02:00 ET belongs to
the previous trading day.

Holidays follow the NYSE rules, computed rather than listed, so the calendar never runs out:
fixed-date holidays falling on a Saturday are observed the Friday before (except New Year's Day,
which is then not observed at all, because the Friday is the last trading day of the year) and
Sunday holidays the Monday after. Ad-hoc closures (national days of mourning, emergencies) are
passed in as ``extra_closures``. The rules are those in force since Juneteenth was added in
2022; earlier years are modelled with the same rules (minus Juneteenth), which matches NYSE
practice from 1998 on.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple

from mdp_core.clock import ET, from_ns, to_ns

__all__ = ["DaySchedule", "MarketCalendar", "Session"]

_PRE_MARKET_START = time(4, 0)
_REGULAR_OPEN = time(9, 30)
_REGULAR_CLOSE = time(16, 0)
_EXTENDED_CLOSE = time(20, 0)
_EARLY_REGULAR_CLOSE = time(13, 0)
_EARLY_EXTENDED_CLOSE = time(17, 0)
_JUNETEENTH_FIRST_YEAR = 2022
_MAX_CLOSED_RUN_DAYS = 60
"""Longest run of non-trading days we search through before declaring the calendar broken."""

_MON, _TUE, _WED, _THU, _FRI, _SAT, _SUN = range(7)


class Session(enum.StrEnum):
    """The trading session an instant falls in."""

    PRE_MARKET = "pre_market"
    REGULAR = "regular"
    AFTER_HOURS = "after_hours"
    CLOSED = "closed"


class DaySchedule(NamedTuple):
    """The session boundaries of one trading day, as UTC Unix nanoseconds."""

    day_start_ns: int
    regular_open_ns: int
    regular_close_ns: int
    extended_close_ns: int


def _easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday by the anonymous (Meeus/Jones/Butcher) computus."""
    golden = year % 19
    century, year_of_century = divmod(year, 100)
    leap_centuries, century_rest = divmod(century, 4)
    correction = (century + 8) // 25
    moon_correction = (century - correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - moon_correction + 15) % 30
    quad, year_rest = divmod(year_of_century, 4)
    weekday_offset = (32 + 2 * century_rest + 2 * quad - epact - year_rest) % 7
    shift = (golden + 11 * epact + 22 * weekday_offset) // 451
    month, day = divmod(epact + weekday_offset - 7 * shift + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th (1-based) ``weekday`` of a month."""
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    """The last ``weekday`` of a month."""
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Move a fixed-date holiday off the weekend: Saturday to Friday, Sunday to Monday."""
    if day.weekday() == _SAT:
        return day - timedelta(days=1)
    if day.weekday() == _SUN:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=256)
def _rule_holidays(year: int) -> Mapping[date, str]:
    """The NYSE full-day holidays observed in ``year``, by the standing rules."""
    found: dict[date, str] = {}
    new_year = date(year, 1, 1)
    if new_year.weekday() != _SAT:  # a Saturday New Year's Day is not observed on Dec 31
        found[_observed(new_year)] = "New Year's Day"
    found[_nth_weekday(year, 1, _MON, 3)] = "Martin Luther King Jr. Day"
    found[_nth_weekday(year, 2, _MON, 3)] = "Washington's Birthday"
    found[_easter_sunday(year) - timedelta(days=2)] = "Good Friday"
    found[_last_weekday(year, 5, _MON)] = "Memorial Day"
    if year >= _JUNETEENTH_FIRST_YEAR:
        found[_observed(date(year, 6, 19))] = "Juneteenth National Independence Day"
    found[_observed(date(year, 7, 4))] = "Independence Day"
    found[_nth_weekday(year, 9, _MON, 1)] = "Labor Day"
    found[_nth_weekday(year, 11, _THU, 4)] = "Thanksgiving Day"
    found[_observed(date(year, 12, 25))] = "Christmas Day"
    return dict(sorted(found.items()))


@lru_cache(maxsize=256)
def _rule_early_closes(year: int) -> Mapping[date, str]:
    """The NYSE 13:00 early closes in ``year``, by the standing rules.

    July 3 closes early only when it is a Monday to Thursday (so July 4 is a weekday and
    July 3 is a trading day); when July 4 falls on a weekend the observed holiday takes its
    place and no early close precedes it. Christmas Eve closes early when it is a Monday to
    Thursday (a Friday Christmas Eve is the observed Christmas holiday).
    """
    found: dict[date, str] = {}
    july_3 = date(year, 7, 3)
    if july_3.weekday() <= _THU:
        found[july_3] = "Day before Independence Day"
    found[_nth_weekday(year, 11, _THU, 4) + timedelta(days=1)] = "Day after Thanksgiving"
    christmas_eve = date(year, 12, 24)
    if christmas_eve.weekday() <= _THU:
        found[christmas_eve] = "Christmas Eve"
    return found


def _at(day: date, clock_time: time) -> datetime:
    return datetime.combine(day, clock_time, tzinfo=ET)


@lru_cache(maxsize=8192)
def _schedule(calendar: MarketCalendar, day: date) -> DaySchedule | None:
    """Per-date session boundaries (None when closed); cached per calendar and date."""
    if not calendar.is_trading_day(day):
        return None
    early = calendar.is_early_close(day)
    return DaySchedule(
        day_start_ns=to_ns(_at(day, _PRE_MARKET_START)),
        regular_open_ns=to_ns(_at(day, _REGULAR_OPEN)),
        regular_close_ns=to_ns(_at(day, _EARLY_REGULAR_CLOSE if early else _REGULAR_CLOSE)),
        extended_close_ns=to_ns(_at(day, _EARLY_EXTENDED_CLOSE if early else _EXTENDED_CLOSE)),
    )


def _et_date(ns: int) -> date:
    return from_ns(ns, ET).date()


class MarketCalendar:
    """US equities sessions, trading days, holidays and early closes (America/New_York).

    Immutable and hashable; per-date computations are cached, so one shared instance is cheap
    to query on a hot path. Instants may be aware datetimes or UTC Unix nanoseconds; returned
    instants are aware datetimes in ET.

    :meth:`session_at` and :meth:`trading_day` also remember the span of instants their last
    answer holds for (a session's boundaries; a trading day's 04:00 to the next one's), so the
    stream of nearby instants a processor or scanner asks about skips the time-zone conversion
    (~1.3-1.8 µs a call, docs/performance.md). The spans are exact, not rounded: an answer
    from a span is the one the full computation gives.

    Args:
        extra_closures: ad-hoc full-day closures beyond the standing rules, either dates or a
            mapping of date to reason (e.g. ``{date(2025, 1, 9): "National Day of Mourning"}``).
    """

    __slots__ = ("_closures", "_day_span", "_hash", "_session_span")

    _closures: Mapping[date, str]
    _hash: int
    #: ``(lo_ns, hi_ns, answer)``: the answer for every instant in ``[lo_ns, hi_ns)``. Replaced
    #: whole (one attribute store), so threads sharing the calendar read a consistent span.
    _session_span: tuple[int, int, Session]
    _day_span: tuple[int, int, date]

    def __init__(self, extra_closures: Iterable[date] | Mapping[date, str] = ()) -> None:
        if isinstance(extra_closures, Mapping):
            closures = {d: str(reason) for d, reason in extra_closures.items()}
        else:
            closures = {d: "Unscheduled closure" for d in extra_closures}
        frozen = tuple(sorted(closures.items()))
        object.__setattr__(self, "_closures", dict(frozen))
        object.__setattr__(self, "_hash", hash(frozen))
        object.__setattr__(self, "_session_span", (0, 0, Session.CLOSED))
        object.__setattr__(self, "_day_span", (0, 0, date.min))

    def __setattr__(self, name: str, value: object) -> None:
        msg = "MarketCalendar is immutable"
        raise AttributeError(msg)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MarketCalendar):
            return NotImplemented
        return self._closures == other._closures

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"MarketCalendar(extra_closures={dict(self._closures)!r})"

    # --- days -----------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """Why the market is closed all day on ``day`` (None on trading days and weekends)."""
        extra = self._closures.get(day)
        if extra is not None:
            return extra
        return _rule_holidays(day.year).get(day)

    def is_trading_day(self, day: date) -> bool:
        """Whether ``day`` has any session (a weekday that is not a holiday or closure)."""
        return day.weekday() < _SAT and self.holiday_name(day) is None

    def next_trading_day(self, day: date) -> date:
        """The first trading day after ``day`` (whether or not ``day`` trades)."""
        return self._step(day, 1)

    def previous_trading_day(self, day: date) -> date:
        """The last trading day before ``day`` (whether or not ``day`` trades)."""
        return self._step(day, -1)

    def _step(self, day: date, direction: int) -> date:
        step = timedelta(days=direction)
        found = day
        for _ in range(_MAX_CLOSED_RUN_DAYS):
            found += step
            if self.is_trading_day(found):
                return found
        raise self._no_trading_day(day)

    def is_early_close(self, day: date) -> bool:
        """Whether ``day`` is a trading day whose regular session ends at 13:00 ET."""
        return day in _rule_early_closes(day.year) and self.is_trading_day(day)

    def holidays(self, year: int) -> list[tuple[date, str]]:
        """All full-day closures in ``year`` (rule holidays and extra closures), by date."""
        found = dict(_rule_holidays(year))
        found.update({d: reason for d, reason in self._closures.items() if d.year == year})
        return sorted(found.items())

    def early_closes(self, year: int) -> list[tuple[date, str]]:
        """All 13:00 early closes in ``year`` with their reason, by date."""
        return sorted(
            (d, reason) for d, reason in _rule_early_closes(year).items() if self.is_trading_day(d)
        )

    def schedule(self, day: date) -> DaySchedule | None:
        """The session boundaries of ``day`` in UTC Unix nanoseconds, or None when closed."""
        return _schedule(self, day)

    def day_start(self, day: date) -> datetime:
        """04:00 ET on ``day``: the start of the trading day and of pre-market."""
        return _at(day, _PRE_MARKET_START)

    def regular_open(self, day: date) -> datetime:
        """09:30 ET on ``day``: the opening of the regular session."""
        return _at(day, _REGULAR_OPEN)

    def regular_close(self, day: date) -> datetime:
        """16:00 ET on ``day``, or 13:00 ET on an early-close day."""
        return _at(day, _EARLY_REGULAR_CLOSE if self.is_early_close(day) else _REGULAR_CLOSE)

    def extended_close(self, day: date) -> datetime:
        """20:00 ET on ``day`` (end of after-hours), or 17:00 ET on an early-close day."""
        return _at(day, _EARLY_EXTENDED_CLOSE if self.is_early_close(day) else _EXTENDED_CLOSE)

    # --- instants -------------------------------------------------------------------------

    def session_at(self, ts: datetime | int) -> Session:
        """The session in force at ``ts`` (boundaries are inclusive at the start)."""
        ns = to_ns(ts)
        lo, hi, session = self._session_span
        if lo <= ns < hi:
            return session
        return self._session_at(ns)

    def _session_at(self, ns: int) -> Session:
        """:meth:`session_at` computed, remembering the span between the boundaries around it."""
        day = _et_date(ns)
        sched = _schedule(self, day)
        midnight = to_ns(_at(day, time(0)))
        next_midnight = to_ns(_at(day + timedelta(days=1), time(0)))
        if sched is None:
            span = (midnight, next_midnight, Session.CLOSED)
        elif ns < sched.day_start_ns:
            span = (midnight, sched.day_start_ns, Session.CLOSED)
        elif ns < sched.regular_open_ns:
            span = (sched.day_start_ns, sched.regular_open_ns, Session.PRE_MARKET)
        elif ns < sched.regular_close_ns:
            span = (sched.regular_open_ns, sched.regular_close_ns, Session.REGULAR)
        elif ns < sched.extended_close_ns:
            span = (sched.regular_close_ns, sched.extended_close_ns, Session.AFTER_HOURS)
        else:
            span = (sched.extended_close_ns, next_midnight, Session.CLOSED)
        object.__setattr__(self, "_session_span", span)
        return span[2]

    def trading_day(self, ts: datetime | int) -> date:
        """The trading day whose 04:00 ET start most recently passed at ``ts``.

        Saturday noon and Monday 03:00 both belong to Friday's trading day (when Friday
        traded); Monday 04:00 begins Monday's.
        """
        ns = to_ns(ts)
        lo, hi, day = self._day_span
        if lo <= ns < hi:
            return day
        return self._trading_day(ns)

    def _trading_day(self, ns: int) -> date:
        """:meth:`trading_day` computed, remembering the span up to the next day's 04:00."""
        local = from_ns(ns, ET)
        day = local.date()
        if local.time() < _PRE_MARKET_START:
            day -= timedelta(days=1)
        for _ in range(_MAX_CLOSED_RUN_DAYS):
            if self.is_trading_day(day):
                break
            day -= timedelta(days=1)
        else:
            raise self._no_trading_day(local)
        following = self.next_trading_day(day)
        span = (to_ns(self.day_start(day)), to_ns(self.day_start(following)), day)
        object.__setattr__(self, "_day_span", span)
        return day

    def next_session_start(self, ts: datetime | int) -> tuple[Session, datetime]:
        """The next session change strictly after ``ts`` and the session it begins.

        ``CLOSED`` counts as a session: at 19:00 ET on a normal day the answer is
        ``(CLOSED, 20:00)``; after 20:00 on a Friday it is ``(PRE_MARKET, Monday 04:00)``
        (or the next trading day's 04:00 across holidays).
        """
        ns = to_ns(ts)
        day = _et_date(ns) - timedelta(days=1)
        for _ in range(_MAX_CLOSED_RUN_DAYS):
            sched = _schedule(self, day)
            if sched is not None:
                for session, boundary in (
                    (Session.PRE_MARKET, sched.day_start_ns),
                    (Session.REGULAR, sched.regular_open_ns),
                    (Session.AFTER_HOURS, sched.regular_close_ns),
                    (Session.CLOSED, sched.extended_close_ns),
                ):
                    if boundary > ns:
                        return session, from_ns(boundary, ET)
            day += timedelta(days=1)
        raise self._no_trading_day(from_ns(ns, ET))

    def next_open_window(self, ts: datetime | int) -> datetime:
        """When the market next has any session: ``ts`` itself (in ET) if one is on now."""
        ns = to_ns(ts)
        if self.session_at(ns) is not Session.CLOSED:
            return from_ns(ns, ET)
        day = _et_date(ns)
        for _ in range(_MAX_CLOSED_RUN_DAYS):
            sched = _schedule(self, day)
            if sched is not None and sched.day_start_ns > ns:
                return from_ns(sched.day_start_ns, ET)
            day += timedelta(days=1)
        raise self._no_trading_day(from_ns(ns, ET))

    def _no_trading_day(self, near: date) -> LookupError:
        msg = (
            f"no trading day within {_MAX_CLOSED_RUN_DAYS} days of {near.isoformat()}; "
            "check extra_closures"
        )
        return LookupError(msg)
