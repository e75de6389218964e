"""The router: the latest event of each kind and symbol, straight to its widget feed.

Every aggregate, trade, NBBO quote and LULD event replaces the previous one of its symbol in
memory; a flush writes each (kind, symbol) that changed once, whatever the number of events in
between (the earlier implementation wrote and published every NBBO quote). Each write is
versioned by event time, so with several replicas a symbol's latest record never goes back in
time (WDC keeps the newest, see :mod:`mdp_cache.widgets`). LULD events also maintain the
market-wide halts document. Event kinds without a feed are counted, not routed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import (
    FEED_HALTS,
    FEED_LATEST_AGGREGATE,
    FEED_LATEST_LULD,
    FEED_LATEST_NBBO,
    FEED_LATEST_TRADE,
    Feed,
)
from mdp_core.events import LimitUpLimitDown, MarketEvent

__all__ = ["LULD_HALT", "LULD_RESUME", "MassiveDataAnalyzer"]

LULD_HALT: Final = 17
"""LULD indicator: a trading pause (halt) is in effect."""
LULD_RESUME: Final = 18
"""LULD indicator: trading resumed."""

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


class _Halt(msgspec.Struct, frozen=True):
    halted_since_ms: int
    high_limit: float
    low_limit: float


class _Halts(msgspec.Struct, frozen=True):
    as_of_ms: int
    symbols: dict[str, _Halt]


class MassiveDataAnalyzer:
    """Routes the latest event per kind and symbol to the ``FEED_LATEST_*`` feeds.

    Attributes:
        routed: Events accepted, by ``ev`` code.
        unknown: Events of kinds without a feed, by ``ev`` code.
    """

    name: ClassVar[str] = "router"
    consumes: ClassVar[frozenset[str]] = frozenset(_FEEDS)

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], MarketEvent] = {}
        self._halts: dict[str, _Halt] = {}
        self._halts_changed = False
        self.routed: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()

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
            if type(event) is LimitUpLimitDown:
                self._track_halt(event)

    def _track_halt(self, event: LimitUpLimitDown) -> None:
        if LULD_HALT in event.indicators:
            if event.symbol not in self._halts:
                self._halts[event.symbol] = _Halt(
                    event.timestamp_ms, event.high_limit, event.low_limit
                )
                self._halts_changed = True
        elif LULD_RESUME in event.indicators and event.symbol in self._halts:
            del self._halts[event.symbol]
            self._halts_changed = True

    def collect(self, now_ns: int) -> Output:
        """One write per (kind, symbol) changed since the last call, plus halts if changed."""
        widgets: list[WidgetWrite] = []
        for (ev, symbol), event in self._latest.items():
            feed = _FEEDS[ev]
            payload = _ENCODER.encode(event)
            if ev == "LULD":
                halted = b"true" if symbol in self._halts else b"false"
                payload = payload[:-1] + b',"halted":' + halted + b"}"
            widgets.append(
                WidgetWrite(feed, feed.name(symbol=symbol), payload, version=event.event_time_ms)
            )
        self._latest = {}
        if self._halts_changed:
            self._halts_changed = False
            document = _Halts(
                as_of_ms=now_ns // 1_000_000, symbols=dict(sorted(self._halts.items()))
            )
            widgets.append(WidgetWrite(FEED_HALTS, FEED_HALTS.name(), _ENCODER.encode(document)))
        return Output(widgets=widgets)
