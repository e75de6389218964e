"""What the scanner's alert analyzers share: reading quote records and queueing alerts.

The unusual-volume, news-mover and halt analyzers run in the scanner (MDS) on the quote records
the leaderboard analyzer publishes (``quote:{symbol}``) and on other WDC feeds. Each alert is
one element of a list feed ordered by its event time (``as_of_ms``, the feed's ``order_by``),
queued here and written in event-time order, and carries an *identity* (what it is about, e.g.
``ACME|2026-03-04|3``): the scanner appends it once per identity across replicas and restarts,
which is what makes these analyzers replica-safe without rehydrating any state.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from datetime import date
from typing import Annotated, Final

import msgspec

from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import Feed
from mdp_core.calendar import MarketCalendar
from mdp_core.errors import InvalidJson, MalformedInput, MissingField, OutOfRange
from mdp_core.events import Symbol

__all__ = [
    "FUTURE_DAY_GRACE_MS",
    "AlertQueue",
    "DayClock",
    "EventMs",
    "QuoteSeen",
    "day_begun",
    "decode_quote_seen",
    "money",
]

_NS_PER_MS: Final = 1_000_000

#: An event time in ms as a record may carry it: before the year 3000, which the calendar
#: can place (a time near 10**15 ms made it overflow and fail the analyzer's whole batch).
EventMs = Annotated[int, msgspec.Meta(ge=0, le=32_503_680_000_000)]

FUTURE_DAY_GRACE_MS: Final = 60_000
"""How long before its 04:00 start a trading day's records already count.

A record of a later trading day than the clock's is accepted only this close to the
changeover (the clocks of two hosts differ a little); earlier it would move the symbol to a
day that has not begun and hide every record of today.
"""


def day_begun(calendar: MarketCalendar, now_ns: int) -> date:
    """The latest trading day whose records count at ``now_ns`` (see the grace above)."""
    return calendar.trading_day(now_ns + FUTURE_DAY_GRACE_MS * _NS_PER_MS)


class QuoteSeen(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fields of a quote record (a leaderboard row) the alert analyzers read.

    Attributes:
        symbol: The ticker.
        trading_day: The row's trading day (ISO date).
        price: The last price.
        open: The open of the row's bar (the first price after a halt, for a resume).
        start_ms: Start of the row's bar.
        end_ms: End of the row's bar: the record's event time.
        accumulated_volume: The day's volume so far.
        rvol_tod: Time-of-day relative volume, when known.
        pct_change: Change vs the previous close in percent, when known.
    """

    symbol: Symbol
    trading_day: str
    price: float
    open: float
    start_ms: EventMs
    end_ms: EventMs
    accumulated_volume: int = 0
    rvol_tod: float | None = None
    pct_change: float | None = None


_QUOTE_DECODER: Final = msgspec.json.Decoder(QuoteSeen)


def decode_quote_seen(payload: bytes) -> QuoteSeen:
    """Read a quote record.

    The scanner hands the same message to each alert analyzer in turn, a batch (up to 1,000
    messages by default) at a time, so the last 2,048 records read are remembered (by the
    payload's bytes; a record is immutable) and each is decoded once. A refused payload is
    not remembered: each analyzer counts its own refusal.

    Raises:
        InvalidJson: not a JSON object with the expected field types.
        MissingField: a required field is absent.
        OutOfRange: a non-positive or non-finite price, or a negative RVol.
    """
    return _decoded(payload)


@functools.lru_cache(maxsize=2048)
def _decoded(payload: bytes) -> QuoteSeen:
    try:
        seen = _QUOTE_DECODER.decode(payload)
    except msgspec.ValidationError as exc:
        if "missing required field" in str(exc):
            raise MissingField(f"not a quote record: {exc}") from None
        raise InvalidJson(f"not a quote record: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidJson(f"not a quote record: {exc}") from None
    for name, value in (("price", seen.price), ("open", seen.open)):
        if not math.isfinite(value) or value <= 0:
            raise OutOfRange(f"'{name}' must be a positive finite price; it was {value!r}")
    if seen.rvol_tod is not None and not (math.isfinite(seen.rvol_tod) and seen.rvol_tod >= 0):
        raise OutOfRange(f"'rvol_tod' must be a finite ratio >= 0; it was {seen.rvol_tod!r}")
    return seen


def money(value: float) -> str:
    """A price as traders read it: ``$4.80``, ``$0.4125``."""
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


class DayClock:
    """The trading day at ``now_ns`` (04:00 ET boundary), and whether it just changed."""

    __slots__ = ("_calendar", "day")

    def __init__(self, calendar: MarketCalendar) -> None:
        self._calendar = calendar
        self.day: date | None = None

    def roll(self, now_ns: int) -> bool:
        """Advance to the trading day of ``now_ns``; True when a new day started."""
        today = self._calendar.trading_day(now_ns)
        if self.day is None or today > self.day:
            self.day = today
            return True
        return False

    def is_stale(self, trading_day: str) -> bool:
        """Whether a record of ``trading_day`` belongs to a day already over."""
        return self.day is not None and trading_day < self.day.isoformat()

    def is_ahead(self, trading_day: str, now_ns: int) -> bool:
        """Whether a record belongs to a trading day not begun (see :data:`FUTURE_DAY_GRACE_MS`)."""
        if self.day is None or trading_day <= self.day.isoformat():
            return False
        return trading_day > day_begun(self._calendar, now_ns).isoformat()


class AlertQueue:
    """Alerts raised since the last flush, written in event-time order.

    Attributes:
        rejected: Inputs skipped, by reason (exported by the scanner as a metric).
    """

    __slots__ = ("_feed", "_pending", "rejected")

    def __init__(self, feed: Feed) -> None:
        self._feed = feed
        self._pending: list[tuple[int, str, WidgetWrite]] = []
        self.rejected: Counter[str] = Counter()

    def raise_alert(self, alert: msgspec.Struct, *, as_of_ms: int, identity: str) -> None:
        """Queue ``alert`` (its JSON has ``as_of_ms``), appended once per ``identity``."""
        feed = self._feed
        write = WidgetWrite(feed, feed.name(), msgspec.json.encode(alert), identity=identity)
        self._pending.append((as_of_ms, identity, write))

    def reject(self, error: MalformedInput) -> None:
        """Count a bad input by its kind."""
        self.rejected[error.kind] += 1

    def take(self) -> list[WidgetWrite]:
        """The queued alerts by event time (then identity: the same order on every replica)."""
        pending, self._pending = self._pending, []
        pending.sort(key=lambda item: (item[0], item[1]))
        return [write for _, _, write in pending]
