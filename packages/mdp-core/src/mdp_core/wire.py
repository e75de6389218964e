"""Wire <-> model conversion for Massive frames.

A Massive frame is a JSON array of events. Two readers are offered, each tuned to its caller:

* :func:`decode_frame` turns a frame into models in one msgspec call (the processors' path). Only
  when that fails does it take a slower path that decodes element by element, so one bad event
  costs its own drop and a typed error, never the frame.
* :func:`split_frame` groups the events of a frame by ``ev`` as undecoded :class:`msgspec.Raw`
  slices (the listener's path): events are routed without being decoded into models or
  re-encoded, and :func:`encode_raw_events` puts them back into an array byte for byte.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from mdp_core.errors import (
    InvalidJson,
    MalformedInput,
    MalformedSymbol,
    MissingEventType,
    MissingField,
    NestedTooDeep,
    NotAnArray,
    NotAnObject,
    OutOfRange,
    UnknownEventType,
    WrongType,
)
from mdp_core.events import EVENT_TYPES, AnyEvent, MarketEvent, Status

__all__ = [
    "DecodedFrame",
    "SplitFrame",
    "classify_validation_error",
    "decode_element",
    "decode_event",
    "decode_frame",
    "encode_events",
    "encode_raw_events",
    "split_frame",
]


class DecodedFrame(msgspec.Struct, frozen=True):
    """What a frame held: market events, status messages and the errors that were skipped."""

    events: list[MarketEvent]
    statuses: list[Status]
    errors: list[MalformedInput]


class SplitFrame(msgspec.Struct, frozen=True):
    """A frame's events grouped by ``ev`` code, each event still in its original bytes."""

    by_type: dict[str, list[msgspec.Raw]]
    statuses: list[Status]
    errors: list[MalformedInput]

    @property
    def event_count(self) -> int:
        """How many market events the frame carried (statuses and errors excluded)."""
        return sum(len(raws) for raws in self.by_type.values())


class _Head(msgspec.Struct):
    """Just enough of an element to route it; every other key is skipped unread."""

    ev: str


_FRAME_DECODER: Final = msgspec.json.Decoder(list[AnyEvent])
_RAW_LIST_DECODER: Final = msgspec.json.Decoder(list[msgspec.Raw])
_HEAD_DECODER: Final = msgspec.json.Decoder(_Head)
_HEADS_DECODER: Final = msgspec.json.Decoder(list[_Head])
_STATUS_DECODER: Final = msgspec.json.Decoder(Status)
_EVENT_DECODERS: Final = {ev: msgspec.json.Decoder(cls) for ev, cls in EVENT_TYPES.items()}
_ENCODER: Final = msgspec.json.Encoder()


def decode_frame(data: bytes | str) -> DecodedFrame:
    """Decode a whole frame into models.

    Never raises on bad input: a frame that is not JSON or not an array yields a single error, and
    each bad element yields its own error while the good ones are kept.
    """
    try:
        decoded = _FRAME_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _decode_slowly(data)
    except RecursionError:
        return DecodedFrame([], [], [_too_deep()])
    events: list[MarketEvent] = []
    statuses: list[Status] = []
    for item in decoded:
        if type(item) is Status:
            statuses.append(item)
        else:
            events.append(item)  # type: ignore[arg-type]  # narrowed: not a Status
    return DecodedFrame(events, statuses, [])


def decode_event(data: bytes | str) -> AnyEvent:
    """Decode a single event object.

    Raises:
        MalformedInput: a specific subclass saying what is wrong.
    """
    try:
        head = _HEAD_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidJson(str(exc)) from None
    except RecursionError:
        raise _too_deep() from None
    except msgspec.ValidationError:
        return _decode_python(_loads_permissive(data), 0)
    decoder = _EVENT_DECODERS.get(head.ev)
    if decoder is None:
        raise UnknownEventType(f"event type {head.ev!r} is not known", event_type=head.ev)
    try:
        result: AnyEvent = decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _decode_python(_loads_permissive(data), 0)
    except RecursionError:
        raise _too_deep() from None
    return result


def decode_element(raw: msgspec.Raw | bytes, index: int = 0) -> AnyEvent:
    """Decode one element of a frame that was split earlier (see :func:`split_frame`).

    Raises:
        MalformedInput: a specific subclass, carrying ``index``.
    """
    try:
        return decode_event(raw)
    except MalformedInput as exc:
        exc.index = index
        raise


def split_frame(data: bytes | str) -> SplitFrame:
    """Group a frame's events by ``ev`` without decoding them into models.

    Status elements are decoded (the listener acts on them); anything that is not an object with a
    string ``ev`` becomes an error. Event validity beyond ``ev`` is the consumer's business.
    """
    try:
        raws = _RAW_LIST_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _split_slowly(data)
    except RecursionError:
        # Even skipping a value recurses: nothing in the frame can be reached.
        return SplitFrame({}, [], [_too_deep()])
    try:
        # One C-level pass reads every `ev` (other keys are skipped): the common case.
        heads: list[_Head] | None = _HEADS_DECODER.decode(data)
    except (msgspec.ValidationError, RecursionError):
        heads = None  # some element has no usable `ev`: classify them one by one below
    by_type: dict[str, list[msgspec.Raw]] = {}
    statuses: list[Status] = []
    errors: list[MalformedInput] = []
    head_decode = _HEAD_DECODER.decode
    for index, raw in enumerate(raws):
        if heads is not None:
            ev = heads[index].ev
        else:
            try:
                ev = head_decode(raw).ev
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                errors.append(_classify_head(raw, index))
                continue
        if ev == "status":
            try:
                statuses.append(_STATUS_DECODER.decode(raw))
            except msgspec.ValidationError as exc:
                errors.append(classify_validation_error(exc, index=index, event_type=ev))
            except RecursionError:
                errors.append(_too_deep())
            continue
        bucket = by_type.get(ev)
        if bucket is None:
            by_type[ev] = [raw]
        else:
            bucket.append(raw)
    return SplitFrame(by_type, statuses, errors)


def encode_events(events: Iterable[AnyEvent]) -> bytes:
    """Encode models back to a Massive frame (wire keys, defaults omitted)."""
    return _ENCODER.encode(list(events))


def encode_raw_events(raws: Sequence[msgspec.Raw]) -> bytes:
    """Join undecoded events into a JSON array, byte for byte as they arrived."""
    return _ENCODER.encode(raws)


#: Where msgspec says a constraint failed on a symbol field (``sym``, or ``T`` of LULD/NOI).
_SYMBOL_PATH: Final = re.compile(r"at `\$(?:\[\d+\])?\.(?:sym|T)`$")


def classify_validation_error(
    exc: msgspec.ValidationError, *, index: int | None = None, event_type: str | None = None
) -> MalformedInput:
    """Map a msgspec validation message to the specific error class it describes."""
    text = str(exc)
    if "missing required field" in text:
        return MissingField(text, index=index, event_type=event_type)
    if ", got `" in text:
        return WrongType(text, index=index, event_type=event_type)
    if _SYMBOL_PATH.search(text):
        return MalformedSymbol(text, index=index, event_type=event_type)
    return OutOfRange(text, index=index, event_type=event_type)


# --- the slow path: only for frames the fast decoder rejected -----------------------------------


class _NonFinite:
    """Marks a NaN or infinity the permissive parser met (msgspec rejects them as invalid JSON)."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _loads_permissive(data: bytes | str | msgspec.Raw) -> object:
    text = bytes(data) if isinstance(data, msgspec.Raw) else data
    try:
        return json.loads(text, parse_constant=_NonFinite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(str(exc)) from None
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> NestedTooDeep:
    return NestedTooDeep("JSON nested deeper than the decoder's recursion limit")


def _decode_slowly(data: bytes | str) -> DecodedFrame:
    try:
        parsed = _loads_permissive(data)
    except InvalidJson as exc:
        return DecodedFrame([], [], [exc])
    if not isinstance(parsed, list):
        return DecodedFrame([], [], [NotAnArray("a frame must be a JSON array of events")])
    events: list[MarketEvent] = []
    statuses: list[Status] = []
    errors: list[MalformedInput] = []
    for index, element in enumerate(parsed):
        try:
            item = _decode_python(element, index)
        except MalformedInput as exc:
            errors.append(exc)
            continue
        if type(item) is Status:
            statuses.append(item)
        else:
            events.append(item)  # type: ignore[arg-type]  # narrowed: not a Status
    return DecodedFrame(events, statuses, errors)


def _decode_python(element: object, index: int) -> AnyEvent:
    if not isinstance(element, dict):
        raise NotAnObject(f"expected an event object, was {type(element).__name__}", index=index)
    ev = element.get("ev")
    if not isinstance(ev, str):
        raise MissingEventType("the element has no string 'ev' field", index=index)
    cls = EVENT_TYPES.get(ev)
    if cls is None:
        raise UnknownEventType(f"event type {ev!r} is not known", index=index, event_type=ev)
    for key, value in element.items():
        if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
            raise OutOfRange(f"field {key!r} is not a finite number", index=index, event_type=ev)
    try:
        return msgspec.convert(element, cls)
    except msgspec.ValidationError as exc:
        raise classify_validation_error(exc, index=index, event_type=ev) from None
    except RecursionError:
        raise NestedTooDeep(
            "JSON nested deeper than the decoder's recursion limit", index=index, event_type=ev
        ) from None


def _split_slowly(data: bytes | str) -> SplitFrame:
    """Salvage a frame msgspec cannot parse (e.g. one NaN): keep every element that is sound."""
    try:
        parsed = _loads_permissive(data)
    except InvalidJson as exc:
        return SplitFrame({}, [], [exc])
    if not isinstance(parsed, list):
        return SplitFrame({}, [], [NotAnArray("a frame must be a JSON array of events")])
    by_type: dict[str, list[msgspec.Raw]] = {}
    statuses: list[Status] = []
    errors: list[MalformedInput] = []
    for index, element in enumerate(parsed):
        try:
            item = _decode_python(element, index)
        except MalformedInput as exc:
            errors.append(exc)
            continue
        if type(item) is Status:
            statuses.append(item)
        else:
            by_type.setdefault(item.EV, []).append(msgspec.Raw(_ENCODER.encode(element)))
    return SplitFrame(by_type, statuses, errors)


def _classify_head(raw: msgspec.Raw, index: int) -> MalformedInput:
    try:
        parsed = _loads_permissive(raw)
    except InvalidJson as exc:
        exc.index = index
        return exc
    if not isinstance(parsed, dict):
        return NotAnObject(f"expected an event object, was {type(parsed).__name__}", index=index)
    return MissingEventType("the element has no string 'ev' field", index=index)
