import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdp_core.calendar import MarketCalendar, Session
from mdp_core.clock import ET, to_ns

CAL = MarketCalendar()
HOUR_NS = 3_600 * 1_000_000_000


def et(  # noqa: PLR0917 - mirrors the datetime constructor
    y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0
) -> datetime:
    """Wall-clock time in New York."""
    return datetime(y, mo, d, h, mi, s, us, tzinfo=ET)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


HOLIDAYS_2025 = [
    (date(2025, 1, 1), "New Year's Day"),
    (date(2025, 1, 20), "Martin Luther King Jr. Day"),
    (date(2025, 2, 17), "Washington's Birthday"),
    (date(2025, 4, 18), "Good Friday"),
    (date(2025, 5, 26), "Memorial Day"),
    (date(2025, 6, 19), "Juneteenth National Independence Day"),
    (date(2025, 7, 4), "Independence Day"),
    (date(2025, 9, 1), "Labor Day"),
    (date(2025, 11, 27), "Thanksgiving Day"),
    (date(2025, 12, 25), "Christmas Day"),
]
HOLIDAYS_2026 = [
    (date(2026, 1, 1), "New Year's Day"),
    (date(2026, 1, 19), "Martin Luther King Jr. Day"),
    (date(2026, 2, 16), "Washington's Birthday"),
    (date(2026, 4, 3), "Good Friday"),
    (date(2026, 5, 25), "Memorial Day"),
    (date(2026, 6, 19), "Juneteenth National Independence Day"),
    (date(2026, 7, 3), "Independence Day"),
    (date(2026, 9, 7), "Labor Day"),
    (date(2026, 11, 26), "Thanksgiving Day"),
    (date(2026, 12, 25), "Christmas Day"),
]


def test_every_2025_holiday() -> None:
    assert CAL.holidays(2025) == HOLIDAYS_2025


def test_every_2026_holiday() -> None:
    assert CAL.holidays(2026) == HOLIDAYS_2026


@pytest.mark.parametrize(("day", "name"), HOLIDAYS_2025 + HOLIDAYS_2026)
def test_holidays_are_closed_all_day(day: date, name: str) -> None:
    assert CAL.holiday_name(day) == name
    assert not CAL.is_trading_day(day)
    assert CAL.schedule(day) is None
    for hour in (3, 4, 9, 12, 16, 19, 21):
        assert CAL.session_at(et(day.year, day.month, day.day, hour, 30)) is Session.CLOSED


def test_early_closes_2025_and_2026() -> None:
    assert [d for d, _ in CAL.early_closes(2025)] == [
        date(2025, 7, 3),
        date(2025, 11, 28),
        date(2025, 12, 24),
    ]
    # July 4 2026 is a Saturday: Friday July 3 is the holiday and July 2 is a full day.
    assert CAL.early_closes(2026) == [
        (date(2026, 11, 27), "Day after Thanksgiving"),
        (date(2026, 12, 24), "Christmas Eve"),
    ]
    assert not CAL.is_early_close(date(2026, 7, 2))
    assert CAL.regular_close(date(2026, 7, 2)) == et(2026, 7, 2, 16)


def test_weekend_fixed_holidays_follow_observance_rules() -> None:
    # New Year's Day 2022 was a Saturday: not observed on Friday Dec 31 2021.
    assert CAL.is_trading_day(date(2021, 12, 31))
    assert all(d.month != 1 or d.day > 1 for d, _ in CAL.holidays(2022))
    # Sunday -> Monday.
    assert CAL.holiday_name(date(2022, 6, 20)) == "Juneteenth National Independence Day"
    assert CAL.holiday_name(date(2022, 12, 26)) == "Christmas Day"
    # Saturday -> Friday: Christmas 2027 on Dec 24, so no Christmas Eve early close that year.
    assert CAL.holiday_name(date(2027, 12, 24)) == "Christmas Day"
    assert date(2027, 12, 24) not in dict(CAL.early_closes(2027))
    # No Juneteenth before 2022.
    assert CAL.is_trading_day(date(2021, 6, 18))


@pytest.mark.parametrize(
    ("year", "good_friday"),
    [
        (2019, date(2019, 4, 19)),
        (2024, date(2024, 3, 29)),
        (2027, date(2027, 3, 26)),
        (2038, date(2038, 4, 23)),
    ],
)
def test_good_friday_follows_easter(year: int, good_friday: date) -> None:
    assert CAL.holiday_name(good_friday) == "Good Friday"


def test_half_day_sessions() -> None:
    day = date(2026, 11, 27)
    assert CAL.is_early_close(day)
    assert CAL.regular_close(day) == et(2026, 11, 27, 13)
    assert CAL.extended_close(day) == et(2026, 11, 27, 17)
    assert CAL.session_at(et(2026, 11, 27, 12, 59, 59, 999_999)) is Session.REGULAR
    assert CAL.session_at(et(2026, 11, 27, 13)) is Session.AFTER_HOURS
    assert CAL.session_at(et(2026, 11, 27, 16, 59, 59)) is Session.AFTER_HOURS
    assert CAL.session_at(et(2026, 11, 27, 17)) is Session.CLOSED
    assert CAL.next_session_start(et(2026, 12, 24, 12)) == (
        Session.AFTER_HOURS,
        et(2026, 12, 24, 13),
    )


def test_normal_day_session_boundaries() -> None:
    assert CAL.session_at(et(2026, 3, 4, 9, 29, 59, 999_999)) is Session.PRE_MARKET
    assert CAL.session_at(et(2026, 3, 4, 9, 30)) is Session.REGULAR
    assert CAL.session_at(et(2026, 3, 4, 15, 59, 59)) is Session.REGULAR
    assert CAL.session_at(et(2026, 3, 4, 16)) is Session.AFTER_HOURS
    assert CAL.session_at(et(2026, 3, 4, 19, 59, 59)) is Session.AFTER_HOURS
    assert CAL.session_at(et(2026, 3, 4, 20)) is Session.CLOSED
    assert CAL.extended_close(date(2026, 3, 4)) == et(2026, 3, 4, 20)


def test_four_am_boundary_is_the_day_boundary() -> None:
    before_ns = to_ns(et(2026, 3, 4, 4)) - 1_000_000  # 03:59:59.999
    assert CAL.session_at(before_ns) is Session.CLOSED
    assert CAL.trading_day(before_ns) == date(2026, 3, 3)
    assert CAL.session_at(et(2026, 3, 4, 4)) is Session.PRE_MARKET
    assert CAL.trading_day(et(2026, 3, 4, 4)) == date(2026, 3, 4)
    # Midnight is not a boundary.
    assert CAL.trading_day(et(2026, 3, 4, 0, 0, 1)) == date(2026, 3, 3)
    assert CAL.day_start(date(2026, 3, 4)) == et(2026, 3, 4, 4)


def test_weekends_belong_to_friday_and_are_closed() -> None:
    saturday_noon = et(2026, 3, 7, 12)
    assert CAL.session_at(saturday_noon) is Session.CLOSED
    assert CAL.trading_day(saturday_noon) == date(2026, 3, 6)
    assert CAL.trading_day(et(2026, 3, 9, 3, 59)) == date(2026, 3, 6)
    assert not CAL.is_trading_day(date(2026, 3, 7))
    assert CAL.holiday_name(date(2026, 3, 7)) is None


def test_trading_day_skips_holidays_backwards() -> None:
    # Monday after Good Friday 2026 (Apr 3), 02:00: Thursday Apr 2 is the trading day.
    assert CAL.trading_day(et(2026, 4, 6, 2)) == date(2026, 4, 2)


def test_spring_forward_day_boundaries() -> None:
    # DST starts Sunday 2026-03-08; Friday trades on EST, Monday on EDT.
    assert CAL.regular_open(date(2026, 3, 6)).astimezone(UTC) == utc(2026, 3, 6, 14, 30)
    assert CAL.regular_open(date(2026, 3, 9)).astimezone(UTC) == utc(2026, 3, 9, 13, 30)
    assert CAL.day_start(date(2026, 3, 9)).astimezone(UTC) == utc(2026, 3, 9, 8)
    session, start = CAL.next_session_start(et(2026, 3, 6, 20, 0, 1))
    assert (session, start) == (Session.PRE_MARKET, et(2026, 3, 9, 4))
    # 55 hours, not 56: the weekend lost an hour.
    assert to_ns(start) - to_ns(CAL.extended_close(date(2026, 3, 6))) == HOUR_NS * 55
    assert CAL.session_at(utc(2026, 3, 9, 13, 30)) is Session.REGULAR
    assert CAL.session_at(utc(2026, 3, 9, 13, 29)) is Session.PRE_MARKET


def test_fall_back_day_boundaries() -> None:
    # DST ends Sunday 2026-11-01.
    assert CAL.regular_open(date(2026, 10, 30)).astimezone(UTC) == utc(2026, 10, 30, 13, 30)
    assert CAL.regular_open(date(2026, 11, 2)).astimezone(UTC) == utc(2026, 11, 2, 14, 30)
    assert CAL.session_at(utc(2026, 11, 2, 14, 29)) is Session.PRE_MARKET
    assert CAL.session_at(utc(2026, 11, 2, 14, 30)) is Session.REGULAR
    start = CAL.next_open_window(et(2026, 10, 30, 21))
    assert start == et(2026, 11, 2, 4)
    assert to_ns(start) - to_ns(CAL.extended_close(date(2026, 10, 30))) == HOUR_NS * 57
    # The repeated 01:00-02:00 hour on Sunday is closed and belongs to Friday.
    assert CAL.trading_day(utc(2026, 11, 1, 5, 30)) == date(2026, 10, 30)
    assert CAL.trading_day(utc(2026, 11, 1, 6, 30)) == date(2026, 10, 30)


def test_next_session_start_sequence_through_a_day() -> None:
    assert CAL.next_session_start(et(2026, 3, 4, 3)) == (Session.PRE_MARKET, et(2026, 3, 4, 4))
    assert CAL.next_session_start(et(2026, 3, 4, 4)) == (Session.REGULAR, et(2026, 3, 4, 9, 30))
    assert CAL.next_session_start(et(2026, 3, 4, 10)) == (Session.AFTER_HOURS, et(2026, 3, 4, 16))
    assert CAL.next_session_start(et(2026, 3, 4, 17)) == (Session.CLOSED, et(2026, 3, 4, 20))
    assert CAL.next_session_start(et(2026, 3, 4, 20)) == (Session.PRE_MARKET, et(2026, 3, 5, 4))


def test_next_session_start_across_holiday_weekend() -> None:
    # Thursday before Good Friday 2026, after the close: next is Monday Apr 6.
    assert CAL.next_session_start(et(2026, 4, 2, 20, 30)) == (Session.PRE_MARKET, et(2026, 4, 6, 4))
    # Observed Independence Day 2026 (Fri Jul 3): no transitions on the holiday at all.
    assert CAL.next_session_start(et(2026, 7, 3, 9, 0)) == (Session.PRE_MARKET, et(2026, 7, 6, 4))
    # Christmas 2026 on a Friday after the Christmas Eve half day.
    assert CAL.next_session_start(et(2026, 12, 24, 17)) == (Session.PRE_MARKET, et(2026, 12, 28, 4))


def test_next_open_window() -> None:
    during = et(2026, 3, 4, 18)
    assert CAL.next_open_window(during) == during
    assert CAL.next_open_window(to_ns(during)) == during
    assert CAL.next_open_window(et(2026, 3, 4, 2)) == et(2026, 3, 4, 4)
    assert CAL.next_open_window(et(2026, 12, 31, 21)) == et(2027, 1, 4, 4)


def test_extra_closures() -> None:
    mourning = date(2025, 1, 9)
    cal = MarketCalendar(extra_closures={mourning: "National Day of Mourning"})
    assert CAL.is_trading_day(mourning)
    assert not cal.is_trading_day(mourning)
    assert cal.holiday_name(mourning) == "National Day of Mourning"
    assert (mourning, "National Day of Mourning") in cal.holidays(2025)
    assert cal.session_at(et(2025, 1, 9, 10)) is Session.CLOSED
    assert cal.next_session_start(et(2025, 1, 8, 21)) == (Session.PRE_MARKET, et(2025, 1, 10, 4))
    plain = MarketCalendar(extra_closures=[date(2026, 11, 27)])
    assert plain.holiday_name(date(2026, 11, 27)) == "Unscheduled closure"
    assert not plain.is_early_close(date(2026, 11, 27))
    assert date(2026, 11, 27) not in dict(plain.early_closes(2026))


def test_calendar_is_immutable_and_hashable() -> None:
    a = MarketCalendar([date(2025, 1, 9)])
    b = MarketCalendar({date(2025, 1, 9): "Unscheduled closure"})
    assert a == b
    assert hash(a) == hash(b)
    assert a != CAL
    with pytest.raises(AttributeError):
        a._hash = 1


def test_a_calendar_with_no_trading_days_fails_loudly() -> None:
    start = date(2026, 1, 1)
    cal = MarketCalendar([start + timedelta(days=n) for n in range(120)])
    with pytest.raises(LookupError, match="no trading day"):
        cal.next_open_window(et(2026, 1, 2, 12))


def test_session_values_are_stable_strings() -> None:
    assert [s.value for s in Session] == ["pre_market", "regular", "after_hours", "closed"]


INSTANTS = st.integers(
    min_value=to_ns(datetime(2000, 1, 1, tzinfo=UTC)),
    max_value=to_ns(datetime(2100, 1, 1, tzinfo=UTC)),
)


def _expected_session(ns: int) -> Session:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    local = (epoch + timedelta(microseconds=ns // 1_000)).astimezone(ET)
    day, clock_time = local.date(), local.time()
    if not CAL.is_trading_day(day):
        return Session.CLOSED
    early = CAL.is_early_close(day)
    if clock_time < time(4):
        return Session.CLOSED
    if clock_time < time(9, 30):
        return Session.PRE_MARKET
    if clock_time < (time(13) if early else time(16)):
        return Session.REGULAR
    if clock_time < (time(17) if early else time(20)):
        return Session.AFTER_HOURS
    return Session.CLOSED


@settings(max_examples=300, deadline=None)
@given(INSTANTS)
def test_session_at_agrees_with_wall_clock_boundaries(ns: int) -> None:
    assert CAL.session_at(ns) is _expected_session(ns)


@settings(max_examples=200, deadline=None)
@given(INSTANTS)
def test_next_session_start_is_the_next_change(ns: int) -> None:
    session, start = CAL.next_session_start(ns)
    start_ns = to_ns(start)
    assert start_ns > ns
    assert CAL.session_at(start_ns) is session
    assert CAL.session_at(start_ns - 1) is not session
    assert CAL.session_at(start_ns - 1) is CAL.session_at(ns)
    assert CAL.is_trading_day(CAL.trading_day(ns))
    assert to_ns(CAL.day_start(CAL.trading_day(ns))) <= ns


def _expected_trading_day(ns: int) -> date:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    local = (epoch + timedelta(microseconds=ns // 1_000)).astimezone(ET)
    day = local.date() - timedelta(days=1 if local.time() < time(4) else 0)
    while not CAL.is_trading_day(day):
        day -= timedelta(days=1)
    return day


# Days whose spans are unusual: DST changes, an early close, holidays next to weekends.
_ODD_DAYS = (
    date(2026, 3, 8),  # spring forward (Sunday)
    date(2026, 3, 9),
    date(2026, 11, 1),  # fall back (Sunday)
    date(2026, 11, 2),
    date(2026, 11, 27),  # day after Thanksgiving: 13:00 close
    date(2026, 1, 16),  # Friday before Martin Luther King Jr. Day
    date(2026, 4, 2),  # Thursday before Good Friday
    date(2026, 12, 31),
)
_CLOCK_TIMES = (time(0), time(4), time(9, 30), time(13), time(16), time(17), time(20))


def _near_boundaries(anchor: date) -> list[int]:
    """Every session boundary (and midnight) of four days from ``anchor``, with 1 ns around."""
    found: list[int] = []
    for offset in range(4):
        for clock_time in _CLOCK_TIMES:
            at = to_ns(datetime.combine(anchor + timedelta(days=offset), clock_time, tzinfo=ET))
            found.extend((at - 1, at, at + 1))
    return found


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.sampled_from(_ODD_DAYS), st.dates(date(2001, 1, 1), date(2099, 1, 1))),
    st.randoms(use_true_random=False),
    st.lists(INSTANTS, max_size=5),
)
def test_remembered_spans_answer_what_the_computation_does(
    anchor: date, rng: random.Random, far: list[int]
) -> None:
    """One calendar asked in any order, across boundaries: every answer the independent one.

    A fresh calendar per example: answers come from spans left by earlier questions, so an
    off-by-one in a span's ends shows as a wrong session or day at a boundary.
    """
    assert isinstance(rng, random.Random)
    instants = _near_boundaries(anchor) + far
    rng.shuffle(instants)
    calendar = MarketCalendar()
    for ns in sorted(instants) + instants:
        assert calendar.session_at(ns) is _expected_session(ns), ns
        assert calendar.trading_day(ns) == _expected_trading_day(ns), ns


def test_spans_follow_time_forwards_and_backwards_across_each_boundary() -> None:
    calendar = MarketCalendar()
    day = date(2026, 11, 27)  # early close: 13:00 and 17:00
    boundaries = _near_boundaries(day - timedelta(days=1))
    for ns in boundaries + boundaries[::-1]:
        assert calendar.session_at(ns) is _expected_session(ns), ns
        assert calendar.trading_day(ns) == _expected_trading_day(ns), ns
    # A datetime is answered as its instant, from the span as well.
    noon = datetime(2026, 11, 27, 12, tzinfo=ET)
    assert calendar.session_at(noon) is Session.REGULAR
    assert calendar.session_at(noon) is Session.REGULAR
    assert calendar.trading_day(noon) == day
    assert calendar.trading_day(noon) == day


def test_spans_leave_equality_and_hash_alone() -> None:
    asked = MarketCalendar([date(2025, 1, 9)])
    asked.session_at(et(2025, 1, 8, 12))
    asked.trading_day(et(2025, 1, 8, 12))
    assert asked == MarketCalendar([date(2025, 1, 9)])
    assert hash(asked) == hash(MarketCalendar([date(2025, 1, 9)]))
    assert asked.session_at(et(2025, 1, 9, 12)) is Session.CLOSED
    assert asked.trading_day(et(2025, 1, 9, 12)) == date(2025, 1, 8)


def _no_conversions(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> datetime:
        msg = "answered by converting to ET, not from the remembered span"
        raise AssertionError(msg)

    monkeypatch.setattr("mdp_core.calendar.from_ns", refuse)


def test_a_session_is_answered_from_its_span_up_to_both_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calendar = MarketCalendar()
    asked = [
        (et(2026, 3, 6, 5), et(2026, 3, 6, 4), et(2026, 3, 6, 9, 29, 59), Session.PRE_MARKET),
        (et(2026, 3, 6, 2), et(2026, 3, 6, 0), et(2026, 3, 6, 3, 59, 59), Session.CLOSED),
        (et(2026, 3, 6, 21), et(2026, 3, 6, 20), et(2026, 3, 6, 23, 59, 59), Session.CLOSED),
        (et(2026, 3, 7, 12), et(2026, 3, 7, 0), et(2026, 3, 7, 23, 59, 59), Session.CLOSED),
    ]
    for first, start, last, session in asked:
        monkeypatch.undo()
        assert calendar.session_at(first) is session
        _no_conversions(monkeypatch)
        assert calendar.session_at(start) is session
        assert calendar.session_at(to_ns(last) + 999_999_999) is session


def test_a_trading_day_is_answered_from_its_span_across_the_weekend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calendar = MarketCalendar()
    assert calendar.trading_day(et(2026, 3, 6, 10)) == date(2026, 3, 6)  # a Friday
    _no_conversions(monkeypatch)
    assert calendar.trading_day(et(2026, 3, 6, 4)) == date(2026, 3, 6)
    assert calendar.trading_day(to_ns(et(2026, 3, 9, 4)) - 1) == date(2026, 3, 6)


def test_the_first_instants_are_not_taken_for_a_remembered_span() -> None:
    # 1970-01-01 00:00 UTC is 19:00 ET on Wednesday 1969-12-31: after-hours of that day.
    assert MarketCalendar().session_at(0) is Session.AFTER_HOURS
    assert MarketCalendar().trading_day(0) == date(1969, 12, 31)


def test_no_trading_day_in_reach_fails_loudly_for_a_trading_day() -> None:
    start = date(2026, 1, 1)
    cal = MarketCalendar([start + timedelta(days=n) for n in range(120)])
    with pytest.raises(LookupError, match="no trading day within 60 days of 2026-03-01"):
        cal.trading_day(et(2026, 3, 1, 12))


@pytest.mark.parametrize(
    ("day", "following", "before"),
    [
        (date(2026, 3, 4), date(2026, 3, 5), date(2026, 3, 3)),  # a plain Wednesday
        (date(2026, 3, 6), date(2026, 3, 9), date(2026, 3, 5)),  # Friday: over the weekend
        (date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 6)),  # Monday: back over it
        (date(2026, 3, 7), date(2026, 3, 9), date(2026, 3, 6)),  # from a Saturday
        (date(2026, 4, 2), date(2026, 4, 6), date(2026, 4, 1)),  # Good Friday and a weekend
        (date(2026, 4, 6), date(2026, 4, 7), date(2026, 4, 2)),
        (date(2026, 4, 3), date(2026, 4, 6), date(2026, 4, 2)),  # from the holiday itself
        (date(2026, 12, 31), date(2027, 1, 4), date(2026, 12, 30)),  # New Year's, a Friday
    ],
)
def test_next_and_previous_trading_day(day: date, following: date, before: date) -> None:
    assert CAL.next_trading_day(day) == following
    assert CAL.previous_trading_day(day) == before


def test_next_and_previous_trading_day_skip_extra_closures() -> None:
    cal = MarketCalendar(extra_closures=[date(2026, 3, 5)])
    assert cal.next_trading_day(date(2026, 3, 4)) == date(2026, 3, 6)
    assert cal.previous_trading_day(date(2026, 3, 6)) == date(2026, 3, 4)


def test_next_and_previous_trading_day_fail_loudly_out_of_reach() -> None:
    closed = MarketCalendar([date(2026, 1, 5) + timedelta(days=n) for n in range(120)])
    with pytest.raises(LookupError, match="no trading day within 60 days of 2026-01-02; check"):
        closed.next_trading_day(date(2026, 1, 2))
    with pytest.raises(LookupError, match="no trading day within 60 days of 2026-05-01; check"):
        closed.previous_trading_day(date(2026, 5, 1))
    # 58 closed days in a row (a weekend, 55 closures, a weekend) are still crossed.
    short = MarketCalendar([date(2026, 1, 5) + timedelta(days=n) for n in range(55)])
    assert short.next_trading_day(date(2026, 1, 2)) == date(2026, 3, 2)
    assert short.previous_trading_day(date(2026, 3, 2)) == date(2026, 1, 2)
