"""Typed errors for bad input.

A stream of market data must survive any single bad event, so every way an input can be wrong has
its own exception class with a stable ``kind`` string. Callers count errors by ``kind`` (a metric
label) and skip the input; nothing here is meant to end a stream.
"""

from __future__ import annotations

__all__ = [
    "EnvelopeError",
    "EnvelopeTooDeep",
    "InvalidJson",
    "MalformedInput",
    "MalformedSymbol",
    "MdpError",
    "MissingEventType",
    "MissingField",
    "NestedTooDeep",
    "NotAnArray",
    "NotAnObject",
    "OutOfRange",
    "UnknownEventType",
    "UnsupportedEnvelopeVersion",
    "WrongType",
]


class MdpError(Exception):
    """Base class of every error the platform raises on purpose."""


class MalformedInput(MdpError):
    """An input (frame, event, envelope, article) that cannot be used.

    Attributes:
        kind: Stable, metric-friendly name of what was wrong (``invalid_json``, ...).
        index: Position of the offending element in its frame, when there is one.
        event_type: The ``ev`` code of the element, when it could be read.
        detail: Human-readable explanation, naming the field when one is at fault.
    """

    kind: str = "malformed"

    def __init__(
        self, detail: str, *, index: int | None = None, event_type: str | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.index = index
        self.event_type = event_type

    def __str__(self) -> str:
        where = [] if self.index is None else [f"element {self.index}"]
        if self.event_type is not None:
            where.append(f"ev={self.event_type!r}")
        prefix = f"{self.kind} ({', '.join(where)}): " if where else f"{self.kind}: "
        return prefix + self.detail

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.detail, self.index, self.event_type))


def _rebuild(
    cls: type[MalformedInput], detail: str, index: int | None, event_type: str | None
) -> MalformedInput:
    return cls(detail, index=index, event_type=event_type)


class InvalidJson(MalformedInput):
    """The bytes are not JSON at all; nothing in the frame can be salvaged."""

    kind = "invalid_json"


class NestedTooDeep(InvalidJson):
    """JSON nested deeper than the decoder's recursion limit (``[[[[...``): refused unread.

    A subclass of :class:`InvalidJson` because nothing in the input can be salvaged, but with its
    own ``kind`` so the metric tells an attack from line noise.
    """

    kind = "too_deep"


class NotAnArray(MalformedInput):
    """A frame that is valid JSON but not an array of events."""

    kind = "not_an_array"


class NotAnObject(MalformedInput):
    """An element of a frame that is not a JSON object."""

    kind = "not_an_object"


class MissingEventType(MalformedInput):
    """An element without the ``ev`` discriminator (or with a non-string one)."""

    kind = "missing_event_type"


class UnknownEventType(MalformedInput):
    """An element whose ``ev`` is not a type this platform understands."""

    kind = "unknown_event_type"


class MissingField(MalformedInput):
    """An element that lacks a required field, such as the symbol."""

    kind = "missing_field"


class WrongType(MalformedInput):
    """A field of the wrong JSON type, e.g. a price sent as a string."""

    kind = "wrong_type"


class OutOfRange(MalformedInput):
    """A field outside its valid range: NaN, infinity, a negative price or size."""

    kind = "out_of_range"


class MalformedSymbol(OutOfRange):
    """A symbol that fails the ticker grammar (empty, too long, whitespace, ``: * ? [ ]``).

    Symbols become parts of key and channel names. Its own ``kind`` so the metric tells a feed
    sending garbage tickers from bad prices.
    """

    kind = "malformed_symbol"


class EnvelopeError(MalformedInput):
    """A queue message whose envelope cannot be read."""

    kind = "bad_envelope"


class UnsupportedEnvelopeVersion(EnvelopeError):
    """An envelope written by a newer schema than this reader knows."""

    kind = "unsupported_envelope_version"


class EnvelopeTooDeep(EnvelopeError):
    """A queue message nested deeper than the decoder's recursion limit; dropped unread."""

    kind = "envelope_too_deep"
