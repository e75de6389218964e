from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.news import FinlightDataAnalyzer, tickers_of
from mdp_cache.keys import FEED_NEWS_LATEST, FEED_NEWS_TICKER
from mdp_core.news import Article


def article(link: str = "https://n.example/1", **fields: Any) -> Article:
    wire: dict[str, Any] = {
        "link": link,
        "title": "Acme soars",
        "publishDate": "2026-11-23T14:30:00Z",
        "source": "n.example",
        "language": "en",
        **fields,
    }
    return msgspec.convert(wire, Article)


def company(ticker: str, **fields: Any) -> dict[str, Any]:
    return {"companyId": hash(ticker) % 1000, "name": f"{ticker} Inc", "ticker": ticker, **fields}


def test_us_listed_companies_name_the_tickers_and_foreign_ones_do_not() -> None:
    a = article(
        companies=[
            company("ACME", primaryListing={"ticker": "ACME", "exchangeCountry": "US"}),
            company("SAP", primaryListing={"ticker": "SAP", "exchangeCountry": "DE"}),
            company("BOLT", exchange="NASDAQ"),
            company("ACME", primaryListing={"ticker": "ACME", "exchangeCode": "XNAS"}),
            company("TOYO", country="JP"),
            company("ZED", country="US"),
        ]
    )
    assert tickers_of(a) == ("ACME", "BOLT", "ZED")


def test_without_companies_the_text_names_the_tickers() -> None:
    a = article(
        title="Acme (NASDAQ: ACME) rallies", summary="Shares of $BOLT and $ACME rose; $5 gain"
    )
    assert tickers_of(a) == ("ACME", "BOLT")
    assert tickers_of(article(title="Markets drift", summary="No names here")) == ()


def test_each_article_goes_to_the_latest_feed_and_its_tickers_once() -> None:
    analyzer = FinlightDataAnalyzer()
    a = article(companies=[company("ACME", exchange="NYSE"), company("BOLT", exchange="NYSE")])
    analyzer.apply([a, a], now_ns=0)
    analyzer.apply([a], now_ns=1)
    out = analyzer.collect(now_ns=2)

    assert [w.name for w in out.widgets] == ["news:latest", "news:ticker:ACME", "news:ticker:BOLT"]
    assert all(w.publish for w in out.widgets)
    assert len({w.payload for w in out.widgets}) == 1  # one encoding, written three times
    item = json.loads(out.widgets[0].payload)
    assert item["tickers"] == ["ACME", "BOLT"]
    assert item["published_ms"] == int(
        datetime(2026, 11, 23, 14, 30, tzinfo=UTC).timestamp() * 1000
    )
    assert analyzer.duplicates == 2
    assert not analyzer.collect(now_ns=3)


def test_caps_and_ttls_come_from_configuration() -> None:
    analyzer = FinlightDataAnalyzer(
        latest_max_len=5, ticker_max_len=3, latest_ttl=60, ticker_ttl=30
    )
    analyzer.apply([article(companies=[company("ACME", exchange="NYSE")])], now_ns=0)
    latest, ticker = analyzer.collect(now_ns=0).widgets
    assert (latest.feed.max_len, latest.feed.ttl) == (5, 60)
    assert (ticker.feed.max_len, ticker.feed.ttl) == (3, 30)
    assert latest.feed.matches(latest.name)
    assert ticker.feed.matches(ticker.name)
    assert (FEED_NEWS_LATEST.max_len, FEED_NEWS_TICKER.max_len) == (1_000, 100)  # untouched


def test_forgotten_links_are_bounded() -> None:
    analyzer = FinlightDataAnalyzer(remember_links=2)
    for i in range(3):
        analyzer.apply([article(f"https://n.example/{i}")], now_ns=0)
    analyzer.apply([article("https://n.example/0")], now_ns=0)  # fell out of memory: new again
    assert analyzer.published == 4


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=40))
def test_no_link_is_published_twice_whatever_the_order(links: list[int]) -> None:
    analyzer = FinlightDataAnalyzer()
    for i in links:
        analyzer.apply([article(f"https://n.example/{i}")], now_ns=0)
    names = [json.loads(w.payload)["link"] for w in analyzer.collect(now_ns=0).widgets]
    assert sorted(names) == sorted({f"https://n.example/{i}" for i in links})


# --------------------------------------------------------------------------------------------
# Pinned by mutation testing (issue 21): the de-duplication memory is a bounded LRU of links.


@given(
    st.integers(min_value=1, max_value=4),
    st.lists(st.integers(min_value=0, max_value=6), max_size=40),
)
def test_deduplication_is_a_least_recently_seen_memory_of_exactly_n_links(
    remember: int, links: list[int]
) -> None:
    reference: list[int] = []  # least recently seen first
    expected: list[int] = []
    duplicates = 0
    analyzer = FinlightDataAnalyzer(remember_links=remember)
    for i in links:
        analyzer.apply([article(f"https://n.example/{i}")], now_ns=0)
        if i in reference:
            reference.remove(i)  # seen again: now the most recent
            duplicates += 1
        else:
            expected.append(i)
            if len(reference) == remember:
                reference.pop(0)
        reference.append(i)
    published = [json.loads(w.payload)["link"] for w in analyzer.collect(now_ns=0).widgets]
    assert published == [f"https://n.example/{i}" for i in expected]
    assert (analyzer.published, analyzer.duplicates) == (len(expected), duplicates)


def test_a_link_seen_again_is_remembered_longer() -> None:
    analyzer = FinlightDataAnalyzer(remember_links=2)
    for i in (0, 1, 0, 2, 0):  # 0 refreshed before 2 arrives: 1 is forgotten, not 0
        analyzer.apply([article(f"https://n.example/{i}")], now_ns=0)
    assert (analyzer.published, analyzer.duplicates) == (3, 2)
    analyzer.apply([article("https://n.example/1")], now_ns=0)
    assert analyzer.published == 4


def test_the_default_memory_holds_ten_thousand_links() -> None:
    analyzer = FinlightDataAnalyzer()
    for i in range(10_001):
        analyzer.apply([article(f"https://n.example/{i}")], now_ns=0)
    analyzer.apply([article("https://n.example/1")], now_ns=0)
    assert analyzer.duplicates == 1
    analyzer.apply([article("https://n.example/0")], now_ns=0)
    assert analyzer.published == 10_002


def test_a_published_item_carries_every_field_of_the_article() -> None:
    analyzer = FinlightDataAnalyzer()
    full = article(
        "https://n.example/full",
        title="Acme and Bolt",
        source="wire.example",
        publishDate="2026-11-23T14:30:00",  # no offset: taken as UTC
        summary="a summary",
        sentiment="positive",
        confidence=0.75,
        categories=["markets", "tech"],
        images=["https://img.example/1.png", "https://img.example/2.png"],
        companies=[
            company("acme", primaryListing={"ticker": "acme", "exchangeCode": "xnas"}),
            company("BOLT", primaryListing={"ticker": "BOLT", "exchangeCode": "XLON"}),
            company("CORE", country="usa"),
            company("DUKE", primaryListing={"ticker": "DUKE"}, exchange="nyse"),
        ],
    )
    analyzer.apply([full], now_ns=0)
    writes = analyzer.collect(now_ns=0).widgets
    assert [w.name for w in writes] == [
        "news:latest",
        "news:ticker:ACME",
        "news:ticker:CORE",
        "news:ticker:DUKE",
    ]
    assert json.loads(writes[0].payload) == {
        "link": "https://n.example/full",
        "title": "Acme and Bolt",
        "source": "wire.example",
        "published_ms": int(datetime(2026, 11, 23, 14, 30, tzinfo=UTC).timestamp() * 1000),
        "tickers": ["ACME", "CORE", "DUKE"],
        "summary": "a summary",
        "sentiment": "positive",
        "confidence": 0.75,
        "categories": ["markets", "tech"],
        "image": "https://img.example/1.png",
    }
    assert {w.payload for w in writes} == {writes[0].payload}


def test_an_offset_publication_time_is_kept_and_a_listing_ticker_beats_the_company_one() -> None:
    analyzer = FinlightDataAnalyzer()
    analyzer.apply(
        [
            article(
                publishDate="2026-11-23T09:30:00-05:00",
                companies=[
                    company("OLD", primaryListing={"ticker": "NEW", "exchangeCountry": "us"})
                ],
            )
        ],
        now_ns=0,
    )
    (latest, ticker) = analyzer.collect(now_ns=0).widgets
    item = json.loads(latest.payload)
    assert item["published_ms"] == int(
        datetime(2026, 11, 23, 14, 30, tzinfo=UTC).timestamp() * 1000
    )
    assert item["tickers"] == ["NEW"]
    assert ticker.name == "news:ticker:NEW"
    assert "image" not in item
    assert "summary" not in item


def test_a_duplicate_inside_a_batch_does_not_stop_the_rest() -> None:
    analyzer = FinlightDataAnalyzer()
    first = article("https://n.example/a", publishDate="2026-11-23T14:30:00Z")
    again = article("https://n.example/a", publishDate="2026-11-23T14:31:00Z")
    later = article("https://n.example/b", publishDate="2026-11-23T14:32:00Z")
    analyzer.apply([later, again, first], now_ns=0)  # taken oldest first
    links = [json.loads(w.payload)["link"] for w in analyzer.collect(now_ns=0).widgets]
    assert links == ["https://n.example/a", "https://n.example/b"]
    assert (analyzer.published, analyzer.duplicates) == (2, 1)


def test_cashtags_in_the_title_count_when_there_is_no_summary() -> None:
    assert tickers_of(article(title="$ACME and (NYSE: BOLT) move")) == ("BOLT", "ACME")
