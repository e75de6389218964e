"""Time-of-day volume profiles: slots, averaging, interpolation and the RVol they give."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_cache.volume_profile import (
    SLOT_MS,
    SLOTS,
    VolumeProfile,
    build_profile,
    day_start_ms,
    expected_volume,
    relative_volume,
    slot_of,
)
from mdp_core.clock import ET, to_ns

TODAY = date(2026, 3, 4)  # a Wednesday
MON, TUE = date(2026, 3, 2), date(2026, 3, 3)


def at(day: date, hour: int, minute: int, second: int = 0) -> int:
    return to_ns(datetime.combine(day, time(hour, minute, second), tzinfo=ET)) // 1_000_000


def flat(per_slot: float, days: int = 1) -> VolumeProfile:
    """A profile trading ``per_slot`` shares in every slot."""
    cumulative = tuple(per_slot * (i + 1) for i in range(SLOTS))
    return VolumeProfile(trading_day=TODAY, days=days, cumulative=cumulative)


def test_slots_start_at_four_and_are_five_minutes() -> None:
    assert day_start_ms(TODAY) == at(TODAY, 4, 0)
    assert slot_of(at(TODAY, 3, 59, 59), TODAY) == -1
    assert slot_of(at(TODAY, 4, 0), TODAY) == 0
    assert slot_of(at(TODAY, 4, 4, 59), TODAY) == 0
    assert slot_of(at(TODAY, 4, 5), TODAY) == 1
    assert slot_of(at(TODAY, 9, 30), TODAY) == 66  # the open starts a slot
    assert slot_of(at(TODAY, 9, 29, 59), TODAY) == 65
    assert slot_of(at(TODAY, 16, 0), TODAY) == 144  # so does the close
    assert slot_of(at(TODAY, 19, 59, 59), TODAY) == SLOTS - 1
    assert slot_of(at(TODAY, 20, 0), TODAY) == SLOTS


def test_profile_averages_cumulative_volume_per_slot_over_days() -> None:
    minutes = [
        (at(MON, 4, 0), 100),  # slot 0
        (at(MON, 9, 30), 1_000),  # slot 66
        (at(TUE, 4, 4), 300),  # slot 0 (the minute starting 04:04)
        (at(TUE, 9, 34), 3_000),  # slot 66
    ]
    profile = build_profile(TODAY, minutes, days=20)
    assert profile.days == 2
    assert profile.cumulative[0] == 200.0  # (100 + 300) / 2
    assert profile.cumulative[65] == 200.0
    assert profile.cumulative[66] == 2_200.0  # (1,100 + 3,300) / 2
    assert profile.cumulative[-1] == 2_200.0


def test_only_the_last_n_days_with_data_are_averaged_and_missing_days_are_not_zero() -> None:
    # Monday has no data at all (a gap): the average is Tuesday's alone, not half of it.
    profile = build_profile(TODAY, [(at(TUE, 10, 0), 500)], days=20)
    assert profile.days == 1
    assert profile.cumulative[-1] == 500.0
    two = build_profile(TODAY, [(at(MON, 10, 0), 100), (at(TUE, 10, 0), 500)], days=1)
    assert (two.days, two.cumulative[-1]) == (1, 500.0)  # the most recent day only


def test_bars_outside_the_day_or_of_today_or_later_are_ignored() -> None:
    minutes = [
        (at(TUE, 3, 59), 1_000),  # before 04:00
        (at(TUE, 20, 0), 1_000),  # after 20:00
        (at(TODAY, 10, 0), 1_000),  # today: never part of its own profile
        (at(TUE, 10, 0), -5),  # garbage
        (at(TUE, 10, 0), 7),
    ]
    profile = build_profile(TODAY, minutes, days=20)
    assert (profile.days, profile.cumulative[-1]) == (1, 7.0)


def test_no_history_gives_an_empty_profile_and_no_rvol() -> None:
    profile = build_profile(TODAY, [], days=20)
    assert profile.days == 0
    assert relative_volume(profile, 1_000, at(TODAY, 10, 0)) is None
    assert relative_volume(None, 1_000, at(TODAY, 10, 0)) is None


def test_expected_volume_interpolates_inside_the_slot_in_progress() -> None:
    profile = flat(1_000.0)
    assert expected_volume(profile, at(TODAY, 4, 0)) == 0.0
    assert expected_volume(profile, at(TODAY, 4, 0) + SLOT_MS // 2) == 500.0
    assert expected_volume(profile, at(TODAY, 4, 5)) == 1_000.0  # a slot edge: its end value
    assert expected_volume(profile, at(TODAY, 9, 30)) == 66_000.0
    assert expected_volume(profile, at(TODAY, 16, 0)) == 144_000.0
    assert expected_volume(profile, at(TODAY, 21, 0)) == 192_000.0  # after 20:00: the day
    assert expected_volume(profile, at(TODAY, 3, 0)) == 0.0


def test_rvol_is_volume_over_the_usual_volume_by_then() -> None:
    profile = flat(1_000.0)
    assert relative_volume(profile, 66_000, at(TODAY, 9, 30)) == 1.0
    assert relative_volume(profile, 198_000, at(TODAY, 9, 30)) == 3.0
    # Exactly 04:00, or a symbol that never trades that early: undefined, not infinite.
    assert relative_volume(profile, 100, at(TODAY, 4, 0)) is None
    quiet = VolumeProfile(trading_day=TODAY, days=3, cumulative=(0.0,) * SLOTS)
    assert relative_volume(quiet, 100, at(TODAY, 12, 0)) is None


def test_a_malformed_profile_gives_no_rvol() -> None:
    short = VolumeProfile(trading_day=TODAY, days=2, cumulative=(1.0, 2.0))
    assert relative_volume(short, 100, at(TODAY, 12, 0)) is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from([MON, TUE]),
            st.integers(min_value=0, max_value=16 * 60 - 1),
            st.integers(min_value=0, max_value=10**7),
        ),
        max_size=60,
    )
)
def test_cumulative_never_decreases_and_ends_at_the_mean_day(
    bars: list[tuple[date, int, int]],
) -> None:
    minutes = [(day_start_ms(day) + minute * 60_000, volume) for day, minute, volume in bars]
    profile = build_profile(TODAY, minutes, days=20)
    assert all(a <= b for a, b in zip(profile.cumulative, profile.cumulative[1:], strict=False))
    days = {day for day, _, _ in bars}
    assert profile.days == len(days)
    if days:
        mean = sum(volume for _, _, volume in bars) / len(days)
        assert profile.cumulative[-1] == pytest.approx(mean)
