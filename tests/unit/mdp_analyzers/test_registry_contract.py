"""The registry hands out analyzers only: checked against the protocol and the inputs at start.

A plugin is found by name at run time, out of the type checker's reach; ``create_analyzer``
checks it is an ``Analyzer`` at all, and the service variants that it consumes what the service
feeds (market events to a processor, feed messages to the scanner), so a misconfiguration is a
clear error at start instead of an analyzer that idles or fails on its first batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mdp_analyzers import registry
from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.registry import (
    UnknownAnalyzer,
    create_analyzer,
    create_feed_analyzer,
    create_market_analyzer,
)
from mdp_analyzers.typing import Output
from mdp_core.calendar import MarketCalendar


class NoCollect:
    """Everything of an analyzer but ``collect``."""

    name = "no_collect"
    consumes = frozenset({"A"})

    def apply(self, inputs: Sequence[object], now_ns: int) -> None:
        del inputs, now_ns


class Mixed:
    """An analyzer that consumes market events and a feed (no service feeds it both)."""

    name = "mixed"
    consumes = frozenset({"A", "quote:*"})

    def apply(self, inputs: Sequence[object], now_ns: int) -> None:
        del inputs, now_ns

    def collect(self, now_ns: int) -> Output:
        del now_ns
        return Output()


def test_an_entry_point_that_is_no_analyzer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "load_analyzer", lambda name: NoCollect)
    with pytest.raises(UnknownAnalyzer, match="NoCollect lacks a member of the Analyzer protocol"):
        create_analyzer("no_collect")


def test_each_service_gets_analyzers_of_its_inputs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calendar = MarketCalendar()
    market = create_market_analyzer("leaderboard", calendar=calendar)
    feed = create_feed_analyzer("daily_range", calendar=calendar)
    assert isinstance(market, LeaderboardAnalyzer)
    assert isinstance(feed, DailyRangeAnalyzer)
    with pytest.raises(UnknownAnalyzer, match=r"consumes \['news'\], not market events"):
        create_market_analyzer("news")
    with pytest.raises(UnknownAnalyzer, match=r"consumes \['A', 'AM', 'LULD'\], not feed messag"):
        create_feed_analyzer("leaderboard", calendar=calendar)
    monkeypatch.setattr(registry, "load_analyzer", lambda name: Mixed)
    with pytest.raises(UnknownAnalyzer, match=r"consumes \['quote:\*'\], not market events"):
        create_market_analyzer("mixed")
    with pytest.raises(UnknownAnalyzer, match=r"consumes \['A'\], not feed messages"):
        create_feed_analyzer("mixed")
