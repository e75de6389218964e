"""NewsMoversAnalyzer: symbols moving on price or RVol after news about them."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import msgspec
import pytest
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


def _primed(nma: NewsMoversAnalyzer, price: float = 4.0, rvol: float | None = 1.0) -> int:
    """ACME quoted at ``price`` then news at 10:00; the news time."""
    published = at_ms(DAY, 10, 0)
    run(
        nma,
        q("ACME", published - 1_000, price, rvol=rvol),
        news("https://n/p", published, "ACME"),
        now_ms=published,
    )
    return published


def test_defaults_and_names() -> None:
    nma = NewsMoversAnalyzer()
    assert (nma.window_ms, nma.move_pct, nma.rvol) == (1_800_000, 5.0, 3.0)
    assert (nma.name, nma.consumes) == ("news_movers", frozenset({"news:latest", "quote:*"}))


def test_each_setting_must_be_positive_and_may_be_small() -> None:
    for window, move, rvol in ((0, 1, 1), (1, 0, 1), (1, 1, 0)):
        with pytest.raises(ValueError, match=r"^news window, move and RVol must be above 0$"):
            NewsMoversAnalyzer(news_window_seconds=window, news_move_pct=move, news_rvol=rvol)
    small = NewsMoversAnalyzer(news_window_seconds=30, news_move_pct=0.5, news_rvol=0.5)
    assert (small.window_ms, small.move_pct, small.rvol) == (30_000, 0.5, 0.5)


def test_a_move_of_exactly_the_threshold_alerts_and_just_under_does_not() -> None:
    nma = NewsMoversAnalyzer(news_move_pct=6.25)
    published = _primed(nma)
    under = q("ACME", published + 60_000, 4.2499)
    assert alerts(run(nma, under, now_ms=published + 60_000)) == []
    out = run(nma, q("ACME", published + 90_000, 3.75), now_ms=published + 90_000)
    (alert,) = alerts(out)
    assert alert == NewsMoverAlert(
        symbol="ACME",
        trading_day="2026-03-04",
        reason="price",
        headline="ACME wins",
        source="wire",
        link="https://n/p",
        published_ms=published,
        base_price=4.0,
        price=3.75,
        pct_move=-6.25,
        rvol_tod=1.0,
        minutes_since_news=1.5,
        note="-6.2% since the news, 1.5 min after it",
        as_of_ms=published + 90_000,
    )


def test_pct_move_and_minutes_are_rounded() -> None:
    nma = NewsMoversAnalyzer(news_move_pct=5.0)
    published = _primed(nma, price=3.0)
    (alert,) = alerts(run(nma, q("ACME", published + 100_000, 3.2), now_ms=published + 100_000))
    assert (alert.pct_move, alert.minutes_since_news) == (6.6667, 1.7)
    assert alert.note == "+6.7% since the news, 1.7 min after it"


def test_rvol_reaching_the_level_exactly_alerts_when_the_baseline_was_below_it() -> None:
    nma = NewsMoversAnalyzer(news_rvol=3.0)
    published = _primed(nma, rvol=2.99)
    stay = q("ACME", published + 60_000, 4.0, rvol=2.999)
    assert alerts(run(nma, stay, now_ms=published + 60_000)) == []
    (alert,) = alerts(
        run(nma, q("ACME", published + 120_000, 4.1, rvol=3.0), now_ms=published + 120_000)
    )
    assert (alert.reason, alert.rvol_tod, alert.pct_move) == ("rvol", 3.0, 2.5)
    assert alert.note == "RVol 3.0x since the news (was 3.0x), 2 min after it"


def test_a_baseline_exactly_at_the_rvol_level_is_no_crossing() -> None:
    nma = NewsMoversAnalyzer(news_rvol=3.0)
    published = _primed(nma, rvol=3.0)
    assert alerts(run(nma, q("ACME", published + 60_000, 4.0, rvol=9.0), now_ms=published)) == []


def test_a_baseline_without_rvol_counts_as_zero_and_a_record_without_rvol_never_crosses() -> None:
    nma = NewsMoversAnalyzer(news_rvol=0.5)
    published = _primed(nma, rvol=None)
    none = q("ACME", published + 30_000, 4.0, rvol=None)
    assert alerts(run(nma, none, now_ms=published + 30_000)) == []
    (alert,) = alerts(
        run(nma, q("ACME", published + 60_000, 4.0, rvol=0.5), now_ms=published + 60_000)
    )
    assert (alert.reason, alert.note) == (
        "rvol",
        "RVol 0.5x since the news (was 0.0x), 1 min after it",
    )


def test_the_window_edge_is_inclusive_and_a_closed_article_does_not_stop_the_others() -> None:
    nma = NewsMoversAnalyzer(news_window_seconds=60)
    published = at_ms(DAY, 10, 0)
    run(
        nma,
        q("ACME", published - 1_000, 4.0),
        news("https://n/old", published - 1, "ACME"),
        news("https://n/new", published, "ACME"),
        now_ms=published,
    )
    out = alerts(run(nma, q("ACME", published + 60_000, 5.0), now_ms=published + 60_000))
    assert [(a.link, a.minutes_since_news) for a in out] == [("https://n/new", 1.0)]
    nma2 = NewsMoversAnalyzer(news_window_seconds=60)
    run(
        nma2,
        q("ACME", published - 1_000, 4.0),
        news("https://n/edge", published, "ACME"),
        now_ms=published,
    )
    late = q("ACME", published + 60_001, 5.0)
    assert alerts(run(nma2, late, now_ms=published + 60_001)) == []


def test_a_record_at_the_news_time_counts_and_one_before_it_does_not() -> None:
    nma = NewsMoversAnalyzer()
    published = _primed(nma)
    early = q("ACME", published - 1, 8.0)  # arrives late, made before the news
    assert alerts(run(nma, early, now_ms=published)) == []
    (alert,) = alerts(run(nma, q("ACME", published, 8.0), now_ms=published))
    assert (alert.minutes_since_news, alert.base_price) == (0.0, 4.0)


def test_the_baseline_is_the_latest_record_by_event_time() -> None:
    nma = NewsMoversAnalyzer(news_move_pct=5.0)
    published = at_ms(DAY, 10, 0)
    run(
        nma,
        q("ACME", published - 2_000, 9.0),
        q("ACME", published - 1_000, 5.0),
        q("ACME", published - 1_000, 4.0),  # same bar, newer copy: the baseline
        q("ACME", published - 3_000, 9.0),  # late and older: not the baseline
        news("https://n/b", published, "ACME"),
        now_ms=published,
    )
    (alert,) = alerts(run(nma, q("ACME", published + 1_000, 4.2), now_ms=published + 1_000))
    assert alert.base_price == 4.0


def test_the_same_article_twice_before_a_move_alerts_once() -> None:
    nma = NewsMoversAnalyzer()
    published = at_ms(DAY, 10, 0)
    item = news("https://n/d", published, "ACME", "BOLT")
    run(
        nma,
        q("ACME", published - 1, 4.0),
        q("BOLT", published - 1, 4.0),
        item,
        item,
        now_ms=published,
    )
    out = run(
        nma, q("ACME", published + 1, 5.0), q("BOLT", published + 1, 5.0), now_ms=published + 1
    )
    assert [w.identity for w in out.widgets] == ["ACME|https://n/d", "BOLT|https://n/d"]


def test_a_symbol_keeps_its_eight_latest_articles() -> None:
    nma = NewsMoversAnalyzer()
    published = at_ms(DAY, 10, 0)
    items = [news(f"https://n/{k}", published + k, "ACME") for k in range(9)]
    run(nma, q("ACME", published - 1, 4.0), *items, now_ms=published + 9)
    out = alerts(run(nma, q("ACME", published + 10, 5.0), now_ms=published + 10))
    assert sorted(a.link for a in out) == sorted(f"https://n/{k}" for k in range(1, 9))


def test_restore_window_edges_and_the_newest_articles_kept() -> None:
    nma = NewsMoversAnalyzer(news_window_seconds=1800)
    now = at_ms(DAY, 10, 30)
    items = [
        json.loads(news(f"https://n/r{k}", now - 1_800_000 + k, "ACME").payload)
        for k in range(8, -1, -1)  # newest first, the oldest exactly a window ago
    ]
    future = json.loads(news("https://n/future", now + 1, "ACME").payload)
    stale = json.loads(news("https://n/stale", now - 1_800_001, "BOLT").payload)
    nma.restore({"news:latest": json.dumps([future, *items, stale]).encode()}, now * MS)
    nma.restore({}, now * MS)  # no snapshot: nothing changes
    run(nma, q("ACME", now, 4.0), q("BOLT", now, 4.0), now_ms=now)
    out = run(nma, q("ACME", now + 1, 5.0), q("BOLT", now + 1, 5.0), now_ms=now + 1)
    assert sorted(str(w.identity) for w in out.widgets) == sorted(
        f"ACME|https://n/r{k}" for k in range(1, 9)
    )
    edge = NewsMoversAnalyzer(news_window_seconds=1800)
    only = json.dumps([items[-1]]).encode()  # published exactly a window before now
    edge.restore({"news:latest": only}, now * MS)
    run(edge, q("ACME", now - 1_800_000, 4.0), now_ms=now)
    (alert,) = alerts(run(edge, q("ACME", now - 1_800_000 + 1, 5.0), now_ms=now))
    assert alert.link == "https://n/r0"


def test_a_new_day_forgets_the_last_quote_and_rearms_an_article() -> None:
    nma = NewsMoversAnalyzer()
    run(nma, q("ACME", at_ms(DAY, 19, 0), 10.0), now_ms=at_ms(DAY, 19, 0))
    published = at_ms(DAY, 19, 1)
    run(nma, news("https://n/x", published, "ACME"), now_ms=published)
    assert alerts(run(nma, q("ACME", published + 1, 20.0), now_ms=published + 1))
    nma.collect(at_ms(NEXT, 4, 0) * MS)  # the day rolls on the clock alone
    t = at_ms(NEXT, 4, 1)
    run(nma, news("https://n/x", t, "ACME"), now_ms=t)
    first = q("ACME", t + 1, 4.0, day=NEXT)  # the baseline: not yesterday's 20.0
    assert alerts(run(nma, first, now_ms=t + 1)) == []
    (alert,) = alerts(run(nma, q("ACME", t + 2, 4.4, day=NEXT), now_ms=t + 2))
    assert (alert.link, alert.base_price) == ("https://n/x", 4.0)


def test_stale_records_are_each_counted_and_foreign_inputs_ignored() -> None:
    nma = NewsMoversAnalyzer()
    now = at_ms(NEXT, 9, 0)
    record = news("https://n/f", now, "ACME")
    nma.apply(
        [object(), FeedMessage("news:other", record.payload), record.payload, record],
        now * MS,
    )
    stale = [q("ACME", at_ms(DAY, 15, m), 4.0) for m in range(2)]
    run(nma, *stale, q("ACME", now + 1, 4.0, day=NEXT), now_ms=now + 1)
    assert nma.rejected == {"stale_day": 2}
    (alert,) = alerts(run(nma, q("ACME", now + 2, 5.0, day=NEXT), now_ms=now + 2))
    assert alert.link == "https://n/f"


def test_an_article_known_for_one_ticker_still_reaches_its_other_tickers() -> None:
    nma = NewsMoversAnalyzer()
    published = at_ms(DAY, 10, 0)
    run(nma, q("ACME", published - 1, 4.0), q("BOLT", published - 1, 4.0), now_ms=published)
    run(nma, news("https://n/t", published, "ACME"), now_ms=published)
    assert alerts(run(nma, q("ACME", published + 1, 5.0), now_ms=published + 1))
    # Republished with a second ticker: ACME's alert is done, BOLT's is new.
    run(nma, news("https://n/t", published, "ACME", "BOLT"), now_ms=published + 2)
    out = run(
        nma, q("ACME", published + 3, 6.0), q("BOLT", published + 3, 5.0), now_ms=published + 3
    )
    assert [w.identity for w in out.widgets] == ["BOLT|https://n/t"]


def test_restore_takes_an_article_published_at_now_and_reads_now_in_whole_ms() -> None:
    nma = NewsMoversAnalyzer(news_window_seconds=60)
    now = at_ms(DAY, 10, 1)
    items = [
        json.loads(news("https://n/now", now, "ACME").payload),
        json.loads(news("https://n/edge", now - 60_000, "BOLT").payload),
    ]
    payload = json.dumps(items).encode()
    nma.restore({"news:latest": b"{"}, now * MS)
    nma.restore({"news:latest": b"["}, now * MS)
    assert nma.rejected["invalid_snapshot"] == 2
    nma.restore({"news:latest": payload}, now * MS + 999_999)  # still the same millisecond
    run(nma, q("ACME", now, 4.0), q("BOLT", now - 60_000, 4.0), now_ms=now)
    out = run(nma, q("ACME", now + 1, 5.0), q("BOLT", now - 59_999, 5.0), now_ms=now + 1)
    assert sorted(str(w.identity) for w in out.widgets) == [
        "ACME|https://n/now",
        "BOLT|https://n/edge",
    ]


def _reference_alert(
    before: list[tuple[int, float, float | None]],
    after: list[tuple[int, float, float | None]],
    window_ms: int,
) -> tuple[int, str, float] | None:
    """(index in ``after``, reason, base price) of the one alert the rules give, if any.

    Times are milliseconds after the news.
    """
    base = None
    for end, price, rvol in before:  # the baseline: the latest record by event time
        if base is None or end >= base[0]:
            base = (end, price, rvol)
    for index, (end, price, rvol) in enumerate(after):
        if end > window_ms:
            return None
        if base is None:
            base = (end, price, rvol)
            continue
        if end < 0:
            continue
        move = (price - base[1]) / base[1] * 100.0
        base_rvol = base[2] or 0.0
        if abs(move) >= 10.0:
            return index, "price", base[1]
        if rvol is not None and rvol >= 2.0 > base_rvol:
            return index, "rvol", base[1]
    return None


_QUOTES = st.lists(
    st.tuples(
        st.integers(min_value=-3, max_value=4).map(lambda m: m * 30_000),
        st.sampled_from([8.0, 9.0, 9.5, 10.0, 10.5, 11.0, 12.0]),
        st.sampled_from([None, 0.0, 1.0, 1.99, 2.0, 3.0]),
    ),
    max_size=8,
)


@given(_QUOTES, _QUOTES)
def test_the_alert_matches_a_reference_reading_of_the_rules(
    before: list[tuple[int, float, float | None]], after: list[tuple[int, float, float | None]]
) -> None:
    published = at_ms(DAY, 10, 0)
    nma = NewsMoversAnalyzer(news_window_seconds=90, news_move_pct=10.0, news_rvol=2.0)
    run(
        nma,
        *(q("ACME", published + end, price, rvol=rvol) for end, price, rvol in before),
        news("https://n/ref", published, "ACME"),
        now_ms=published,
    )
    raised: list[tuple[int, str, float]] = []
    for index, (end, price, rvol) in enumerate(after):
        out = alerts(run(nma, q("ACME", published + end, price, rvol=rvol), now_ms=published))
        raised += [(index, alert.reason, alert.base_price) for alert in out]
    expected = _reference_alert(before, after, 90_000)
    assert raised == ([expected] if expected else [])


def test_a_record_of_a_day_not_begun_is_neither_a_base_nor_a_move() -> None:
    nma = NewsMoversAnalyzer(news_move_pct=5.0)
    published = at_ms(DAY, 10, 1)
    run(nma, news("https://n/1", published, "ACME"), now_ms=published)
    bogus = q("ACME", at_ms(DAY, 10, 2), 99.0, day=NEXT)  # tomorrow's date, today's time
    ahead = q("ACME", at_ms(NEXT, 10, 2), 99.0, day=NEXT)
    assert alerts(run(nma, bogus, ahead, now_ms=at_ms(DAY, 10, 2))) == []
    assert nma.rejected["future_day"] == 2
    # The base is today's first record after the news, and the move is measured from it.
    run(nma, q("ACME", at_ms(DAY, 10, 3), 10.0), now_ms=at_ms(DAY, 10, 3))
    (alert,) = alerts(run(nma, q("ACME", at_ms(DAY, 10, 4), 10.6), now_ms=at_ms(DAY, 10, 4)))
    assert (alert.base_price, alert.price) == (10.0, 10.6)
