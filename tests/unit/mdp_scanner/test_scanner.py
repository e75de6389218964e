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
    # The leaderboard consumes market events, which never reach the scanner: refused at start.
    with pytest.raises(ConfigError, match="not feed messages"):
        build_analyzers(("daily_range", "leaderboard"), MarketCalendar())


def test_settings_defaults() -> None:
    from mdp_core.settings import load

    settings = load(ScannerSettings, environ={"MDP_SCANNER_ANALYZERS": "daily_range,other"})
    assert settings.analyzers == ("daily_range", "other")
    assert settings.dedup_alerts is True


def test_thresholds_reach_the_analyzers_from_the_settings() -> None:
    from mdp_analyzers.halt_alerts import HaltAlertsAnalyzer
    from mdp_analyzers.news_movers import NewsMoversAnalyzer
    from mdp_analyzers.unusual_volume import UnusualVolumeAnalyzer
    from mdp_core.settings import load

    settings = load(
        ScannerSettings,
        environ={
            "MDP_SCANNER_RVOL_THRESHOLDS": "1.5,4",
            "MDP_SCANNER_RVOL_MIN_VOLUME": "500",
            "MDP_SCANNER_NEWS_WINDOW_SECONDS": "600",
            "MDP_SCANNER_NEWS_MOVE_PCT": "3",
            "MDP_SCANNER_NEWS_RVOL": "2.5",
        },
    )
    assert settings.analyzers == ("daily_range", "unusual_volume", "news_movers", "halt_alerts")
    built = build_analyzers(settings.analyzers, settings.calendar, settings.analyzer_options())
    daily, volume, news, halts = built
    assert isinstance(daily, DailyRangeAnalyzer)
    assert isinstance(volume, UnusualVolumeAnalyzer)
    assert (volume.thresholds, volume.min_volume) == ((1.5, 4.0), 500)
    assert isinstance(news, NewsMoversAnalyzer)
    assert (news.window_ms, news.move_pct, news.rvol) == (600_000, 3.0, 2.5)
    assert isinstance(halts, HaltAlertsAnalyzer)
    bad = load(ScannerSettings, environ={"MDP_SCANNER_RVOL_THRESHOLDS": "0,2"})
    with pytest.raises(ConfigError, match="above 0"):
        build_analyzers(bad.analyzers, bad.calendar, bad.analyzer_options())
