"""Frames in, models out: every event type decodes, every kind of bad input is typed and skipped."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_core import (
    EVENT_TYPES,
    FairMarketValue,
    Imbalance,
    InvalidJson,
    LaunchpadValue,
    LimitUpLimitDown,
    MalformedInput,
    MalformedSymbol,
    MinuteAggregate,
    MissingEventType,
    MissingField,
    NotAnArray,
    NotAnObject,
    OutOfRange,
    Quote,
    SecondAggregate,
    Status,
    Trade,
    UnknownEventType,
    WrongType,
    decode_event,
    decode_frame,
    encode_events,
    encode_raw_events,
    split_frame,
)
from mdp_testing.strategies import any_wire_event, garbage_frames, wire_status

TRADE = {
    "ev": "T",
    "sym": "MSFT",
    "x": 4,
    "i": "12345",
    "z": 3,
    "p": 114.125,
    "s": 100,
    "c": [0, 12],
    "t": 1536036818784,
    "q": 3681328,
    "trfi": 202,
    "trft": 1536036818783,
}
QUOTE = {
    "ev": "Q",
    "sym": "MSFT",
    "bx": 4,
    "bp": 114.125,
    "bs": 100,
    "ax": 7,
    "ap": 114.128,
    "as": 160,
    "c": 0,
    "i": [604],
    "t": 1536036818784,
    "q": 50385480,
    "z": 3,
}
SECOND = {
    "ev": "A",
    "sym": "SPCE",
    "v": 200,
    "av": 8642007,
    "op": 25.66,
    "vw": 25.3981,
    "o": 25.39,
    "c": 25.39,
    "h": 25.39,
    "l": 25.39,
    "a": 25.3714,
    "z": 50,
    "s": 1610144640000,
    "e": 1610144641000,
}
MINUTE = {**SECOND, "ev": "AM", "e": 1610144700000}
LULD = {
    "ev": "LULD",
    "T": "MSFT",
    "h": 218.96,
    "l": 198.11,
    "i": [21],
    "z": 3,
    "t": 1601316752683746,
    "q": 290317,
}
NOI = {
    "ev": "NOI",
    "T": "NTEST.Q",
    "t": 1601318039223013127,
    "at": 930,
    "a": "M",
    "i": 44,
    "x": 10,
    "o": 480,
    "p": 440,
    "b": 25.03,
}
FMV = {"ev": "FMV", "fmv": 189.22, "sym": "AAPL", "t": 1678220098130000000}
LV = {"ev": "LV", "val": 3988.5, "sym": "AAPL", "t": 1678220098130000000}
STATUS = {"ev": "status", "status": "connected", "message": "Connected Successfully"}

REALISTIC_FRAME = json.dumps([TRADE, QUOTE, SECOND, MINUTE, LULD, NOI, FMV, LV, STATUS]).encode()


def _frame(*events: Any) -> bytes:
    return json.dumps(list(events)).encode()


def test_a_realistic_frame_decodes_every_event_type_with_meaningful_names() -> None:
    frame = decode_frame(REALISTIC_FRAME)

    assert frame.errors == []
    assert frame.statuses == [Status(status="connected", message="Connected Successfully")]
    trade, quote, second, minute, luld, noi, fmv, lv = frame.events
    assert isinstance(trade, Trade)
    assert (trade.symbol, trade.price, trade.size, trade.conditions) == (
        "MSFT",
        114.125,
        100,
        (0, 12),
    )
    assert (trade.exchange, trade.trade_id, trade.trf_id, trade.event_time_ms) == (
        4,
        "12345",
        202,
        1536036818784,
    )
    assert isinstance(quote, Quote)
    assert (quote.bid_price, quote.ask_price, quote.bid_size, quote.ask_size) == (
        114.125,
        114.128,
        100,
        160,
    )
    assert isinstance(second, SecondAggregate)
    assert (second.accumulated_volume, second.official_open, second.day_vwap) == (
        8642007,
        25.66,
        25.3714,
    )
    assert second.event_time_ms == 1610144641000
    assert isinstance(minute, MinuteAggregate)
    assert isinstance(luld, LimitUpLimitDown)
    assert (luld.symbol, luld.high_limit, luld.low_limit, luld.indicators) == (
        "MSFT",
        218.96,
        198.11,
        (21,),
    )
    assert isinstance(noi, Imbalance)
    assert (noi.auction_type, noi.imbalance_quantity, noi.book_clearing_price) == ("M", 480, 25.03)
    assert isinstance(fmv, FairMarketValue)
    assert fmv.event_time_ms == 1678220098130
    assert isinstance(lv, LaunchpadValue)
    assert lv.value == 3988.5


def test_models_are_immutable() -> None:
    trade = decode_event(json.dumps(TRADE))
    assert isinstance(trade, Trade)
    with pytest.raises(AttributeError):
        trade.price = 1.0  # type: ignore[misc]


def test_encoding_gives_back_the_vendor_structure() -> None:
    frame = decode_frame(REALISTIC_FRAME)
    again = json.loads(encode_events([*frame.events, *frame.statuses]))
    assert again == [TRADE, QUOTE, SECOND, MINUTE, LULD, NOI, FMV, LV, STATUS]


@given(st.lists(any_wire_event, max_size=20))
def test_round_trip_wire_model_wire(events: list[dict[str, Any]]) -> None:
    decoded = decode_frame(json.dumps(events).encode())
    assert decoded.errors == []
    assert json.loads(encode_events(decoded.events)) == events


@given(st.lists(st.one_of(any_wire_event, wire_status()), max_size=20))
def test_split_frame_keeps_every_event_byte_for_byte_grouped_by_type(
    events: list[dict[str, Any]],
) -> None:
    split = split_frame(json.dumps(events).encode())

    assert split.errors == []
    assert [s.status for s in split.statuses] == [
        e["status"] for e in events if e["ev"] == "status"
    ]
    for ev, raws in split.by_type.items():
        assert json.loads(encode_raw_events(raws)) == [e for e in events if e["ev"] == ev]
    assert split.event_count == sum(1 for e in events if e["ev"] != "status")


@given(garbage_frames())
def test_garbage_never_raises_and_every_problem_is_typed(data: bytes) -> None:
    decoded = decode_frame(data)
    split = split_frame(data)
    for error in (*decoded.errors, *split.errors):
        assert isinstance(error, MalformedInput)
        assert error.kind != MalformedInput.kind
    # split_frame only needs `ev` to route, so it never drops more than decode_frame does.
    assert split.event_count + len(split.statuses) >= len(decoded.events) + len(decoded.statuses)


BAD_ELEMENTS: list[tuple[str, object, type[MalformedInput]]] = [
    ("unknown ev", {"ev": "ZZZ", "sym": "A"}, UnknownEventType),
    ("missing ev", {"sym": "A", "p": 1.0}, MissingEventType),
    ("non-string ev", {"ev": 5}, MissingEventType),
    ("not an object", 17, NotAnObject),
    ("missing symbol", {k: v for k, v in TRADE.items() if k != "sym"}, MissingField),
    ("price as string", {**TRADE, "p": "114.1"}, WrongType),
    ("negative price", {**TRADE, "p": -1.5}, OutOfRange),
    ("negative size", {**TRADE, "s": -100}, OutOfRange),
    ("empty quote symbol", {**QUOTE, "sym": ""}, MalformedSymbol),
    ("huge price", {**SECOND, "h": 1e300}, OutOfRange),
    ("huge size", {**TRADE, "s": 10**16}, OutOfRange),
    # Symbols become parts of key and channel names: no separators, no glob syntax.
    ("symbol with a colon", {**TRADE, "sym": "A:B"}, MalformedSymbol),
    ("symbol with a space", {**QUOTE, "sym": "A B"}, MalformedSymbol),
    ("symbol with a glob", {**TRADE, "sym": "A*"}, MalformedSymbol),
    ("empty symbol", {**SECOND, "sym": ""}, MalformedSymbol),
    ("symbol too long", {**SECOND, "sym": "X" * 17}, MalformedSymbol),
    ("symbol of the wrong type", {**SECOND, "sym": 7}, WrongType),
]


@pytest.mark.parametrize(
    ("case", "element", "error"), BAD_ELEMENTS, ids=[c[0] for c in BAD_ELEMENTS]
)
def test_one_bad_element_is_a_specific_error_and_the_rest_survives(
    case: str, element: object, error: type[MalformedInput]
) -> None:
    frame = decode_frame(_frame(TRADE, element, QUOTE))

    assert [type(e) for e in frame.errors] == [error], case
    assert frame.errors[0].index == 1
    assert [type(e) for e in frame.events] == [Trade, Quote]


def test_nan_and_infinity_are_out_of_range_without_losing_the_frame() -> None:
    text = json.dumps([TRADE, {**TRADE, "p": float("nan")}, {**QUOTE, "bp": float("inf")}, QUOTE])
    assert "NaN" in text  # the stdlib writes the non-standard tokens a broken peer might send

    frame = decode_frame(text.encode())
    split = split_frame(text.encode())

    assert [type(e) for e in frame.errors] == [OutOfRange, OutOfRange]
    assert [e.index for e in frame.errors] == [1, 2]
    assert [type(e) for e in frame.events] == [Trade, Quote]
    assert [type(e) for e in split.errors] == [OutOfRange, OutOfRange]
    assert {ev: len(raws) for ev, raws in split.by_type.items()} == {"T": 1, "Q": 1}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"{not json", InvalidJson),
        (b'{"ev": "T"}', NotAnArray),
        (b"", InvalidJson),
        (b"\xff\xfe", InvalidJson),
        (b'"text"', NotAnArray),
    ],
)
def test_a_frame_that_is_not_an_array_of_events_is_one_typed_error(
    data: bytes, error: type[MalformedInput]
) -> None:
    assert [type(e) for e in decode_frame(data).errors] == [error]
    assert [type(e) for e in split_frame(data).errors] == [error]


def test_decode_event_raises_the_specific_error() -> None:
    with pytest.raises(UnknownEventType) as info:
        decode_event(b'{"ev": "XX"}')
    assert info.value.event_type == "XX"
    assert "XX" in str(info.value)
    with pytest.raises(MissingField, match="sym"):
        decode_event(json.dumps({k: v for k, v in QUOTE.items() if k != "sym"}))
    with pytest.raises(InvalidJson):
        decode_event(b"[")


def test_every_event_type_has_a_model_and_a_tag() -> None:
    assert set(EVENT_TYPES) == {"T", "Q", "A", "AM", "LULD", "NOI", "FMV", "LV", "status"}
    for ev, cls in EVENT_TYPES.items():
        assert ev == cls.EV


def test_errors_survive_pickling_for_worker_processes() -> None:
    import pickle

    error = OutOfRange("field 'p' is not a finite number", index=3, event_type="T")
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    assert type(again) is OutOfRange
    assert (again.index, again.event_type, str(again)) == (3, "T", str(error))


def test_msgspec_raw_slices_are_what_the_listener_forwards() -> None:
    split = split_frame(REALISTIC_FRAME)
    assert all(isinstance(raw, msgspec.Raw) for raws in split.by_type.values() for raw in raws)


# --------------------------------------------------------------------------------------------
# Pinned by mutation testing (issue 21): what each error says, which element and which type.

_EV_LEVEL = {MissingEventType, NotAnObject}  # split_frame routes any string `ev`


@pytest.mark.parametrize(
    ("case", "element", "error"), BAD_ELEMENTS, ids=[c[0] for c in BAD_ELEMENTS]
)
def test_each_error_names_its_element_and_event_type_on_both_paths(
    case: str, element: object, error: type[MalformedInput]
) -> None:
    data = _frame(TRADE, element, QUOTE)
    (found,) = decode_frame(data).errors
    ev = element.get("ev") if isinstance(element, dict) else None
    assert (type(found), found.index) == (error, 1), case
    assert found.event_type == (ev if isinstance(ev, str) else None), case
    assert found.detail, case
    split = split_frame(data)
    if error in _EV_LEVEL:
        (routed,) = split.errors
        assert (type(routed), routed.index, routed.detail) == (error, 1, found.detail), case
    else:  # split_frame routes by `ev` only; the fields are the consumer's business
        assert split.errors == []
        assert sorted(split.by_type) == sorted({"T", "Q", str(ev)})


def test_error_messages_say_what_is_wrong() -> None:
    cases: list[tuple[object, str]] = [
        (17, "expected an event object, was int"),
        ({"sym": "A"}, "the element has no string 'ev' field"),
        ({"ev": "ZZZ"}, "event type 'ZZZ' is not known"),
    ]
    for element, message in cases:
        (error,) = decode_frame(_frame(element)).errors
        assert error.detail == message
    for element, message in cases[:2]:
        (routed,) = split_frame(_frame(element)).errors
        assert routed.detail == message
    (not_array,) = decode_frame(b'{"ev": "T"}').errors
    assert not_array.detail == "a frame must be a JSON array of events"
    (bad_json,) = decode_frame(b"{not json").errors
    assert bad_json.detail.startswith("Expecting property name")
    (nan,) = decode_frame(json.dumps([{**TRADE, "p": float("nan")}]).encode()).errors
    assert (nan.detail, nan.event_type, nan.index) == ("field 'p' is not a finite number", "T", 0)


def test_a_frame_nested_too_deep_is_one_error_on_both_paths() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for result in (decode_frame(deep), split_frame(deep)):
        (error,) = result.errors
        assert error.detail == "JSON nested deeper than the decoder's recursion limit"
    decoded = decode_frame(deep)
    assert (decoded.events, decoded.statuses) == ([], [])
    split = split_frame(deep)
    assert (split.by_type, split.statuses) == ({}, [])


def test_statuses_and_events_are_kept_apart_on_both_decode_paths() -> None:
    status = {"ev": "status", "status": "connected", "message": "ok"}
    for frame in (_frame(status, TRADE, status), _frame(status, TRADE, {"ev": 5}, status)):
        decoded = decode_frame(frame)
        assert [type(e) for e in decoded.events] == [Trade]
        assert [s.status for s in decoded.statuses] == ["connected", "connected"]


def test_one_event_decoded_alone_is_element_0_unless_told_otherwise() -> None:
    from mdp_core.wire import decode_element

    with pytest.raises(UnknownEventType) as unknown:
        decode_event(b'{"ev": "ZZZ"}')  # refused by the fast path, named by the slow one
    assert unknown.value.event_type == "ZZZ"
    with pytest.raises(OutOfRange) as negative:
        decode_event(json.dumps({**TRADE, "s": -1}))
    assert negative.value.index == 0
    with pytest.raises(InvalidJson) as bad:
        decode_event(b"[")
    assert bad.value.detail not in {"", "None"}
    with pytest.raises(OutOfRange) as default:
        decode_element(json.dumps({**TRADE, "s": -1}).encode())
    assert default.value.index == 0
    with pytest.raises(OutOfRange) as placed:
        decode_element(json.dumps({**TRADE, "s": -1}).encode(), 7)
    assert placed.value.index == 7
    assert decode_element(json.dumps(TRADE).encode()) == decode_frame(_frame(TRADE)).events[0]


def test_the_slow_split_keeps_statuses_and_events_byte_for_byte() -> None:
    status = {"ev": "status", "status": "connected", "message": "ok"}
    text = json.dumps([status, TRADE, {**TRADE, "p": float("nan")}, QUOTE]).encode()
    split = split_frame(text)
    assert [s.status for s in split.statuses] == ["connected"]
    assert {ev: [json.loads(bytes(r)) for r in raws] for ev, raws in split.by_type.items()} == {
        "T": [TRADE],
        "Q": [QUOTE],
    }
    (error,) = split.errors
    assert (type(error), error.index, error.event_type) == (OutOfRange, 2, "T")
    (not_array,) = split_frame(b'{"p": NaN}').errors
    assert not_array.detail == "a frame must be a JSON array of events"
