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
