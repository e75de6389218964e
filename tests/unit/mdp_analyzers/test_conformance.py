from __future__ import annotations

from typing import Any

from mdp_analyzers._template import TemplateAnalyzer
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_testing.conformance import AnalyzerSuite, aggregate, at_ms, luld, quote, trade


class _MarketSamples(AnalyzerSuite):
    def sample_inputs(self) -> list[Any]:
        day = self.day
        return [
            aggregate("AAA", at_ms(day, 10, 0), close=11.0, accumulated_volume=5_000),
            aggregate("BBB", at_ms(day, 10, 0, 1), close=21.0, accumulated_volume=9_000),
            aggregate("AAA", at_ms(day, 10, 0, 2), close=11.5, accumulated_volume=6_000),
            luld("AAA", at_ms(day, 10, 0, 3), 17),
        ]


class TestLeaderboardConformance(_MarketSamples):
    def make_analyzer(self) -> Any:
        return LeaderboardAnalyzer()


class TestTopStocksConformance(_MarketSamples):
    def make_analyzer(self) -> Any:
        return TopStocksAnalyzer()


class TestRouterConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return MassiveDataAnalyzer()

    def sample_inputs(self) -> list[Any]:
        day = self.day
        return [
            aggregate("AAA", at_ms(day, 10, 0)),
            aggregate("AAA", at_ms(day, 10, 0), minute=True),
            trade("AAA", at_ms(day, 10, 0), 10.0, 100),
            trade("AAA", at_ms(day, 10, 1), 10.1, 50),
            quote("AAA", at_ms(day, 10, 0), 9.9, 10.1),
            luld("AAA", at_ms(day, 10, 0), 17),
        ]


class TestTopTradesConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return TopTradesAnalyzer()

    def sample_inputs(self) -> list[Any]:
        day = self.day
        return [trade("AAA", at_ms(day, 14, 59, s), 10.0 + s, 100 * (s + 1)) for s in range(5)]


class TestTemplateConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return TemplateAnalyzer()

    def sample_inputs(self) -> list[Any]:
        return [trade("AAA", at_ms(self.day, 10, 0), 10.0, 100)]
