"""A RESP2 reply parser fed bytes (sans-I/O): bytes in, complete replies out.

The pub/sub link (:mod:`mdp_wds.link`) reads whatever the socket has and feeds it here, so the
parsing is tested without a server: any chunking of a valid stream gives the same replies, and
malformed input raises :class:`RespProtocolError` naming what was wrong instead of hanging or
misreading the rest of the stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["ErrorReply", "RespParser", "RespProtocolError", "RespValue"]


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A ``-ERR ...`` reply (the link treats it as a failure of the connection)."""

    message: str


RespValue = bytes | int | ErrorReply | list["RespValue"] | None

MAX_LINE: Final = 64 * 1024
"""Longest line body accepted (a header, a simple string or an error, without type and CRLF)."""
MAX_BULK: Final = 512 * 1024 * 1024
"""Redis's own bulk-string limit (``proto-max-bulk-len``)."""
MAX_DEPTH: Final = 8
"""Deepest array nesting accepted; pub/sub replies are one level deep."""


class RespProtocolError(ValueError):
    """The bytes are not a RESP2 reply stream."""


class _Incomplete(Exception):
    """More bytes are needed to finish the current reply."""


_INCOMPLETE: Final = _Incomplete()
_INTEGER: Final = re.compile(rb"-?[0-9]+")
_TYPES: Final = frozenset(b"$*:+-")


class RespParser:
    """Incremental parser of server replies.

    Feed it bytes as they arrive; it returns each reply once its last byte is in. After a
    :class:`RespProtocolError` the stream is unusable (the connection must be dropped).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete reply."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RespValue]:
        """Add received bytes; return every reply they complete, in order.

        Raises:
            RespProtocolError: when the stream is malformed.
        """
        buffer = self._buffer
        buffer += data
        replies: list[RespValue] = []
        start = 0
        try:
            while start < len(buffer):
                value, start = self._value(buffer, start, 0)
                replies.append(value)
        except _Incomplete:
            pass
        del buffer[:start]
        return replies

    def _line(self, buffer: bytearray, start: int) -> tuple[bytes, int]:
        """The body of the line starting at ``start`` (after its type byte) and where it ends."""
        body = start + 1
        end = buffer.find(b"\r\n", body, body + MAX_LINE + 2)
        if end < 0:
            if len(buffer) - body >= MAX_LINE + 2:
                msg = f"a RESP line is longer than {MAX_LINE} bytes"
                raise RespProtocolError(msg)
            raise _INCOMPLETE
        return bytes(buffer[body:end]), end + 2

    def _integer(self, body: bytes, what: str) -> int:
        if _INTEGER.fullmatch(body) is None:
            msg = f"a RESP {what} is not an integer: {body[:32]!r}"
            raise RespProtocolError(msg)
        return int(body)

    def _length(self, body: bytes, what: str) -> int:
        """A bulk or array length: ``-1`` (null) or at least 0."""
        size = self._integer(body, what)
        if size < -1:
            msg = f"a RESP {what} of {size} is neither null (-1) nor a size"
            raise RespProtocolError(msg)
        return size

    def _value(self, buffer: bytearray, start: int, depth: int) -> tuple[RespValue, int]:
        if start >= len(buffer):
            raise _INCOMPLETE
        kind = buffer[start]
        if kind not in _TYPES:
            msg = f"unexpected RESP type {bytes((kind,))!r}"
            raise RespProtocolError(msg)
        body, after = self._line(buffer, start)
        if kind == 0x24:  # $ bulk string
            return self._bulk(buffer, self._length(body, "bulk length"), after)
        if kind == 0x2A:  # * array
            return self._array(buffer, self._length(body, "array length"), after, depth)
        if kind == 0x3A:  # : integer
            return self._integer(body, "integer"), after
        if kind == 0x2B:  # + simple string
            return body, after
        return ErrorReply(body.decode(errors="replace")), after  # - error

    def _bulk(self, buffer: bytearray, size: int, start: int) -> tuple[RespValue, int]:
        if size < 0:
            return None, start
        if size > MAX_BULK:
            msg = f"a RESP bulk string of {size} bytes exceeds {MAX_BULK}"
            raise RespProtocolError(msg)
        end = start + size
        if len(buffer) < end + 2:
            raise _INCOMPLETE
        if buffer[end : end + 2] != b"\r\n":
            msg = "a RESP bulk string does not end with CRLF where its length says"
            raise RespProtocolError(msg)
        return bytes(buffer[start:end]), end + 2

    def _array(
        self, buffer: bytearray, count: int, start: int, depth: int
    ) -> tuple[RespValue, int]:
        if count < 0:
            return None, start
        if depth >= MAX_DEPTH:
            msg = f"RESP arrays nested deeper than {MAX_DEPTH}"
            raise RespProtocolError(msg)
        items: list[RespValue] = []
        for _ in range(count):
            item, start = self._value(buffer, start, depth + 1)
            items.append(item)
        return items, start
