"""The router: the latest event of each kind and symbol, straight to its widget feed.

Every aggregate, trade, NBBO quote and LULD event replaces the previous one of its symbol in
memory; a flush writes each (kind, symbol) that changed once, whatever the number of events in
between (the earlier implementation wrote and published every NBBO quote). Each write is
versioned by event time, so with several replicas a symbol's latest record never goes back in
time (WDC keeps the newest, see :mod:`mdp_cache.widgets`). Event kinds without a feed are
counted, not routed.

Second and minute bars also build today's one-minute bars of each symbol (the ``bars:{symbol}``
series of :mod:`mdp_analyzers.minute_bars`), one element per minute changed per flush.

LULD halts and resumes are recorded in MDC (:mod:`mdp_analyzers.halts`), whichever replica
receives them; the market-wide halts document is composed from those merged records by the
replica holding the router's lease (the current trading day's halts only), and every replica
reads them back so the ``halted`` flag of its LULD records agrees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.halts import (
    HALT_RECENCY_BITS,
    LULD_HALT,
    LULD_RESUME,
    HaltBook,
    HaltRecord,
    halts_read,
)
from mdp_analyzers.minute_bars import MinuteBook
from mdp_analyzers.state import RankedMember, Read
from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import (
    FEED_HALTS,
    FEED_LATEST_AGGREGATE,
    FEED_LATEST_LULD,
    FEED_LATEST_NBBO,
    FEED_LATEST_TRADE,
    Feed,
)
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import NS_PER_SECOND, to_ns
from mdp_core.events import LimitUpLimitDown, MarketEvent, MinuteAggregate, SecondAggregate

__all__ = ["LULD_HALT", "LULD_RESUME", "MassiveDataAnalyzer"]

_FEEDS: Final[dict[str, Feed]] = {
    "A": FEED_LATEST_AGGREGATE,
    "AM": FEED_LATEST_AGGREGATE,
    "T": FEED_LATEST_TRADE,
    "Q": FEED_LATEST_NBBO,
    "LULD": FEED_LATEST_LULD,
}
#: Kinds sharing one feed share one slot (the later of a second and a minute bar wins).
_SLOT: Final[dict[str, str]] = {ev: ("A" if ev == "AM" else ev) for ev in _FEEDS}
_ENCODER: Final = msgspec.json.Encoder()
_NS_PER_MS: Final = 1_000_000


class _Halt(msgspec.Struct, frozen=True):
    halted_since_ms: int
    high_limit: float
    low_limit: float


class _Halts(msgspec.Struct, frozen=True):
    as_of_ms: int
    symbols: dict[str, _Halt]


class MassiveDataAnalyzer:
    """Routes the latest event per kind and symbol to the ``FEED_LATEST_*`` feeds.

    Args:
        compose_interval_seconds: Seconds between two compositions of the halts document (and two
            readings of the merged halts).

    Attributes:
        routed: Events accepted, by ``ev`` code.
        unknown: Events of kinds without a feed, by ``ev`` code.
    """

    name: ClassVar[str] = "router"
    consumes: ClassVar[frozenset[str]] = frozenset(_FEEDS)

    def __init__(
        self, calendar: MarketCalendar | None = None, *, compose_interval_seconds: float = 1.0
    ) -> None:
        self.calendar = calendar if calendar is not None else MarketCalendar()
        self.compose_interval_ns = int(compose_interval_seconds * NS_PER_SECOND)
        self.sync_interval_ns = self.compose_interval_ns
        self._latest: dict[tuple[str, str], MarketEvent] = {}
        #: The latest LULD event of each symbol, rewritten when a merged halt changes its flag.
        self._last_luld: dict[str, LimitUpLimitDown] = {}
        self._halts = HaltBook()
        self._minutes = MinuteBook()
        self._last_halts: bytes | None = None
        self.routed: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()

    def take_closed_minutes(self) -> Counter[str]:
        """Minute bars of seconds left behind since the last call, by outcome.

        See :attr:`~mdp_analyzers.minute_bars.MinuteBook.closed` for the outcomes.
        """
        return self._minutes.take_closed()

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        """Keep the latest event of each (kind, symbol)."""
        del now_ns
        latest = self._latest
        for event in inputs:
            ev = event.EV
            if ev not in _FEEDS:
                self.unknown[ev] += 1
                continue
            self.routed[ev] += 1
            key = (_SLOT[ev], event.symbol)
            old = latest.get(key)
            if old is None or event.event_time_ms >= old.event_time_ms:
                latest[key] = event
            if isinstance(event, (SecondAggregate, MinuteAggregate)):
                self._minutes.fold(event)
            elif type(event) is LimitUpLimitDown:
                assert isinstance(event, LimitUpLimitDown)
                self._halts.note(event)
                last = self._last_luld.get(event.symbol)
                if last is None or event.timestamp_ms >= last.timestamp_ms:
                    self._last_luld[event.symbol] = event

    def collect(self, now_ns: int) -> Output:
        """One write per (kind, symbol) changed since the last call; halt records as state."""
        del now_ns
        widgets: list[WidgetWrite] = []
        for key, event in self._latest.items():
            ev, symbol = key
            feed = _FEEDS[ev]
            name = feed.of(symbol)
            payload = _ENCODER.encode(event)
            version = event.event_time_ms
            if ev == "LULD":
                # A pause ends with its trading day (see HaltBook.halted).
                halted = self._halts.halted(symbol, self._day_start_ms(version * _NS_PER_MS))
                payload = payload[:-1] + b',"halted":' + (b"true" if halted else b"false") + b"}"
                # The record rewritten when a merged halt changes its flag must beat the one
                # written without that news: how recent the news is is part of the version.
                recency = self._halts.recency(symbol, version)
                version = (version << HALT_RECENCY_BITS) + recency
            widgets.append(WidgetWrite(feed, name, payload, version=version))
        self._latest = {}
        widgets.extend(self._minutes.take())
        return Output(widgets=widgets, state=self._halts.take_ops())

    def _day_start_ms(self, ns: int) -> int:
        """04:00 ET of the trading day of the instant ``ns``, in ms: when its halts begin."""
        return to_ns(self.calendar.day_start(self.calendar.trading_day(ns))) // _NS_PER_MS

    # --- Synchronized: halts other replicas received -------------------------------------

    def sync_reads(self, now_ns: int) -> Sequence[Read]:
        """The merged halt records."""
        del now_ns
        return [halts_read()]

    def sync(self, now_ns: int, answers: Sequence[Sequence[RankedMember]]) -> None:
        """Learn the halts other replicas recorded; LULD records they flag are rewritten."""
        del now_ns
        for symbol in self._halts.merge(answers[0]):
            last = self._last_luld.get(symbol)
            if last is not None:
                self._latest.setdefault(("LULD", symbol), last)

    # --- Composer: the market-wide halts document ----------------------------------------

    def reads(self, now_ns: int) -> Sequence[Read]:
        """The merged halt records."""
        del now_ns
        return [halts_read()]

    def compose(
        self, now_ns: int, answers: Sequence[Sequence[RankedMember]]
    ) -> Sequence[WidgetWrite]:
        """The halts document, when the set of halted symbols changed.

        A pause ends with its trading day: one from an earlier day is not listed, whether or
        not a resume was ever sent (none is for a pause the close ended).
        """
        since_ms = self._day_start_ms(now_ns)
        halted: dict[str, _Halt] = {}
        for row in answers[0]:
            try:
                record = msgspec.json.decode(row.payload, type=HaltRecord)
            except msgspec.DecodeError:
                continue
            if record.halted and record.since_ms >= since_ms:
                halted[row.member] = _Halt(record.since_ms, record.high_limit, record.low_limit)
        listed = _ENCODER.encode(halted)
        if listed == self._last_halts:
            return []
        self._last_halts = listed
        as_of_ms = now_ns // 1_000_000
        document = _Halts(as_of_ms=as_of_ms, symbols=halted)
        # Versioned by composition time: during a lease handover the later composition, read
        # from the later merged state, wins whichever write lands last.
        return [
            WidgetWrite(FEED_HALTS, FEED_HALTS.name(), _ENCODER.encode(document), version=as_of_ms)
        ]
