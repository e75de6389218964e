"""The envelope that carries a batch of events through the queues.

One queue message is one envelope: a small versioned header (what kind of events, when the
listener received them, which listener batch it is) around a JSON array of events kept exactly as
the provider sent them. The listener builds it from undecoded slices (no re-encoding); a processor
decodes header and events into models in one call.

Wire form (JSON)::

    {"v": 1, "kind": "T", "source": "massive", "batch": "mdl-3f2a:812",
     "received_ns": 1767000000123456789, "events": [{"ev": "T", ...}, ...]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from mdp_core.errors import (
    EnvelopeError,
    EnvelopeTooDeep,
    MalformedInput,
    NestedTooDeep,
    UnsupportedEnvelopeVersion,
)
from mdp_core.events import AnyEvent, MarketEvent, Status
from mdp_core.news import Article
from mdp_core.wire import classify_validation_error, decode_element

__all__ = [
    "ENVELOPE_VERSION",
    "Envelope",
    "EventBatch",
    "NewsBatch",
    "decode_event_batch",
    "decode_header",
    "decode_news_batch",
    "encode_envelope",
]

#: The schema version this code writes; readers accept this version and older ones.
ENVELOPE_VERSION: Final = 1


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """A batch of undecoded events of one kind, as it travels through a queue.

    Attributes:
        v: Schema version of the envelope.
        kind: The ``ev`` code shared by every event inside (``"T"``, ``"A"``), or ``"news"``.
        source: The feed the events came from (``massive``, ``finlight``, ``sim``).
        batch: Unique batch id (listener instance and sequence); consumers use it to drop a
            message delivered twice.
        received_ns: When the listener received the frame(s), Unix ns (UTC). Freshness limits
            are measured from this instant.
        events: The events, each byte for byte as received.
    """

    v: int = ENVELOPE_VERSION
    kind: str
    source: str
    batch: str
    received_ns: int
    events: list[msgspec.Raw]


class EventBatch(msgspec.Struct, frozen=True):
    """A decoded envelope of market events, with the events that had to be skipped."""

    kind: str
    source: str
    batch: str
    received_ns: int
    events: list[MarketEvent]
    errors: list[MalformedInput]


class NewsBatch(msgspec.Struct, frozen=True):
    """A decoded envelope of news articles, with the articles that had to be skipped."""

    source: str
    batch: str
    received_ns: int
    articles: list[Article]
    errors: list[MalformedInput]


class _Header(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    kind: str
    source: str
    batch: str
    received_ns: int


class _TypedEvents(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    kind: str
    source: str
    batch: str
    received_ns: int
    events: list[AnyEvent]


class _RawEvents(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    kind: str
    source: str
    batch: str
    received_ns: int
    events: list[msgspec.Raw]


class _TypedNews(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    source: str
    batch: str
    received_ns: int
    events: list[Article]


_ENCODER: Final = msgspec.json.Encoder()
_HEADER_DECODER: Final = msgspec.json.Decoder(_Header)
_TYPED_DECODER: Final = msgspec.json.Decoder(_TypedEvents)
_RAW_DECODER: Final = msgspec.json.Decoder(_RawEvents)
_NEWS_DECODER: Final = msgspec.json.Decoder(_TypedNews)
_ARTICLE_DECODER: Final = msgspec.json.Decoder(Article)


def encode_envelope(
    *, kind: str, source: str, batch: str, received_ns: int, events: Sequence[msgspec.Raw]
) -> bytes:
    """Encode a batch of undecoded events; the events are copied into place, not re-encoded."""
    return _ENCODER.encode(
        Envelope(
            kind=kind, source=source, batch=batch, received_ns=received_ns, events=list(events)
        )
    )


def decode_header(body: bytes) -> Envelope:
    """Decode an envelope, leaving its events undecoded (cheap: for routing and freshness checks).

    Raises:
        EnvelopeError: the body is not an envelope.
        UnsupportedEnvelopeVersion: the envelope is newer than this reader.
    """
    raw = _decode_checked(_RAW_DECODER, body)
    return Envelope(
        v=raw.v,
        kind=raw.kind,
        source=raw.source,
        batch=raw.batch,
        received_ns=raw.received_ns,
        events=raw.events,
    )


def decode_event_batch(body: bytes) -> EventBatch:
    """Decode an envelope of market events into models in one call.

    Bad events are skipped and returned as errors; status messages (which listeners never
    enqueue) are dropped.

    Raises:
        EnvelopeError: the body is not an envelope.
        UnsupportedEnvelopeVersion: the envelope is newer than this reader.
    """
    try:
        typed = _TYPED_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _decode_batch_slowly(body)
    _check_version(typed.v)
    events = [event for event in typed.events if type(event) is not Status]
    return EventBatch(
        typed.kind,
        typed.source,
        typed.batch,
        typed.received_ns,
        events,  # type: ignore[arg-type]  # statuses filtered out above
        [],
    )


def decode_news_batch(body: bytes) -> NewsBatch:
    """Decode an envelope of news articles; bad articles are skipped and returned as errors.

    Raises:
        EnvelopeError: the body is not an envelope.
        UnsupportedEnvelopeVersion: the envelope is newer than this reader.
    """
    try:
        typed = _NEWS_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        pass
    else:
        _check_version(typed.v)
        return NewsBatch(typed.source, typed.batch, typed.received_ns, typed.events, [])
    raw = _decode_checked(_RAW_DECODER, body)
    articles: list[Article] = []
    errors: list[MalformedInput] = []
    for index, item in enumerate(raw.events):
        try:
            articles.append(_ARTICLE_DECODER.decode(item))
        except msgspec.ValidationError as exc:
            errors.append(classify_validation_error(exc, index=index, event_type="article"))
        except RecursionError:
            errors.append(NestedTooDeep("article nested too deep", index=index))
    return NewsBatch(raw.source, raw.batch, raw.received_ns, articles, errors)


def _decode_batch_slowly(body: bytes) -> EventBatch:
    raw = _decode_checked(_RAW_DECODER, body)
    events: list[MarketEvent] = []
    errors: list[MalformedInput] = []
    for index, item in enumerate(raw.events):
        try:
            event = decode_element(item, index)
        except MalformedInput as exc:
            errors.append(exc)
            continue
        if type(event) is not Status:
            events.append(event)  # type: ignore[arg-type]  # narrowed: not a Status
    return EventBatch(raw.kind, raw.source, raw.batch, raw.received_ns, events, errors)


def _decode_checked(decoder: msgspec.json.Decoder[_RawEvents], body: bytes) -> _RawEvents:
    try:
        raw = decoder.decode(body)
    # ValidationError subclasses DecodeError, so it is caught first.
    except msgspec.ValidationError as exc:
        header_error = _header_problem(body)
        raise (header_error or EnvelopeError(f"not an envelope: {exc}")) from None
    except msgspec.DecodeError as exc:
        header_error = _header_problem(body)
        raise (header_error or EnvelopeError(f"the body is not JSON: {exc}")) from None
    except RecursionError:
        # Even the undecoded events must be skipped over, and skipping recurses too.
        raise EnvelopeTooDeep("JSON nested deeper than the decoder's recursion limit") from None
    _check_version(raw.v)
    return raw


def _header_problem(body: bytes) -> MalformedInput | None:
    """Say whether the header itself is the problem (e.g. a newer version)."""
    try:
        header = _HEADER_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    try:
        _check_version(header.v)
    except UnsupportedEnvelopeVersion as exc:
        return exc
    return None


def _check_version(version: int) -> None:
    if version > ENVELOPE_VERSION or version < 1:
        raise UnsupportedEnvelopeVersion(
            f"envelope version {version} is not supported; this reader knows 1..{ENVELOPE_VERSION}"
        )
