"""NewsMoversAnalyzer: symbols moving on price or RVol after news about them."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.news_movers import NewsMoverAlert, NewsMoversAnalyzer
from mdp_analyzers.typing import FeedMessage, Output
from mdp_testing.conformance import AnalyzerSuite, at_ms

DAY = date(2026, 3, 4)
NEXT = date(2026, 3, 5)
MS = 1_000_000


def news(link: str, published_ms: int, *tickers: str, title: str = "ACME wins") -> FeedMessage:
    item = {
        "link": link,
        "title": title,
        "source": "wire",
        "published_ms": published_ms,
        "tickers": list(tickers),
    }
    return FeedMessage("news:latest", json.dumps(item).encode())


def q(
    symbol: str, end_ms: int, price: float, rvol: float | None = 1.0, day: date = DAY
) -> FeedMessage:
    record = {
        "symbol": symbol,
        "trading_day": day.isoformat(),
        "price": price,
        "open": price,
        "start_ms": end_ms - 1_000,
        "end_ms": end_ms,
        "accumulated_volume": 10_000,
        "rvol_tod": rvol,
    }
    return FeedMessage(f"quote:{symbol}", json.dumps(record).encode())


def alerts(output: Output) -> list[NewsMoverAlert]:
    assert all(w.name == "alerts:news" for w in output.widgets)
    return [msgspec.json.decode(w.payload, type=NewsMoverAlert) for w in output.widgets]


def run(analyzer: NewsMoversAnalyzer, *messages: FeedMessage, now_ms: int) -> Output:
    analyzer.apply(list(messages), now_ms * MS)
    return analyzer.collect(now_ms * MS)


class TestNewsMoversConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return NewsMoversAnalyzer()

    def sample_inputs(self) -> list[Any]:
        return [
            q("ACME", at_ms(self.day, 10, 0), 10.0),
            news("https://n/1", at_ms(self.day, 10, 1), "ACME"),
            q("ACME", at_ms(self.day, 10, 5), 10.8),
        ]


def test_a_price_move_after_news_alerts_once_with_the_headline() -> None:
    nma = NewsMoversAnalyzer(news_move_pct=5.0)
    published = at_ms(DAY, 10, 1)
    run(
        nma,
        q("ACME", at_ms(DAY, 10, 0), 10.0),
        news("https://n/1", published, "ACME"),
        now_ms=published,
    )
    assert alerts(run(nma, q("ACME", at_ms(DAY, 10, 2), 10.4), now_ms=at_ms(DAY, 10, 2))) == []
    out = run(nma, q("ACME", at_ms(DAY, 10, 4), 10.6), now_ms=at_ms(DAY, 10, 4))
    (alert,) = alerts(out)
    assert (alert.reason, alert.headline, alert.link, alert.source) == (
        "price",
        "ACME wins",
        "https://n/1",
        "wire",
    )
    assert (alert.base_price, alert.price, alert.pct_move) == (10.0, 10.6, 6.0)
    assert (alert.minutes_since_news, alert.as_of_ms) == (3.0, at_ms(DAY, 10, 4))
    assert alert.note == "+6.0% since the news, 3 min after it"
    assert out.widgets[0].identity == "ACME|https://n/1"
    assert alerts(run(nma, q("ACME", at_ms(DAY, 10, 5), 12.0), now_ms=at_ms(DAY, 10, 5))) == []
    # The same article published again (another feed copy) does not re-arm it.
    again = news("https://n/1", published, "ACME")
    assert (
        alerts(run(nma, again, q("ACME", at_ms(DAY, 10, 6), 14.0), now_ms=at_ms(DAY, 10, 6))) == []
    )


def test_falls_count_and_rvol_crossing_alerts_too() -> None:
    nma = NewsMoversAnalyzer(news_move_pct=5.0, news_rvol=3.0)
    run(
        nma,
        q("DOWN", at_ms(DAY, 10, 0), 10.0),
        q("VOL", at_ms(DAY, 10, 0), 10.0, rvol=1.2),
        news("https://n/2", at_ms(DAY, 10, 0), "DOWN", "VOL"),
        now_ms=at_ms(DAY, 10, 0),
    )
    out = alerts(
        run(
            nma,
            q("DOWN", at_ms(DAY, 10, 3), 9.4),
            q("VOL", at_ms(DAY, 10, 2), 10.1, rvol=3.4),
            now_ms=at_ms(DAY, 10, 3),
        )
    )
    assert [(a.symbol, a.reason) for a in out] == [("VOL", "rvol"), ("DOWN", "price")]  # by time
    assert out[1].pct_move == -6.0


def test_already_high_rvol_at_the_news_is_no_crossing() -> None:
    nma = NewsMoversAnalyzer(news_rvol=3.0)
    run(
        nma,
        q("ACME", at_ms(DAY, 10, 0), 10.0, rvol=4.0),
        news("https://n/3", at_ms(DAY, 10, 0), "ACME"),
        now_ms=at_ms(DAY, 10, 0),
    )
    assert (
        alerts(run(nma, q("ACME", at_ms(DAY, 10, 1), 10.1, rvol=5.0), now_ms=at_ms(DAY, 10, 1)))
        == []
    )


def test_news_before_any_quote_takes_the_first_quote_as_baseline() -> None:
    nma = NewsMoversAnalyzer()
    run(nma, news("https://n/4", at_ms(DAY, 10, 0), "NEW"), now_ms=at_ms(DAY, 10, 0))
    assert alerts(run(nma, q("NEW", at_ms(DAY, 10, 1), 2.0), now_ms=at_ms(DAY, 10, 1))) == []
    (alert,) = alerts(run(nma, q("NEW", at_ms(DAY, 10, 2), 2.2), now_ms=at_ms(DAY, 10, 2)))
    assert alert.base_price == 2.0


def test_moves_after_the_window_are_not_the_news() -> None:
    nma = NewsMoversAnalyzer(news_window_seconds=1800)
    run(
        nma,
        q("ACME", at_ms(DAY, 10, 0), 10.0),
        news("https://n/5", at_ms(DAY, 10, 0), "ACME"),
        now_ms=at_ms(DAY, 10, 0),
    )
    assert alerts(run(nma, q("ACME", at_ms(DAY, 10, 31), 20.0), now_ms=at_ms(DAY, 10, 31))) == []


def test_a_new_day_forgets_yesterdays_news_and_bad_inputs_are_counted() -> None:
    nma = NewsMoversAnalyzer()
    run(
        nma,
        q("ACME", at_ms(DAY, 19, 0), 10.0),
        news("https://n/6", at_ms(DAY, 19, 0), "ACME"),
        now_ms=at_ms(DAY, 19, 0),
    )
    out = run(nma, q("ACME", at_ms(NEXT, 4, 1), 20.0, day=NEXT), now_ms=at_ms(NEXT, 4, 1))
    assert alerts(out) == []
    run(
        nma,
        FeedMessage("news:latest", b"{}"),
        FeedMessage("quote:X", b"1"),
        now_ms=at_ms(NEXT, 5, 0),
    )
    assert sum(nma.rejected.values()) == 2


@given(
    st.lists(st.floats(min_value=5, max_value=15, allow_nan=False), min_size=1, max_size=20),
    st.integers(min_value=1, max_value=3),
)
def test_one_alert_at_most_per_article_whatever_the_repeats(
    prices: list[float], copies: int
) -> None:
    nma = NewsMoversAnalyzer(news_move_pct=5.0)
    run(
        nma,
        q("ACME", at_ms(DAY, 10, 0), 10.0),
        news("https://n/7", at_ms(DAY, 10, 0), "ACME"),
        now_ms=at_ms(DAY, 10, 0),
    )
    raised: list[NewsMoverAlert] = []
    for i, price in enumerate(prices):
        record = q("ACME", at_ms(DAY, 10, 1) + i * 1_000, price)
        raised += alerts(run(nma, *([record] * copies), now_ms=at_ms(DAY, 10, 5)))
    moved = [p for p in prices if abs(p - 10.0) / 10.0 * 100.0 >= 5.0]
    assert len(raised) == (1 if moved else 0)
    if moved:
        assert raised[0].price == moved[0]


def test_a_restart_rearms_the_articles_of_the_window_from_the_snapshot() -> None:
    nma = NewsMoversAnalyzer(news_window_seconds=1800)
    assert tuple(nma.snapshot_patterns()) == ("news:latest",)
    recent = json.loads(news("https://n/8", at_ms(DAY, 10, 0), "ACME").payload)
    old = json.loads(news("https://n/9", at_ms(DAY, 9, 0), "OLD").payload)
    snapshot = json.dumps([recent, old]).encode()  # newest first, as WDC stores it
    nma.restore({"news:latest": snapshot}, at_ms(DAY, 10, 5) * MS)
    # The first record after the restart is the baseline; a move from it alerts.
    assert alerts(run(nma, q("ACME", at_ms(DAY, 10, 6), 10.0), now_ms=at_ms(DAY, 10, 6))) == []
    (alert,) = alerts(run(nma, q("ACME", at_ms(DAY, 10, 7), 10.6), now_ms=at_ms(DAY, 10, 7)))
    assert alert.link == "https://n/8"
    # The hour-old article is not re-armed.
    run(nma, q("OLD", at_ms(DAY, 10, 6), 10.0), now_ms=at_ms(DAY, 10, 6))
    assert alerts(run(nma, q("OLD", at_ms(DAY, 10, 7), 20.0), now_ms=at_ms(DAY, 10, 7))) == []
    nma.restore({"news:latest": b"not json"}, at_ms(DAY, 10, 8) * MS)
    assert nma.rejected["invalid_snapshot"] == 1
