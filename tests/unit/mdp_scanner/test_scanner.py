"""Scanner construction and configuration (the loop itself runs against the real Redis in
tests/integration/test_scanner_daily_range.py: fakeredis pub/sub timing differs too much)."""

from __future__ import annotations

from datetime import date

import fakeredis
import pytest

from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ManualClock
from mdp_runtime import ConfigError
from mdp_scanner import Scanner, ScannerSettings
from mdp_scanner.__main__ import build_analyzers

DAY = date(2026, 3, 4)


def test_needs_an_analyzer_and_known_names() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Scanner(fakeredis.FakeAsyncRedis(), [], clock=ManualClock(0))
    with pytest.raises(ConfigError, match="no_such"):
        build_analyzers(("no_such",), MarketCalendar())
    assert isinstance(build_analyzers(("daily_range",), MarketCalendar())[0], DailyRangeAnalyzer)


def test_settings_defaults() -> None:
    from mdp_core.settings import load

    settings = load(ScannerSettings, environ={"MDP_SCANNER_ANALYZERS": "daily_range,other"})
    assert settings.analyzers == ("daily_range", "other")
    assert settings.dedup_alerts is True
