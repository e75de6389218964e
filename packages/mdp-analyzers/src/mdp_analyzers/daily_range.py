"""Session highs and lows per symbol, with high-of-day / low-of-day alerts.

Runs in the scanner (MDS) on the quote records the leaderboard analyzer publishes on
``quote:{symbol}``. Those records carry the **session figures** the processors fold from every
bar (pre-market, regular and after-hours high and low, with the time each extreme was reached
and the session's first bar), so no bar superseded between two records can hide an extreme;
the analyzer keeps the join (max, min) of what it has seen. A record without session figures
(another publisher) counts as one bar: its high and low, in the session of its event time
(market calendar; no REST call, no wall clock).

Alerts (list feeds ``alerts:hod`` / ``alerts:lod``):

* A new session high (low) beyond the session's previous extreme raises an alert, stamped with
  the event time the extreme became known: when it was reached, or, for a bar that arrived
  after a later one of the symbol (a reordered feed), the latest event time already seen. So
  each symbol's alerts stay monotonic in time as in price: a late 253.36 reached at 09:32:25
  after an alert at 253.33 stamped 09:32:26 is stamped 09:32:26 too, not before it.
* The first print of a session only sets the baseline, unless it already breaks an earlier
  session's extreme of the same day (a gap over the pre-market high at the open is news), or
  its figures say the extreme was reached after the session's first bar (several bars were
  folded before the first record).
* Alerts of one batch are written in event-time order.
* When a level crosses an earlier session's extreme for the first time, the alert carries a
  note: ``"broke pre-market high of $4.80"``; after-hours checks the regular session first.

State lives in the process and is written out as the per-symbol range document
(``range:{symbol}``) on every change; after a restart :meth:`restore` rebuilds it from those
documents, ignoring any of another trading day. Because an alert needs a *new* extreme beyond the
restored one, a restart never repeats an alert. The trading day starts at 04:00 ET
(:meth:`MarketCalendar.trading_day`); ``collect`` drops the previous day's state at that moment.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar, Final, Literal

import msgspec

from mdp_analyzers.alerts import EventMs, day_begun
from mdp_analyzers.typing import FeedMessage, Output, WidgetWrite
from mdp_cache.keys import FEED_ALERTS_HOD, FEED_ALERTS_LOD, FEED_DAILY_RANGE, FEED_QUOTE
from mdp_core.calendar import MarketCalendar, Session
from mdp_core.clock import to_ns
from mdp_core.errors import InvalidJson, MalformedInput, MissingField, OutOfRange
from mdp_core.events import Symbol

__all__ = ["AlertDoc", "DailyRangeAnalyzer", "RangeDoc", "Tick", "decode_quote"]

_NS_PER_MS: Final = 1_000_000
_DAYS_KEPT: Final = 8  # trading days whose bounds are remembered (a record is of today, mostly)
_TRADING_SESSIONS: Final = (Session.PRE_MARKET, Session.REGULAR, Session.AFTER_HOURS)
_EARLIER: Final[dict[Session, tuple[Session, ...]]] = {
    Session.PRE_MARKET: (),
    Session.REGULAR: (Session.PRE_MARKET,),
    Session.AFTER_HOURS: (Session.REGULAR, Session.PRE_MARKET),
}
_LABEL: Final = {
    Session.PRE_MARKET: "pre-market",
    Session.REGULAR: "regular-session",
    Session.AFTER_HOURS: "after-hours",
}

Direction = Literal["high", "low"]


class _Figures(msgspec.Struct, kw_only=True):
    """A session's figures on a quote record (see ``mdp_analyzers.board.SessionFigures``)."""

    first_ms: EventMs
    high: float
    high_ms: EventMs
    low: float
    low_ms: EventMs


class _QuoteRecord(msgspec.Struct, kw_only=True):
    """The fields of a quote record this analyzer reads (others are ignored)."""

    pre_market: _Figures | None = None
    regular: _Figures | None = None
    after_hours: _Figures | None = None

    symbol: Symbol | None = None
    sym: Symbol | None = None
    price: float | None = None
    close: float | None = None
    high: float | None = None
    low: float | None = None
    start_ms: EventMs | None = None
    end_ms: EventMs | None = None
    as_of_ms: EventMs | None = None
    timestamp_ms: EventMs | None = None


class Extreme(msgspec.Struct, frozen=True, gc=False):
    """A session's extreme so far: its level and the event time it was reached.

    These records are msgspec structs rather than frozen dataclasses: a quote record makes up
    to eight of them, and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` a
    field) cost more than decoding the record's JSON (docs/performance.md).
    """

    level: float
    at_ms: int


class SessionSeen(msgspec.Struct, frozen=True, gc=False):
    """A session's figures as a quote record reports them."""

    first_ms: int
    high: Extreme
    low: Extreme


class Tick(msgspec.Struct, frozen=True, gc=False):
    """One usable quote: symbol, event time and the bar's price range (low <= price <= high).

    ``ts_ms`` is the bar's start (it places the bar in a session); ``end_ms`` its end, when its
    close became the price (the start for a record without an end). ``sessions`` holds the
    session figures the record carries (empty: a bare bar).
    """

    symbol: str
    ts_ms: int
    end_ms: int
    price: float
    high: float
    low: float
    sessions: Mapping[Session, SessionSeen] = msgspec.field(default_factory=dict)


_QUOTE_DECODER: Final = msgspec.json.Decoder(_QuoteRecord)


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise OutOfRange(f"'{name}' must be a positive finite price; it was {value!r}")
    return value


def decode_quote(payload: bytes) -> Tick:
    """Read a quote record published on ``quote:{symbol}``.

    Accepts the leaderboard row (``symbol``, ``price``, ``high``, ``low``, ``start_ms``) and the
    usual aliases (``sym``, ``close``, ``end_ms``/``as_of_ms``/``timestamp_ms``). A record
    without high/low uses the price for both; high and low are widened to include the price.

    Raises:
        InvalidJson: not JSON, or not an object with the expected field types.
        MissingField: no symbol, price or event time.
        OutOfRange: a non-positive or non-finite price.
    """
    try:
        record = _QUOTE_DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise InvalidJson(f"not a quote record: {exc}") from None
    symbol = record.symbol or record.sym
    if not symbol:
        raise MissingField("a quote record needs 'symbol'")
    price = _positive(record.price if record.price is not None else record.close, "price")
    if price is None:
        raise MissingField("a quote record needs 'price' (or 'close')")
    ts_ms = record.start_ms
    if ts_ms is None:
        ts_ms = record.end_ms if record.end_ms is not None else record.as_of_ms
        if ts_ms is None:
            ts_ms = record.timestamp_ms
    if ts_ms is None:
        raise MissingField("a quote record needs an event time ('start_ms' or 'as_of_ms')")
    high = _positive(record.high, "high") or price
    low = _positive(record.low, "low") or price
    sessions: dict[Session, SessionSeen] = {}
    for session, figures in (
        (Session.PRE_MARKET, record.pre_market),
        (Session.REGULAR, record.regular),
        (Session.AFTER_HOURS, record.after_hours),
    ):
        if figures is None:
            continue
        top = _positive(figures.high, "high")
        bottom = _positive(figures.low, "low")
        if top is None or bottom is None or bottom > top:
            raise OutOfRange(f"session figures with low {bottom!r} above high {top!r}")
        sessions[session] = SessionSeen(
            figures.first_ms, Extreme(top, figures.high_ms), Extreme(bottom, figures.low_ms)
        )
    return Tick(
        symbol=symbol,
        ts_ms=ts_ms,
        end_ms=max(ts_ms, record.end_ms if record.end_ms is not None else ts_ms),
        price=price,
        high=max(high, low, price),
        low=min(low, high, price),
        sessions=sessions,
    )


class RangeDoc(msgspec.Struct, kw_only=True, omit_defaults=False):
    """The per-symbol range document on ``range:{symbol}`` (null where a session is unseen).

    ``price`` is the close of the latest-ending bar seen, ``as_of_ms`` that bar's end.
    """

    symbol: str
    trading_day: str
    session: str
    price: float
    as_of_ms: int
    pre_market_high: float | None = None
    pre_market_low: float | None = None
    regular_high: float | None = None
    regular_low: float | None = None
    after_hours_high: float | None = None
    after_hours_low: float | None = None
    day_high: float | None = None
    day_low: float | None = None


class AlertDoc(msgspec.Struct, kw_only=True):
    """One element of ``alerts:hod`` / ``alerts:lod``."""

    symbol: str
    trading_day: str
    session: str
    direction: str
    price: float
    previous: float | None
    note: str
    last: float
    as_of_ms: int


_RANGE_DECODER: Final = msgspec.json.Decoder(RangeDoc)
_ENCODER: Final = msgspec.json.Encoder()


@dataclass(slots=True)
class _SymbolRange:
    trading_day: date
    highs: dict[Session, float] = field(default_factory=dict)
    lows: dict[Session, float] = field(default_factory=dict)
    price: float = 0.0
    as_of_ms: int = 0
    session: Session = Session.CLOSED
    #: The latest event time this symbol's state reflects: its bars' times and every extreme's
    #: time, including extremes joined from other writers (newer than the record's own bar).
    #: Alerts are stamped no earlier, so a symbol's alerts in time order are its alert order.
    known_ms: int = 0

    def doc(self, symbol: str) -> RangeDoc:
        highs, lows = self.highs, self.lows
        return RangeDoc(
            symbol=symbol,
            trading_day=self.trading_day.isoformat(),
            session=self.session.value,
            price=self.price,
            as_of_ms=self.as_of_ms,
            pre_market_high=highs.get(Session.PRE_MARKET),
            pre_market_low=lows.get(Session.PRE_MARKET),
            regular_high=highs.get(Session.REGULAR),
            regular_low=lows.get(Session.REGULAR),
            after_hours_high=highs.get(Session.AFTER_HOURS),
            after_hours_low=lows.get(Session.AFTER_HOURS),
            day_high=max(highs.values()) if highs else None,
            day_low=min(lows.values()) if lows else None,
        )


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


class DailyRangeAnalyzer:
    """Session highs/lows per symbol and HOD/LOD alerts (see the module docstring).

    Args:
        calendar: The market calendar (sessions, trading days); a default one when omitted.

    Attributes:
        rejected: Count of skipped inputs by reason (``invalid_json``, ``missing_field``,
            ``out_of_range``, ``stale_day``); the scanner exports it as a metric.
    """

    name: ClassVar[str] = "daily_range"
    consumes: ClassVar[frozenset[str]] = frozenset({FEED_QUOTE.pattern})

    def __init__(self, calendar: MarketCalendar | None = None) -> None:
        self._calendar = calendar or MarketCalendar()
        self._ranges: dict[str, _SymbolRange] = {}
        self._changed: set[str] = set()
        self._alerts: list[tuple[int, WidgetWrite]] = []
        self._day: date | None = None
        self._bounds: dict[date, tuple[int, int]] = {}
        self.rejected: Counter[str] = Counter()

    # --- the analyzer contract ------------------------------------------------------------

    def apply(self, inputs: Sequence[object], now_ns: int) -> None:
        """Fold a batch of quote records; bad ones are counted in :attr:`rejected`.

        Anything that is not a :class:`FeedMessage` of a quote feed is ignored.
        """
        self._roll_day(now_ns)
        for message in inputs:
            if not isinstance(message, FeedMessage) or not FEED_QUOTE.matches(message.name):
                continue
            try:
                tick = decode_quote(message.payload)
            except MalformedInput as exc:
                self.rejected[exc.kind] += 1
                continue
            self._apply_tick(tick, now_ns)

    def collect(self, now_ns: int) -> Output:
        """Range documents of the symbols that changed (once each), then the alerts in order."""
        self._roll_day(now_ns)
        writes = [
            WidgetWrite(
                FEED_DAILY_RANGE,
                FEED_DAILY_RANGE.of(symbol),
                _ENCODER.encode(self._ranges[symbol].doc(symbol)),
            )
            for symbol in sorted(self._changed)
            if symbol in self._ranges
        ]
        # In event-time order (stable: equal times keep the order they were raised in).
        writes.extend(write for _, write in sorted(self._alerts, key=lambda item: item[0]))
        self._changed.clear()
        self._alerts = []
        return Output(widgets=writes)

    # --- Rehydratable ---------------------------------------------------------------------

    def snapshot_patterns(self) -> Sequence[str]:
        """The range documents (``range:*``)."""
        return (FEED_DAILY_RANGE.pattern,)

    def restore(self, snapshots: Mapping[str, bytes], now_ns: int) -> None:
        """Rebuild the extremes of today from range documents; other days are ignored.

        A restored extreme is kept only when it is beyond what the process already holds, so
        calling this again after a Redis outage never loses newer state.
        """
        today = self._calendar.trading_day(now_ns)
        self._day = today
        for name, payload in snapshots.items():
            if not FEED_DAILY_RANGE.matches(name):
                continue
            try:
                doc = _RANGE_DECODER.decode(payload)
            except msgspec.DecodeError:
                self.rejected["invalid_snapshot"] += 1
                continue
            if doc.trading_day != today.isoformat():
                continue
            state = self._ranges.get(doc.symbol)
            if state is None or state.trading_day != today:
                state = self._ranges[doc.symbol] = _SymbolRange(trading_day=today)
            self._restore_into(state, doc)

    @staticmethod
    def _restore_into(state: _SymbolRange, doc: RangeDoc) -> None:
        pairs = (
            (Session.PRE_MARKET, doc.pre_market_high, doc.pre_market_low),
            (Session.REGULAR, doc.regular_high, doc.regular_low),
            (Session.AFTER_HOURS, doc.after_hours_high, doc.after_hours_low),
        )
        for session, high, low in pairs:
            if high is not None and high > state.highs.get(session, -math.inf):
                state.highs[session] = high
            if low is not None and low < state.lows.get(session, math.inf):
                state.lows[session] = low
        state.known_ms = max(state.known_ms, doc.as_of_ms)
        if doc.as_of_ms >= state.as_of_ms:
            state.price, state.as_of_ms = doc.price, doc.as_of_ms
            try:
                state.session = Session(doc.session)
            except ValueError:
                state.session = Session.CLOSED

    # --- internals ------------------------------------------------------------------------

    def _roll_day(self, now_ns: int) -> None:
        """At 04:00 ET a new trading day starts: yesterday's extremes are dropped."""
        today = self._calendar.trading_day(now_ns)
        if self._day is None or today > self._day:
            self._day = today
            stale = [s for s, r in self._ranges.items() if r.trading_day < today]
            for symbol in stale:
                del self._ranges[symbol]
                self._changed.discard(symbol)

    def _day_bounds(self, day: date) -> tuple[int, int]:
        """The instants (ms) of trading day ``day``: from its 04:00 to the next one's."""
        bounds = self._bounds.get(day)
        if bounds is None:
            following = self._calendar.next_trading_day(day)
            start, end = self._calendar.day_start(day), self._calendar.day_start(following)
            if len(self._bounds) >= _DAYS_KEPT:
                self._bounds.clear()
            bounds = self._bounds[day] = (to_ns(start) // _NS_PER_MS, to_ns(end) // _NS_PER_MS)
        return bounds

    def _refusal(self, tick: Tick, session: Session, day: date, now_ns: int) -> str | None:
        """Why ``tick`` cannot be folded (a :attr:`rejected` reason), or None."""
        if session is Session.CLOSED:
            return "closed_session"
        if self._day is not None and day < self._day:
            return "stale_day"
        if self._day is not None and day > self._day and day > day_begun(self._calendar, now_ns):
            return "future_day"  # taken, it would hide every record of today for the symbol
        if tick.sessions:
            lo, hi = self._day_bounds(day)
            for seen in tick.sessions.values():
                if not (
                    lo <= seen.first_ms < hi
                    and lo <= seen.high.at_ms < hi
                    and lo <= seen.low.at_ms < hi
                ):
                    return "out_of_range"  # its time would stamp every later alert
        return None

    def _apply_tick(self, tick: Tick, now_ns: int) -> None:
        ts_ns = tick.ts_ms * _NS_PER_MS
        session = self._calendar.session_at(ts_ns)
        day = self._calendar.trading_day(ts_ns)
        refusal = self._refusal(tick, session, day, now_ns)
        if refusal is not None:
            self.rejected[refusal] += 1
            return
        state = self._ranges.get(tick.symbol)
        if state is None or day > state.trading_day:
            state = self._ranges[tick.symbol] = _SymbolRange(trading_day=day)
        elif day < state.trading_day:
            self.rejected["stale_day"] += 1
            return
        if tick.sessions:
            for seen_session in _TRADING_SESSIONS:  # earlier sessions first: crossings
                seen = tick.sessions.get(seen_session)
                if seen is None:
                    continue
                for direction, extreme in _directions(seen):
                    after_first = extreme.at_ms > seen.first_ms
                    self._extend(
                        tick, state, seen_session, direction, extreme=extreme,
                        after_first=after_first,
                    )  # fmt: skip
                    state.known_ms = max(state.known_ms, extreme.at_ms)
        else:
            bar_high, bar_low = Extreme(tick.high, tick.ts_ms), Extreme(tick.low, tick.ts_ms)
            self._extend(tick, state, session, "high", extreme=bar_high, after_first=False)
            self._extend(tick, state, session, "low", extreme=bar_low, after_first=False)
        # The price is the close of the bar that ends latest, the processor's rule for the
        # row a quote record carries: a minute bar superseding its minute's last second bar
        # (same end, earlier start) brings the price, whatever close that second bar had.
        if tick.end_ms >= state.as_of_ms:
            state.price, state.as_of_ms, state.session = tick.price, tick.end_ms, session
        state.known_ms = max(state.known_ms, tick.ts_ms)
        self._changed.add(tick.symbol)

    def _extend(
        self,
        tick: Tick,
        state: _SymbolRange,
        session: Session,
        direction: Direction,
        *,
        extreme: Extreme,
        after_first: bool,
    ) -> None:
        """Extend a session's extreme; raise an alert when that is news.

        ``after_first``: the extreme was reached after the session's first bar, so even as the
        first level seen for the session it is a new extreme, not the baseline.
        """
        level = extreme.level
        if direction == "high":
            book = state.highs
            beyond = level.__gt__
        else:
            book = state.lows
            beyond = level.__lt__
        previous = book.get(session)
        if previous is not None and not beyond(previous):
            return
        book[session] = level
        # Earlier sessions' extremes this move crosses for the first time.
        crossed = [
            s
            for s in _EARLIER[session]
            if s in book
            and beyond(book[s])
            and (previous is None or not _past(previous, book[s], direction))
        ]
        if previous is None and not crossed and not after_first:
            return  # the session's first print only sets the baseline
        note = ""
        if crossed:
            first = crossed[0]
            note = f"broke {_LABEL[first]} {direction} of {_money(book[first])}"
        known_ms = max(extreme.at_ms, state.known_ms)  # state: the symbol's events before
        state.known_ms = known_ms
        alert = AlertDoc(
            symbol=tick.symbol,
            trading_day=state.trading_day.isoformat(),
            session=session.value,
            direction=direction,
            price=level,
            previous=previous,
            note=note,
            last=tick.price,
            as_of_ms=known_ms,
        )
        feed = FEED_ALERTS_HOD if direction == "high" else FEED_ALERTS_LOD
        write = WidgetWrite(feed, feed.name(), _ENCODER.encode(alert))
        self._alerts.append((known_ms, write))


def _directions(seen: SessionSeen) -> tuple[tuple[Direction, Extreme], ...]:
    return (("high", seen.high), ("low", seen.low))


def _past(value: float, level: float, direction: Direction) -> bool:
    """Whether ``value`` was already beyond ``level`` (so crossing it again is not news)."""
    return value > level if direction == "high" else value < level
