"""The RESP2 reply parser of the WDS pub/sub link, fed bytes without a server."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_wds.resp import (
    MAX_BULK,
    MAX_DEPTH,
    MAX_LINE,
    ErrorReply,
    RespParser,
    RespProtocolError,
    RespValue,
)

_line_text = st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)
_leaves = st.one_of(
    st.binary(max_size=40),  # bulk strings (any bytes, CRLF included)
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.builds(ErrorReply, _line_text.map(lambda b: b.decode("latin-1")).filter(str.isascii)),
    st.just(None),
    _line_text.map(lambda b: ("simple", b)),
)
VALUES = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


def encode(value: object) -> bytes:
    """A reference encoder (``("simple", b)`` is a simple string, ``None`` a null bulk)."""
    if isinstance(value, tuple):
        return b"+" + bytes(value[1]) + b"\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, ErrorReply):
        return b"-" + value.message.encode() + b"\r\n"
    if value is None:
        return b"$-1\r\n"
    assert isinstance(value, list)
    return b"*%d\r\n" % len(value) + b"".join(encode(item) for item in value)


def parsed(value: object) -> RespValue:
    """What the parser returns for a generated value."""
    if isinstance(value, tuple):
        return bytes(value[1])
    if isinstance(value, list):
        return [parsed(item) for item in value]
    assert value is None or isinstance(value, bytes | int | ErrorReply)
    return value


def depth(value: object) -> int:
    return 1 + max((depth(v) for v in value), default=0) if isinstance(value, list) else 0


@given(st.lists(VALUES, max_size=6), st.data())
def test_any_chunking_of_a_valid_stream_gives_the_same_replies(
    values: list[object], data: st.DataObject
) -> None:
    values = [v for v in values if depth(v) <= MAX_DEPTH]
    stream = b"".join(encode(v) for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = RespParser()
    replies: list[RespValue] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        replies += parser.feed(stream[start:end])
    assert replies == [parsed(v) for v in values]
    assert parser.pending == 0


@given(VALUES)
def test_one_byte_at_a_time_completes_each_reply_on_its_last_byte(value: object) -> None:
    stream = encode(value)
    if depth(value) > MAX_DEPTH:
        return
    parser = RespParser()
    for index, byte in enumerate(stream):
        replies = parser.feed(bytes((byte,)))
        if index < len(stream) - 1:
            assert replies == []
            assert parser.pending == index + 1
        else:
            assert replies == [parsed(value)]
            assert parser.pending == 0


def test_pub_sub_replies() -> None:
    parser = RespParser()
    stream = (
        b"*3\r\n$9\r\nsubscribe\r\n$10\r\nquote:AAPL\r\n:1\r\n"
        b"*4\r\n$8\r\npmessage\r\n$7\r\nquote:*\r\n$10\r\nquote:AAPL\r\n$2\r\n{}\r\n"
        b"+PONG\r\n*-1\r\n*0\r\n$0\r\n\r\n-ERR wrong\r\n"
    )
    assert parser.feed(stream) == [
        [b"subscribe", b"quote:AAPL", 1],
        [b"pmessage", b"quote:*", b"quote:AAPL", b"{}"],
        b"PONG",
        None,
        [],
        b"",
        ErrorReply("ERR wrong"),
    ]


def test_an_error_reply_that_is_not_utf8_is_still_read() -> None:
    assert RespParser().feed(b"-ERR \xff\r\n:1\r\n") == [ErrorReply("ERR \ufffd"), 1]


def test_a_bulk_string_may_hold_crlf_and_any_byte() -> None:
    assert RespParser().feed(b"$6\r\na\r\nb\x00\xff\r\n") == [b"a\r\nb\x00\xff"]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"?3\r\n", "unexpected RESP type b'?'"),
        (b"\r\n", "unexpected RESP type b'\\r'"),
        (b"$x\r\n", "a RESP bulk length is not an integer: b'x'"),
        (b"$\r\n", "a RESP bulk length is not an integer: b''"),
        (b"$1 \r\n", "a RESP bulk length is not an integer: b'1 '"),
        (b"$-2\r\n", "a RESP bulk length of -2 is neither null (-1) nor a size"),
        (b"*--1\r\n", "a RESP array length is not an integer: b'--1'"),
        (b"*-5\r\n", "a RESP array length of -5 is neither null (-1) nor a size"),
        (b":1.5\r\n", "a RESP integer is not an integer: b'1.5'"),
        (b":+1\r\n", "a RESP integer is not an integer: b'+1'"),
        (b"$2\r\nabcd\r\n", "a RESP bulk string does not end with CRLF where its length says"),
        (b"$2\r\nab\n\r", "a RESP bulk string does not end with CRLF where its length says"),
        (b"*1\r\n?\r\n", "unexpected RESP type b'?'"),
        (
            b"$%d\r\n" % (MAX_BULK + 1),
            f"a RESP bulk string of {MAX_BULK + 1} bytes exceeds {MAX_BULK}",
        ),
        (b"*1\r\n" * (MAX_DEPTH + 1), f"RESP arrays nested deeper than {MAX_DEPTH}"),
        (b"+" + b"x" * (MAX_LINE + 2), f"a RESP line is longer than {MAX_LINE} bytes"),
        (b"+" + b"x" * (MAX_LINE + 1) + b"\r\n", f"a RESP line is longer than {MAX_LINE} bytes"),
        (b"+" + b"x" * (MAX_LINE + 9) + b"\r\n", f"a RESP line is longer than {MAX_LINE} bytes"),
        (b":" + b"7" * 40 + b"x\r\n", "a RESP integer is not an integer: b'" + "7" * 32 + "'"),
    ],
)
def test_malformed_input_is_a_clear_error(stream: bytes, message: str) -> None:
    with pytest.raises(RespProtocolError, match="^" + re.escape(message) + "$"):
        RespParser().feed(stream)


def test_limits_are_inclusive() -> None:
    nested = b"*1\r\n" * MAX_DEPTH + b":7\r\n"
    value: RespValue = 7
    for _ in range(MAX_DEPTH):
        value = [value]
    assert RespParser().feed(nested) == [value]
    line = b"x" * MAX_LINE
    assert RespParser().feed(b"+" + line + b"\r\n") == [line]
    parser = RespParser()
    assert parser.feed(b"+" + line + b"\r") == []  # a line of exactly the limit may still end
    assert parser.feed(b"\n") == [line]
    parser = RespParser()
    assert parser.feed(b"$%d\r\n" % MAX_BULK) == []  # the largest bulk waits for its bytes


def test_a_line_split_between_cr_and_lf_waits_for_the_lf() -> None:
    parser = RespParser()
    assert parser.feed(b":12\r") == []
    assert parser.feed(b"\n") == [12]


def test_the_malformed_reply_is_found_after_the_good_ones() -> None:
    parser = RespParser()
    with pytest.raises(RespProtocolError):
        parser.feed(b":1\r\n:2\r\n%3\r\n")
