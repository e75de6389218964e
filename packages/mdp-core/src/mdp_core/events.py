"""Typed, immutable models of every Massive stocks websocket event.

Each model is a frozen :class:`msgspec.Struct` whose attribute names say what a field means while
the wire keys stay exactly as Massive sends them (``sym``, ``p``, ``av`` ...), so one decoder call
turns a whole frame into models and encoding a model gives back the vendor's structure.

Units are the vendor's: ``*_ms`` fields are Unix milliseconds, ``*_ns`` Unix nanoseconds. Quote
sizes are in round lots, as on the wire. Prices are floats (see ``docs/dev/design.md`` for why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, TypeAlias

import msgspec

__all__ = [
    "EVENT_TYPES",
    "MARKET_EVENT_TYPES",
    "SYMBOL_FIELDS",
    "AnyEvent",
    "FairMarketValue",
    "Imbalance",
    "LaunchpadValue",
    "LimitUpLimitDown",
    "MarketEvent",
    "MinuteAggregate",
    "Price",
    "Quote",
    "SecondAggregate",
    "Size",
    "Status",
    "Symbol",
    "Trade",
]

#: A price: finite, not negative. The upper bound rejects overflowed or garbage values.
Price = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
#: A share count or volume: a non-negative integer. The bound (a thousand times the shares
#: outstanding of any company) rejects garbage and keeps sums exact where numbers are doubles
#: (Lua in Redis).
Size = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
#: A ticker symbol as Massive spells it (``BRK.A``, ``AAPL``, ``BRK/B``). Whitespace and the
#: characters ``: * ? [ ]`` are refused: symbols become parts of Redis key and channel names,
#: where ``:`` separates segments and the others are glob syntax.
Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=16, pattern=r"^[^\s:*?\[\]]+$")]
#: A Unix timestamp in the unit its field name gives.
Timestamp = Annotated[int, msgspec.Meta(ge=0)]


class _Event(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="ev", omit_defaults=True, gc=False
):
    """Base of every event; the ``ev`` wire key is the msgspec tag.

    ``gc=False``: an event holds only numbers, strings and tuples of numbers, so it can never
    be part of a reference cycle; untracked, the tens of thousands decoded each second no
    longer trigger and lengthen the cyclic collector's pauses (seconds per minute of a
    processor at a whole market, before).
    """

    #: The ``ev`` code of this event type, e.g. ``"T"``.
    EV: ClassVar[str]


class Trade(_Event, frozen=True, kw_only=True, tag="T"):
    """One trade print (``T``)."""

    EV: ClassVar[str] = "T"

    symbol: Symbol = msgspec.field(name="sym")
    exchange: int = msgspec.field(name="x")
    trade_id: str = msgspec.field(name="i")
    tape: int | None = msgspec.field(default=None, name="z")
    price: Price = msgspec.field(name="p")
    size: Size = msgspec.field(name="s")
    fractional_size: str | None = msgspec.field(default=None, name="ds")
    conditions: tuple[int, ...] = msgspec.field(default=(), name="c")
    timestamp_ms: Timestamp = msgspec.field(name="t")
    sequence: int | None = msgspec.field(default=None, name="q")
    trf_id: int | None = msgspec.field(default=None, name="trfi")
    trf_timestamp_ms: Timestamp | None = msgspec.field(default=None, name="trft")
    participant_timestamp_ms: Timestamp | None = msgspec.field(default=None, name="pt")

    @property
    def event_time_ms(self) -> int:
        """When the trade happened (SIP time)."""
        return self.timestamp_ms


class Quote(_Event, frozen=True, kw_only=True, tag="Q"):
    """The national best bid and offer (``Q``); sizes are round lots."""

    EV: ClassVar[str] = "Q"

    symbol: Symbol = msgspec.field(name="sym")
    bid_exchange: int | None = msgspec.field(default=None, name="bx")
    bid_price: Price = msgspec.field(name="bp")
    bid_size: Size = msgspec.field(name="bs")
    ask_exchange: int | None = msgspec.field(default=None, name="ax")
    ask_price: Price = msgspec.field(name="ap")
    ask_size: Size = msgspec.field(name="as")
    condition: int | None = msgspec.field(default=None, name="c")
    indicators: tuple[int, ...] = msgspec.field(default=(), name="i")
    timestamp_ms: Timestamp = msgspec.field(name="t")
    sequence: int | None = msgspec.field(default=None, name="q")
    tape: int | None = msgspec.field(default=None, name="z")
    trf_id: int | None = msgspec.field(default=None, name="trfi")
    trf_timestamp_ms: Timestamp | None = msgspec.field(default=None, name="trft")

    @property
    def event_time_ms(self) -> int:
        """When the quote was published (SIP time)."""
        return self.timestamp_ms


class _Aggregate(_Event, frozen=True, kw_only=True):
    """An aggregate bar: one window's OHLCV plus the day's running totals."""

    symbol: Symbol = msgspec.field(name="sym")
    volume: Size = msgspec.field(name="v")
    fractional_volume: str | None = msgspec.field(default=None, name="dv")
    accumulated_volume: Size = msgspec.field(name="av")
    fractional_accumulated_volume: str | None = msgspec.field(default=None, name="dav")
    official_open: Price | None = msgspec.field(default=None, name="op")
    vwap: Price = msgspec.field(name="vw")
    open: Price = msgspec.field(name="o")
    high: Price = msgspec.field(name="h")
    low: Price = msgspec.field(name="l")
    close: Price = msgspec.field(name="c")
    day_vwap: Price | None = msgspec.field(default=None, name="a")
    average_size: Annotated[float, msgspec.Meta(ge=0.0)] | None = msgspec.field(
        default=None, name="z"
    )
    start_ms: Timestamp = msgspec.field(name="s")
    end_ms: Timestamp = msgspec.field(name="e")
    otc: bool = False

    @property
    def event_time_ms(self) -> int:
        """The end of the window: the bar is complete as of this instant."""
        return self.end_ms


class SecondAggregate(_Aggregate, frozen=True, kw_only=True, tag="A"):
    """A one-second bar (``A``); sent only for symbols that traded in that second."""

    EV: ClassVar[str] = "A"


class MinuteAggregate(_Aggregate, frozen=True, kw_only=True, tag="AM"):
    """A one-minute bar (``AM``)."""

    EV: ClassVar[str] = "AM"


class LimitUpLimitDown(_Event, frozen=True, kw_only=True, tag="LULD"):
    """Limit-up/limit-down price bands and halt indicators (``LULD``)."""

    EV: ClassVar[str] = "LULD"

    symbol: Symbol = msgspec.field(name="T")
    high_limit: Price = msgspec.field(name="h")
    low_limit: Price = msgspec.field(name="l")
    indicators: tuple[int, ...] = msgspec.field(default=(), name="i")
    tape: int | None = msgspec.field(default=None, name="z")
    timestamp_ms: Timestamp = msgspec.field(name="t")
    sequence: int | None = msgspec.field(default=None, name="q")

    @property
    def event_time_ms(self) -> int:
        """When the bands were published."""
        return self.timestamp_ms


class Imbalance(_Event, frozen=True, kw_only=True, tag="NOI"):
    """An auction imbalance (net order imbalance, ``NOI``)."""

    EV: ClassVar[str] = "NOI"

    symbol: Symbol = msgspec.field(name="T")
    timestamp_ms: Timestamp = msgspec.field(name="t")
    auction_time: int = msgspec.field(name="at")
    auction_type: str = msgspec.field(name="a")
    symbol_sequence: int | None = msgspec.field(default=None, name="i")
    exchange: int | None = msgspec.field(default=None, name="x")
    imbalance_quantity: Size = msgspec.field(name="o")
    paired_quantity: Size = msgspec.field(name="p")
    book_clearing_price: Price = msgspec.field(name="b")

    @property
    def event_time_ms(self) -> int:
        """When the imbalance was published."""
        return self.timestamp_ms


class FairMarketValue(_Event, frozen=True, kw_only=True, tag="FMV"):
    """Massive's fair market value (``FMV``); its timestamp is in nanoseconds."""

    EV: ClassVar[str] = "FMV"

    fair_value: Price = msgspec.field(name="fmv")
    symbol: Symbol = msgspec.field(name="sym")
    timestamp_ns: Timestamp = msgspec.field(name="t")

    @property
    def event_time_ms(self) -> int:
        """The timestamp converted to milliseconds, like every other event's."""
        return self.timestamp_ns // 1_000_000


class LaunchpadValue(_Event, frozen=True, kw_only=True, tag="LV"):
    """A Launchpad value (``LV``); its timestamp is in nanoseconds."""

    EV: ClassVar[str] = "LV"

    value: Price = msgspec.field(name="val")
    symbol: Symbol = msgspec.field(name="sym")
    timestamp_ns: Timestamp = msgspec.field(name="t")

    @property
    def event_time_ms(self) -> int:
        """The timestamp converted to milliseconds, like every other event's."""
        return self.timestamp_ns // 1_000_000


class Status(_Event, frozen=True, kw_only=True, tag="status"):
    """A control message from the server (``connected``, ``auth_success``, ``max_connections``)."""

    EV: ClassVar[str] = "status"

    status: str
    message: str = ""


#: Every market event (everything a frame carries except status messages).
MarketEvent: TypeAlias = (
    Trade
    | Quote
    | SecondAggregate
    | MinuteAggregate
    | LimitUpLimitDown
    | Imbalance
    | FairMarketValue
    | LaunchpadValue
)
#: Anything a frame can carry.
AnyEvent: TypeAlias = MarketEvent | Status

#: Model class of each ``ev`` code, status included.
EVENT_TYPES: Final[dict[str, type[AnyEvent]]] = {
    cls.EV: cls
    for cls in (
        Trade,
        Quote,
        SecondAggregate,
        MinuteAggregate,
        LimitUpLimitDown,
        Imbalance,
        FairMarketValue,
        LaunchpadValue,
        Status,
    )
}
#: The ``ev`` codes of market events (status excluded): also the Massive channel list, the one
#: source of it (the listener's topic check and the simulator's subscriptions derive from it).
MARKET_EVENT_TYPES: Final[frozenset[str]] = frozenset(EVENT_TYPES) - {"status"}


def _wire_name(model: type[msgspec.Struct], attribute: str) -> str:
    return next(f.encode_name for f in msgspec.structs.fields(model) if f.name == attribute)


#: The wire key holding the ticker in each market event (``sym``; ``T`` in LULD and NOI), read
#: from the models so that it cannot drift from them.
SYMBOL_FIELDS: Final[Mapping[str, str]] = {
    ev: _wire_name(EVENT_TYPES[ev], "symbol") for ev in sorted(MARKET_EVENT_TYPES)
}
