"""run_offline drives every analyzer: scanner analyzers on what the others publish (issue 17).

In production the daily range analyzer runs in the scanner on the quote records the leaderboard
publishes on the WDC channels; offline it used to receive nothing, because the runner routed by
event kind only. These tests pin the delivery: feed messages reach feed consumers on the next
step, news articles reach the news analyzer once the clock has passed their publication time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_analyzers.notebook import alerts_of, quotes_of, ranges_of, replay_session
from mdp_analyzers.replay import run_offline
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_core.events import MarketEvent
from mdp_core.news import Article
from mdp_testing.conformance import aggregate, at_ms

DAY = date(2026, 3, 4)


def _session() -> list[MarketEvent]:
    """AAA opens at 10, dips to 9.5, then makes three new highs; BBB just trades."""
    events: list[MarketEvent] = []
    bars = [(10.0, 10.0, 10.0), (9.8, 10.0, 9.5), (10.2, 10.2, 9.9), (10.6, 10.6, 10.1),
            (11.0, 11.0, 10.5)]  # fmt: skip
    for second, (close, high, low) in enumerate(bars):
        end = at_ms(DAY, 9, 31, 5 * second)
        events.append(aggregate("AAA", end, close=close, open_=close, high=high, low=low,
                                accumulated_volume=1_000 * (second + 1)))  # fmt: skip
        events.append(aggregate("BBB", end, close=20.0, accumulated_volume=500 * (second + 1)))
    return events


def test_the_daily_range_analyzer_sees_the_quote_records_of_the_leaderboard() -> None:
    result = run_offline(_session(), [TopStocksAnalyzer(), DailyRangeAnalyzer()])
    ranges = ranges_of(result)
    assert set(ranges) == {"AAA", "BBB"}
    assert ranges["AAA"]["regular_high"] == 11.0
    assert ranges["AAA"]["regular_low"] == 9.5
    # The same figures as the quote record's exact session figures.
    quote = quotes_of(result)["AAA"]
    assert (quote["day_high"], quote["day_low"]) == (11.0, 9.5)
    hod = alerts_of(result)["alerts:hod"]
    assert hod, "new highs after the first bar raise HOD alerts"
    assert {alert["symbol"] for alert in hod} == {"AAA"}
    times = [alert["as_of_ms"] for alert in hod]
    assert times == sorted(times, reverse=True)  # newest first by event time
    assert hod[0]["price"] == 11.0


def test_without_the_publisher_the_scanner_analyzer_gets_nothing() -> None:
    result = run_offline(_session(), [DailyRangeAnalyzer()])
    assert ranges_of(result) == {}


def _article(link: str, minute: int) -> Article:
    return Article(
        link=link,
        title=f"AAA news {link}",
        publish_date=datetime.fromtimestamp(at_ms(DAY, 9, minute) / 1000, UTC),
        source="wire",
        language="en",
    )


def test_news_reaches_the_news_analyzer_by_publication_time() -> None:
    seen: list[tuple[str, int]] = []

    class Recording(FinlightDataAnalyzer):
        def apply(self, inputs, now_ns):  # type: ignore[no-untyped-def]
            seen.extend((article.link, now_ns) for article in inputs)
            super().apply(inputs, now_ns)

    late = _article("late", 45)  # after the last event: handed over at the end
    early = _article("early", 31)
    result = run_offline(_session(), [Recording()], news=[late, early])
    assert [link for link, _ in seen] == ["early", "late"]
    assert seen[0][1] >= at_ms(DAY, 9, 31) * 1_000_000
    assert [item["link"] for item in result.document("news:latest")] == ["late", "early"]


def test_replay_session_runs_boards_trades_news_and_ranges_together() -> None:
    result = replay_session(_session(), news=[_article("one", 31)])
    assert result.document("scanner:top_volume")["rows"][0]["symbol"] == "AAA"
    assert ranges_of(result)["AAA"]["regular_high"] == 11.0
    assert [item["link"] for item in result.document("news:latest")] == ["one"]
