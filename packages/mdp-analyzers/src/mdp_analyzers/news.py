"""The news analyzer: Finlight articles into the latest-news feed and per-ticker feeds.

Which tickers an article is about comes from Finlight's entity extraction (the companies it
lists, US listings only). Articles without companies fall back to what the text itself says:
cashtags (``$ACME``) and exchange notations (``(NASDAQ: ACME)``). Each link is published once;
an update of an article (same link, newer revision) replaces nothing already shown, it is simply
skipped, because widgets list headlines, not revisions.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import FEED_NEWS_LATEST, FEED_NEWS_TICKER, Feed
from mdp_core.news import Article, Company

__all__ = ["FinlightDataAnalyzer", "NewsItem", "tickers_of"]

#: Exchange codes and names of US listings (MIC codes and the names Finlight uses).
US_EXCHANGES: Final = frozenset(
    {
        "XNAS", "XNYS", "XASE", "ARCX", "BATS", "XNGS", "XNCM", "XNMS", "IEXG", "OTC", "OTCM",
        "NASDAQ", "NYSE", "NYSE AMERICAN", "NYSE ARCA", "AMEX", "CBOE", "IEX",
    }
)  # fmt: skip
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Z]{1,5}(?:\.[A-Z])?)\b")
_EXCHANGE_NOTATION = re.compile(
    r"\((?:NASDAQ|Nasdaq|NYSE(?: American| Arca)?|AMEX|NYSEARCA|NYSEAMERICAN|OTC)\s*:\s*"
    r"([A-Z]{1,5}(?:\.[A-Z])?)\)"
)
_SYMBOL = re.compile(r"^[A-Z]{1,5}(?:\.[A-Z])?$")


class NewsItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One element of a news feed: the article's headline fields plus the tickers it concerns."""

    link: str
    title: str
    source: str
    published_ms: int
    tickers: tuple[str, ...]
    summary: str | None = None
    sentiment: str | None = None
    confidence: float | None = None
    categories: tuple[str, ...] = ()
    image: str | None = None


def _is_us_listing(company: Company) -> bool:
    listing = company.primary_listing
    if listing is not None and listing.exchange_country is not None:
        return listing.exchange_country.upper() == "US"
    if listing is not None and listing.exchange_code is not None:
        return listing.exchange_code.upper() in US_EXCHANGES
    if company.exchange is not None:
        return company.exchange.upper() in US_EXCHANGES
    return company.country is not None and company.country.upper() in {"US", "USA"}


def _unix_ms(moment: datetime) -> int:
    """Unix milliseconds; a timestamp without an offset is taken as UTC, as Finlight means it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _ordered_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def tickers_of(article: Article) -> tuple[str, ...]:
    """The US tickers an article is about, in the order they were named, without repeats."""
    if article.companies:
        found: list[str] = []
        for company in article.companies:
            if not _is_us_listing(company):
                continue
            listing = company.primary_listing
            ticker = listing.ticker if listing is not None else company.ticker
            ticker = ticker.strip().upper()
            if _SYMBOL.match(ticker):
                found.append(ticker)
        return _ordered_unique(found)
    text = f"{article.title}\n{article.summary or ''}"
    matches = [m.group(1) for m in _EXCHANGE_NOTATION.finditer(text)]
    matches += [m.group(1) for m in _CASHTAG.finditer(text)]
    return _ordered_unique(matches)


class FinlightDataAnalyzer:
    """Publishes each new article to ``news:latest`` and to ``news:ticker:{symbol}``.

    Args:
        latest_max_len: Cap of the latest-news list (defaults to the catalogue's).
        ticker_max_len: Cap of each per-ticker list.
        latest_ttl: Seconds the latest-news list lives after its last write.
        ticker_ttl: Seconds a per-ticker list lives after its last write.
        remember_links: How many recent links are remembered for de-duplication.
    """

    name: ClassVar[str] = "news"
    consumes: ClassVar[frozenset[str]] = frozenset({"news"})

    def __init__(
        self,
        *,
        latest_max_len: int | None = None,
        ticker_max_len: int | None = None,
        latest_ttl: int | None = None,
        ticker_ttl: int | None = None,
        remember_links: int = 10_000,
    ) -> None:
        self._latest: Feed = replace(
            FEED_NEWS_LATEST,
            max_len=latest_max_len or FEED_NEWS_LATEST.max_len,
            ttl=latest_ttl or FEED_NEWS_LATEST.ttl,
        )
        self._ticker: Feed = replace(
            FEED_NEWS_TICKER,
            max_len=ticker_max_len or FEED_NEWS_TICKER.max_len,
            ttl=ticker_ttl or FEED_NEWS_TICKER.ttl,
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_links
        self._pending: list[WidgetWrite] = []
        self.duplicates = 0
        self.published = 0

    def apply(self, inputs: Sequence[Article], now_ns: int) -> None:
        """Queue a write per new article; articles are taken oldest first."""
        del now_ns  # articles carry their own publication time
        for article in sorted(inputs, key=lambda a: a.publish_date):
            if article.link in self._seen:
                self._seen.move_to_end(article.link)
                self.duplicates += 1
                continue
            self._remember_link(article.link)
            tickers = tickers_of(article)
            item = NewsItem(
                link=article.link,
                title=article.title,
                source=article.source,
                published_ms=_unix_ms(article.publish_date),
                tickers=tickers,
                summary=article.summary,
                sentiment=article.sentiment,
                confidence=article.confidence,
                categories=article.categories,
                image=article.images[0] if article.images else None,
            )
            payload = msgspec.json.encode(item)
            self._pending.append(WidgetWrite(self._latest, self._latest.name(), payload))
            self._pending.extend(
                WidgetWrite(self._ticker, self._ticker.name(symbol=symbol), payload)
                for symbol in tickers
            )
            self.published += 1

    def collect(self, now_ns: int) -> Output:
        """Everything queued since the last call, in publication order."""
        del now_ns
        pending, self._pending = self._pending, []
        return Output(widgets=pending)

    def _remember_link(self, link: str) -> None:
        self._seen[link] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
