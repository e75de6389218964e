"""The WDS wire protocol v1: client requests, server messages, error and close codes.

Server messages that carry feed data are assembled from bytes (the payload exactly as stored or
published, never re-encoded), so one published update is encoded once however many clients
receive it. Everything else is small and encoded with msgspec.

See ``docs/reference/wds-protocol.md`` for the narrative and examples.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

__all__ = [
    "MAX_FIELDS",
    "MAX_FIELD_NAME",
    "PROTOCOL_VERSION",
    "BadRequest",
    "CloseCode",
    "ErrorCode",
    "Frame",
    "Request",
    "decode_request",
    "delta_frame",
    "encode_message",
    "list_snapshot_data",
    "snapshot_frame",
    "update_frame",
]

PROTOCOL_VERSION: Final = 1


class CloseCode(enum.IntEnum):
    """Websocket close codes the WDS uses, and what each means to a client."""

    GOING_AWAY = 1001  # server shutting down or drained: reconnect (elsewhere)
    FRAME_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    UNAUTHENTICATED = 4001  # no/late/invalid/expired authentication
    ORIGIN_NOT_ALLOWED = 4003
    RATE_LIMITED = 4008
    TOO_SLOW = 4009  # send queue overflow
    TOO_MANY_CONNECTIONS = 4029


class ErrorCode(enum.StrEnum):
    """``code`` of an ``error`` message; the socket stays open after any of them."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_FEED = "unknown_feed"
    FORBIDDEN_FEED = "forbidden_feed"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    UNAVAILABLE = "unavailable"  # addition: the cache could not be read right now; retried
    BAD_FIELDS = "bad_fields"  # addition: ``fields`` malformed, or on a feed without rows
    TOO_MANY_FIELD_SETS = "too_many_field_sets"  # addition: the feed has too many projections


def _text_frame_header(size: int) -> bytes:
    """RFC 6455 header of an unfragmented, unmasked, uncompressed text frame of ``size`` bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big")
    return bytes((0x81, 127)) + size.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Frame:
    """A server message ready to send, shared by every client that receives it.

    Server-to-client frames are never masked (RFC 6455 section 5.1) and compression is off, so
    the complete websocket frame is the same bytes for every recipient: it is built once here
    (``wire``) and each client's writer only concatenates and writes.

    Attributes:
        data: The encoded JSON text (UTF-8 bytes).
        as_of_ms: The event time found in the payload (``as_of_ms``/``published_ms``), used for
            the delivery-lag metric; ``None`` when the payload carries none.
        wire: The websocket text frame carrying ``data``.
    """

    data: bytes
    as_of_ms: float | None = None
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", _text_frame_header(len(self.data)) + self.data)


class BadRequest(Exception):
    """A client message that is not a valid request; answered with ``bad_request``.

    Attributes:
        kind: The violation it is counted as (``bad_request``, ``too_deep`` for JSON nested
            past the decoder's recursion limit, ``bad_fields`` for a malformed ``fields``).
        code: The error code answered (``bad_request``; ``bad_fields`` for ``fields``).
    """

    def __init__(
        self,
        message: str,
        request_id: int | None = None,
        *,
        kind: str = "bad_request",
        code: ErrorCode = ErrorCode.BAD_REQUEST,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.kind = kind
        self.code = code


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded client message.

    Attributes:
        op: ``auth``, ``subscribe``, ``unsubscribe``, ``get`` or ``ping``.
        id: Optional request id echoed in the reply.
        token: ``auth`` with a signed token.
        key: ``auth`` with the static development key.
        feeds: ``subscribe``/``unsubscribe``.
        feed: ``get``.
        snapshot: ``subscribe``: send the snapshot first (default true).
        limit: Snapshot size (list elements / pattern matches), or ``None`` for the default.
        deltas: ``subscribe``: receive boards as deltas after their snapshot (default false).
        fields: ``subscribe``/``get`` of a board: the row fields wanted (every row keeps only
            these and its key); ``None``: whole rows.
    """

    op: str
    id: int | None = None
    token: str | None = None
    key: str | None = None
    feeds: tuple[str, ...] = ()
    feed: str | None = None
    snapshot: bool = True
    limit: int | None = None
    deltas: bool = False
    fields: frozenset[str] | None = None


_OPS: Final = frozenset({"auth", "subscribe", "unsubscribe", "get", "ping"})
_DECODER: Final = msgspec.json.Decoder()
_ENCODER: Final = msgspec.json.Encoder()
_MAX_FEEDS_PER_REQUEST: Final = 1_000
#: Most names a ``fields`` list may hold, and the longest name.
MAX_FIELDS: Final = 64
MAX_FIELD_NAME: Final = 64


def _int_or_none(value: object, name: str, request_id: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be an integer", request_id)
    return value


def _string(value: object, name: str, request_id: int | None) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{name}' must be a non-empty string", request_id)
    return value


def _feeds(value: object, request_id: int | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadRequest("'feeds' must be a non-empty list of feed names", request_id)
    if len(value) > _MAX_FEEDS_PER_REQUEST:
        raise BadRequest(f"at most {_MAX_FEEDS_PER_REQUEST} feeds per request", request_id)
    names = tuple(_string(item, "feeds[]", request_id) for item in value)
    return tuple(dict.fromkeys(names))  # de-duplicated, order kept


def _fields(value: object, request_id: int | None) -> frozenset[str] | None:
    if value is None:
        return None

    def refuse(message: str) -> BadRequest:
        return BadRequest(message, request_id, kind="bad_fields", code=ErrorCode.BAD_FIELDS)

    if not isinstance(value, list):
        raise refuse("'fields' must be a list of row field names")
    if len(value) > MAX_FIELDS:
        raise refuse(f"at most {MAX_FIELDS} names in 'fields'")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > MAX_FIELD_NAME:
            raise refuse(f"'fields' names are strings of 1 to {MAX_FIELD_NAME} characters")
    return frozenset(value)


def _json_of(raw: str | bytes) -> Any:
    """The message's JSON value.

    Raises:
        BadRequest: not JSON, not UTF-8 (a binary frame), or nested too deep.
    """
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("the message is not valid JSON") from None
    except UnicodeDecodeError:  # a binary frame whose strings hold bytes that are not UTF-8
        raise BadRequest("the message is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest("the message is nested too deep", kind="too_deep") from None


def decode_request(raw: str | bytes) -> Request:
    """Parse and validate one client message.

    Raises:
        BadRequest: for anything that is not a well-formed request (with the id when readable).
    """
    message = _json_of(raw)
    if not isinstance(message, dict):
        raise BadRequest("a message is a JSON object with an 'op'")
    raw_id = message.get("id")
    request_id = _int_or_none(raw_id, "id", None)
    op = message.get("op")
    if not isinstance(op, str) or op not in _OPS:  # a list or an object is not hashable
        raise BadRequest(f"unknown op {op!r}; expected one of {sorted(_OPS)}", request_id)
    if op == "auth":
        token, key = message.get("token"), message.get("key")
        if token is None and key is None:
            raise BadRequest("'auth' needs a 'token'", request_id)
        return Request(
            op=op,
            id=request_id,
            token=None if token is None else _string(token, "token", request_id),
            key=None if key is None else _string(key, "key", request_id),
        )
    limit = _int_or_none(message.get("limit"), "limit", request_id)
    if limit is not None and limit < 1:
        raise BadRequest("'limit' must be at least 1", request_id)
    if op in {"subscribe", "unsubscribe"}:
        snapshot = message.get("snapshot", True)
        if not isinstance(snapshot, bool):
            raise BadRequest("'snapshot' must be true or false", request_id)
        deltas = message.get("deltas", False)
        if not isinstance(deltas, bool):
            raise BadRequest("'deltas' must be true or false", request_id)
        feeds = _feeds(message.get("feeds"), request_id)
        fields = _fields(message.get("fields"), request_id) if op == "subscribe" else None
        return Request(
            op=op,
            id=request_id,
            feeds=feeds,
            snapshot=snapshot,
            limit=limit,
            deltas=deltas,
            fields=fields,
        )
    if op == "get":
        feed = _string(message.get("feed"), "feed", request_id)
        fields = _fields(message.get("fields"), request_id)
        return Request(op=op, id=request_id, feed=feed, limit=limit, fields=fields)
    return Request(op=op, id=request_id)


def encode_message(op: str, request_id: int | None = None, **fields: object) -> bytes:
    """Encode a control message (``auth_ok``, ``subscribed``, ``error``, ``pong`` ...)."""
    body: dict[str, object] = {"op": op}
    if request_id is not None or op == "error":
        body["id"] = request_id
    body.update(fields)
    return _ENCODER.encode(body)


def _seq_field(seq: int | None) -> bytes:
    return b'"seq":' + (b"null" if seq is None else str(seq).encode()) + b","


def update_frame(
    feed: str, payload: bytes, as_of_ms: float | None = None, seq: int | None = None
) -> Frame:
    """``{"op":"update","feed":...,"data":<payload>}`` built from the published bytes.

    A board feed's update also carries its publication number ``seq`` (see ``delta_frame``).
    """
    head = b'{"op":"update",' + (b"" if seq is None else _seq_field(seq))
    return Frame(head + b'"feed":' + _ENCODER.encode(feed) + b',"data":' + payload + b"}", as_of_ms)


def delta_frame(feed: str, seq: int, delta: bytes, as_of_ms: float | None = None) -> Frame:
    """``{"op":"delta","seq":n,"base":n-1,"feed":...,"data":<delta>}`` (``mdp_wds.deltas``)."""
    head = b'{"op":"delta",' + _seq_field(seq) + b'"base":' + str(seq - 1).encode() + b","
    return Frame(head + b'"feed":' + _ENCODER.encode(feed) + b',"data":' + delta + b"}", as_of_ms)


def snapshot_frame(
    feed: str,
    data: bytes,
    request_id: int | None = None,
    *,
    board: bool = False,
    seq: int | None = None,
) -> Frame:
    """``{"op":"snapshot","feed":...,"data":<data>}`` (``id`` when answering a ``get``).

    For a ``board`` followed with deltas it carries ``seq``, the publication the snapshot is
    (``null``: unknown; the next update then comes whole).
    """
    head = b'{"op":"snapshot",'
    if request_id is not None:
        head += b'"id":' + str(request_id).encode() + b","
    if board:
        head += _seq_field(seq)
    return Frame(head + b'"feed":' + _ENCODER.encode(feed) + b',"data":' + data + b"}")


def list_snapshot_data(elements: Sequence[bytes]) -> bytes:
    """A JSON array of already-encoded elements (newest first, as stored)."""
    return b"[" + b",".join(elements) + b"]"
