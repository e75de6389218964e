"""News-driven movers (event correlation): a symbol moving after news about it.

Runs in the scanner on the news items the news processor publishes (``news:latest``: headline,
link, source, ``published_ms`` and the ``tickers`` it concerns) and on the quote records
(``quote:{symbol}``). For each (symbol, article):

* The **baseline** is the symbol's latest quote record when the article arrives (the price
  and time-of-day RVol before the news); without one yet, the first record after it.
* Within ``news_window_seconds`` of the article (quote event time minus ``published_ms``), the
  first record whose price moved at least ``news_move_pct`` % from the baseline (up or down),
  or whose ``rvol_tod`` reached ``news_rvol`` when the baseline's was below it, raises one
  alert with the headline attached; ``reason`` says which (``price`` is checked first).
* Identity ``symbol|link``: one alert per article and symbol across replicas and restarts.
  List feed ``alerts:news``, newest first by ``as_of_ms`` (the quote's event time).
* A symbol keeps its ``_MAX_ARTICLES`` latest articles; everything is dropped at 04:00 ET.

After a restart the articles of the last ``news_window_seconds`` are read back from the
``news:latest`` snapshot; their baseline is the first quote record after the restart (a move
made during the outage is not credited), and one alerted before the restart is not appended
again (its identity).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.alerts import AlertQueue, DayClock, QuoteSeen, decode_quote_seen
from mdp_analyzers.typing import FeedMessage, Output
from mdp_cache.keys import FEED_ALERTS_NEWS, FEED_NEWS_LATEST, FEED_QUOTE
from mdp_core.calendar import MarketCalendar
from mdp_core.errors import InvalidJson, MalformedInput

__all__ = ["NewsMoverAlert", "NewsMoversAnalyzer"]

_MAX_ARTICLES: Final = 8
_MS_PER_MINUTE: Final = 60_000


class NewsMoverAlert(msgspec.Struct, kw_only=True):
    """One element of ``alerts:news``."""

    symbol: str
    trading_day: str
    reason: str
    headline: str
    source: str
    link: str
    published_ms: int
    base_price: float
    price: float
    pct_move: float
    rvol_tod: float | None
    minutes_since_news: float
    note: str
    as_of_ms: int


class _Item(msgspec.Struct, frozen=True):
    """The fields of a news item this analyzer reads."""

    link: str
    title: str
    published_ms: int
    tickers: tuple[str, ...] = ()
    source: str = ""


_ITEM_DECODER: Final = msgspec.json.Decoder(_Item)
_ITEMS_DECODER: Final = msgspec.json.Decoder(list[_Item])
_NS_PER_MS: Final = 1_000_000


@dataclass(slots=True)
class _Article:
    item: _Item
    base: QuoteSeen | None


class NewsMoversAnalyzer:
    """Symbols moving on price or time-of-day RVol after news (see the module docstring).

    Args:
        calendar: The market calendar (trading days).
        news_window_seconds: How long after an article a move is credited to it.
        news_move_pct: Price move from the baseline, in percent, that alerts.
        news_rvol: Time-of-day RVol that alerts when the baseline was below it.

    Raises:
        ValueError: a non-positive window, move or RVol.
    """

    name: ClassVar[str] = "news_movers"
    consumes: ClassVar[frozenset[str]] = frozenset({FEED_NEWS_LATEST.pattern, FEED_QUOTE.pattern})

    def __init__(
        self,
        calendar: MarketCalendar | None = None,
        *,
        news_window_seconds: float = 1800.0,
        news_move_pct: float = 5.0,
        news_rvol: float = 3.0,
    ) -> None:
        if min(news_window_seconds, news_move_pct, news_rvol) <= 0:
            msg = "news window, move and RVol must be above 0"
            raise ValueError(msg)
        self.window_ms = int(news_window_seconds * 1000)
        self.move_pct = news_move_pct
        self.rvol = news_rvol
        self._clock = DayClock(calendar or MarketCalendar())
        self._last: dict[str, QuoteSeen] = {}
        self._articles: dict[str, list[_Article]] = {}
        #: (symbol, link) of the articles that already alerted today (never re-armed).
        self._done: set[tuple[str, str]] = set()
        self._alerts = AlertQueue(FEED_ALERTS_NEWS)

    @property
    def rejected(self) -> Counter[str]:
        """Inputs skipped, by reason."""
        return self._alerts.rejected

    def apply(self, inputs: Sequence[object], now_ns: int) -> None:
        """Fold news items and quote records, in arrival order."""
        self._roll(now_ns)
        for message in inputs:
            if not isinstance(message, FeedMessage):
                continue
            try:
                if message.name == FEED_NEWS_LATEST.name():
                    self._news(message.payload)
                elif FEED_QUOTE.matches(message.name):
                    self._quote(decode_quote_seen(message.payload), now_ns)
            except MalformedInput as exc:
                self._alerts.reject(exc)

    def collect(self, now_ns: int) -> Output:
        """The alerts raised since the last call, in event-time order."""
        self._roll(now_ns)
        return Output(widgets=self._alerts.take())

    # --- Rehydratable ---------------------------------------------------------------------

    def snapshot_patterns(self) -> Sequence[str]:
        """The latest news (``news:latest``)."""
        return (FEED_NEWS_LATEST.name(),)

    def restore(self, snapshots: Mapping[str, bytes], now_ns: int) -> None:
        """Re-arm the articles of the last window (oldest first, as they were published)."""
        self._roll(now_ns)
        payload = snapshots.get(FEED_NEWS_LATEST.name())
        if payload is None:
            return
        try:
            items = _ITEMS_DECODER.decode(payload)
        except msgspec.DecodeError:
            self.rejected["invalid_snapshot"] += 1
            return
        now_ms = now_ns // _NS_PER_MS
        for item in reversed(items):
            if 0 <= now_ms - item.published_ms <= self.window_ms:
                self._add(item)

    # --- internals ------------------------------------------------------------------------

    def _roll(self, now_ns: int) -> None:
        if self._clock.roll(now_ns):
            self._last.clear()
            self._articles.clear()
            self._done.clear()

    def _news(self, payload: bytes) -> None:
        try:
            item = _ITEM_DECODER.decode(payload)
        except msgspec.DecodeError as exc:
            raise InvalidJson(f"not a news item: {exc}") from None
        self._add(item)

    def _add(self, item: _Item) -> None:
        for symbol in item.tickers:
            articles = self._articles.setdefault(symbol, [])
            if (symbol, item.link) in self._done or any(
                article.item.link == item.link for article in articles
            ):
                continue
            articles.append(_Article(item, self._last.get(symbol)))
            del articles[:-_MAX_ARTICLES]

    def _quote(self, seen: QuoteSeen, now_ns: int) -> None:
        if self._clock.is_stale(seen.trading_day):
            self.rejected["stale_day"] += 1
            return
        if self._clock.is_ahead(seen.trading_day, now_ns):
            self.rejected["future_day"] += 1
            return
        last = self._last.get(seen.symbol)
        if last is None or seen.end_ms >= last.end_ms:
            self._last[seen.symbol] = seen
        articles = self._articles.get(seen.symbol)
        if not articles:
            return
        kept: list[_Article] = []
        for article in articles:
            since_ms = seen.end_ms - article.item.published_ms
            if since_ms > self.window_ms:
                continue  # the window closed: the move is not this article's
            if article.base is None:
                article.base = seen
                kept.append(article)
                continue
            if not self._moved(seen, article):
                kept.append(article)
        self._articles[seen.symbol] = kept

    def _moved(self, seen: QuoteSeen, article: _Article) -> bool:
        """Raise the alert if ``seen`` moved enough since ``article``; whether it did."""
        base = article.base
        assert base is not None
        if seen.end_ms < article.item.published_ms:
            return False  # a record from before the news is no reaction to it
        move = (seen.price - base.price) / base.price * 100.0
        base_rvol = base.rvol_tod if base.rvol_tod is not None else 0.0
        if abs(move) >= self.move_pct:
            reason = "price"
            note = f"{move:+.1f}% since the news"
        elif seen.rvol_tod is not None and seen.rvol_tod >= self.rvol > base_rvol:
            reason = "rvol"
            note = f"RVol {seen.rvol_tod:.1f}x since the news (was {base_rvol:.1f}x)"
        else:
            return False
        item = article.item
        minutes = round((seen.end_ms - item.published_ms) / _MS_PER_MINUTE, 1)
        alert = NewsMoverAlert(
            symbol=seen.symbol,
            trading_day=seen.trading_day,
            reason=reason,
            headline=item.title,
            source=item.source,
            link=item.link,
            published_ms=item.published_ms,
            base_price=base.price,
            price=seen.price,
            pct_move=round(move, 4),
            rvol_tod=seen.rvol_tod,
            minutes_since_news=minutes,
            note=f"{note}, {minutes:g} min after it",
            as_of_ms=seen.end_ms,
        )
        self._done.add((seen.symbol, item.link))
        identity = f"{seen.symbol}|{item.link}"
        self._alerts.raise_alert(alert, as_of_ms=seen.end_ms, identity=identity)
        return True
