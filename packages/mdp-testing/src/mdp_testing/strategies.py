"""Hypothesis strategies for Massive wire events, frames and garbage.

Strategies produce wire dictionaries (the JSON objects Massive sends), so tests can check the
codecs both ways: wire -> model -> wire. Values stay within what the vendor really sends: finite,
non-negative prices with at most four decimals, integer sizes, millisecond timestamps. Optional
fields are either absent or non-empty, as the vendor sends them (an empty list equals an absent one
in the models, which omit defaults when encoding).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "any_wire_event",
    "garbage_frames",
    "prices",
    "symbols",
    "wire_aggregate",
    "wire_fmv",
    "wire_imbalance",
    "wire_luld",
    "wire_lv",
    "wire_quote",
    "wire_status",
    "wire_trade",
]

WireEvent = dict[str, Any]

symbols = st.from_regex(r"[A-Z]{1,4}(\.[A-Z])?", fullmatch=True)
prices = st.integers(min_value=1, max_value=5_000_000).map(lambda cents: round(cents / 10_000, 4))
sizes = st.integers(min_value=0, max_value=10_000_000)
timestamps_ms = st.integers(min_value=1_500_000_000_000, max_value=2_100_000_000_000)
small_ints = st.integers(min_value=0, max_value=100)


@st.composite
def wire_trade(draw: st.DrawFn) -> WireEvent:
    """A trade (``T``) as Massive sends it, optional fields present or not."""
    event: WireEvent = {
        "ev": "T",
        "sym": draw(symbols),
        "x": draw(small_ints),
        "i": str(draw(st.integers(min_value=0, max_value=10**12))),
        "p": draw(prices),
        "s": draw(sizes),
        "t": draw(timestamps_ms),
    }
    if draw(st.booleans()):
        event["c"] = draw(st.lists(small_ints, min_size=1, max_size=4))
    if draw(st.booleans()):
        event["z"] = draw(st.integers(min_value=1, max_value=3))
    if draw(st.booleans()):
        event["q"] = draw(st.integers(min_value=0, max_value=10**9))
    if draw(st.booleans()):
        event["trfi"] = draw(small_ints)
        event["trft"] = draw(timestamps_ms)
    return event


@st.composite
def wire_quote(draw: st.DrawFn) -> WireEvent:
    """An NBBO quote (``Q``); sizes in round lots."""
    bid = draw(prices)
    return {
        "ev": "Q",
        "sym": draw(symbols),
        "bx": draw(small_ints),
        "bp": bid,
        "bs": draw(sizes),
        "ax": draw(small_ints),
        "ap": round(bid + draw(prices), 4),
        "as": draw(sizes),
        "c": draw(small_ints),
        "i": draw(st.lists(small_ints, min_size=1, max_size=3)),
        "t": draw(timestamps_ms),
        "q": draw(st.integers(min_value=0, max_value=10**9)),
        "z": draw(st.integers(min_value=1, max_value=3)),
    }


@st.composite
def wire_aggregate(draw: st.DrawFn, ev: str | None = None) -> WireEvent:
    """A second (``A``) or minute (``AM``) aggregate whose OHLC is self-consistent."""
    points = sorted(draw(st.lists(prices, min_size=4, max_size=4)))
    low, a, b, high = points
    start = draw(timestamps_ms)
    kind = ev or draw(st.sampled_from(["A", "AM"]))
    volume = draw(sizes)
    event: WireEvent = {
        "ev": kind,
        "sym": draw(symbols),
        "v": volume,
        "av": volume + draw(sizes),
        "vw": a,
        "o": a,
        "c": b,
        "h": high,
        "l": low,
        "a": b,
        "z": draw(st.integers(min_value=0, max_value=10_000)),
        "s": start,
        "e": start + (1_000 if kind == "A" else 60_000),
    }
    if draw(st.booleans()):
        event["op"] = draw(prices)
    if draw(st.booleans()):
        event["otc"] = True
    return event


@st.composite
def wire_luld(draw: st.DrawFn) -> WireEvent:
    """Limit-up/limit-down bands (``LULD``); the symbol key is ``T``."""
    low = draw(prices)
    return {
        "ev": "LULD",
        "T": draw(symbols),
        "h": round(low + draw(prices), 4),
        "l": low,
        "i": draw(st.lists(small_ints, min_size=1, max_size=2)),
        "z": draw(st.integers(min_value=1, max_value=3)),
        "t": draw(timestamps_ms),
        "q": draw(st.integers(min_value=0, max_value=10**9)),
    }


@st.composite
def wire_imbalance(draw: st.DrawFn) -> WireEvent:
    """An auction imbalance (``NOI``)."""
    return {
        "ev": "NOI",
        "T": draw(symbols),
        "t": draw(timestamps_ms),
        "at": draw(st.sampled_from([930, 1600])),
        "a": draw(st.sampled_from(["O", "M", "H", "C", "P", "R"])),
        "i": draw(st.integers(min_value=0, max_value=10**6)),
        "x": draw(small_ints),
        "o": draw(sizes),
        "p": draw(sizes),
        "b": draw(prices),
    }


@st.composite
def wire_fmv(draw: st.DrawFn) -> WireEvent:
    """A fair market value (``FMV``); nanosecond timestamp."""
    return {
        "ev": "FMV",
        "fmv": draw(prices),
        "sym": draw(symbols),
        "t": draw(timestamps_ms) * 10**6,
    }


@st.composite
def wire_lv(draw: st.DrawFn) -> WireEvent:
    """A Launchpad value (``LV``); nanosecond timestamp."""
    return {"ev": "LV", "val": draw(prices), "sym": draw(symbols), "t": draw(timestamps_ms) * 10**6}


@st.composite
def wire_status(draw: st.DrawFn) -> WireEvent:
    """A server status message."""
    status = draw(st.sampled_from(["connected", "auth_success", "success", "max_connections"]))
    return {"ev": "status", "status": status, "message": draw(st.text(max_size=30))}


any_wire_event = st.one_of(
    wire_trade(),
    wire_quote(),
    wire_aggregate(),
    wire_luld(),
    wire_imbalance(),
    wire_fmv(),
    wire_lv(),
)

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def garbage_frames(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes and arbitrary JSON: anything a broken or hostile peer could send."""
    choice = draw(st.integers(min_value=0, max_value=2))
    if choice == 0:
        return draw(st.binary(max_size=200))

    value = draw(_json_value)
    if choice == 2:
        value = [
            draw(any_wire_event) if draw(st.booleans()) else draw(_json_value) for _ in range(3)
        ]
    return json.dumps(value).encode()
