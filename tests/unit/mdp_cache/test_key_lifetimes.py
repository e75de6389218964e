"""State read until the next trading day begins outlives every market closure."""

from __future__ import annotations

from datetime import date

from mdp_cache.keys import (
    KEY_LB_BOARD,
    KEY_LB_FIGURES,
    KEY_LB_ROWS,
    KEY_LB_VERSIONS,
    MARKET_CLOSED_AT_MOST,
)
from mdp_core.calendar import MarketCalendar
from mdp_testing.conformance import at_ms


def test_the_leaderboard_keys_outlive_the_longest_closure_of_the_calendar() -> None:
    """The boards read a day's keys from its last write (20:00) until the next day's 04:00."""
    calendar = MarketCalendar()
    day, end = date(2024, 1, 2), date(2027, 12, 31)
    longest = 0
    while day < end:
        following = calendar.next_trading_day(day)
        closed_ms = at_ms(following, 4, 0) - at_ms(day, 20, 0)
        longest = max(longest, closed_ms)
        day = following
    # A weekend with a holiday on one side: Friday 20:00 to Tuesday 04:00.
    assert longest == (3 * 24 + 8) * 3_600_000
    # An unscheduled closure of two weekdays next to a weekend (October 2012) lasts a day more.
    assert longest + 24 * 3_600_000 < MARKET_CLOSED_AT_MOST * 1000
    for key in (KEY_LB_ROWS, KEY_LB_VERSIONS, KEY_LB_FIGURES, KEY_LB_BOARD):
        assert key.ttl == MARKET_CLOSED_AT_MOST, key.template
