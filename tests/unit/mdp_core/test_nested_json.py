"""JSON nested past the recursion limit is malformed input at every decoder, never a crash.

``[[[[...`` a few thousand deep is far under every size limit, yet both msgspec and the standard
library raise ``RecursionError`` on it; each boundary must turn that into its own counted error.
"""

from __future__ import annotations

import msgspec
import pytest

from mdp_core.envelope import decode_event_batch, decode_header, decode_news_batch, encode_envelope
from mdp_core.errors import EnvelopeTooDeep, InvalidJson, NestedTooDeep
from mdp_core.news import decode_article
from mdp_core.wire import decode_event, decode_frame, split_frame
from mdp_testing.conformance import trade

DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"ev":"T","sym":"A","x":' + DEEP + b"}"
TRADE = msgspec.json.encode(trade("AAPL", 1_767_000_000_000, 1.5, 10))


def test_a_nested_frame_is_one_too_deep_error_when_split() -> None:
    split = split_frame(DEEP)
    assert split.by_type == {}
    assert [e.kind for e in split.errors] == ["too_deep"]
    assert isinstance(split.errors[0], InvalidJson)


def test_a_nested_element_beside_good_ones_is_refused_without_raising() -> None:
    frame = b"[" + TRADE + b"," + DEEP_OBJECT + b"]"
    split = split_frame(frame)
    assert [e.kind for e in split.errors] == ["too_deep"]
    decoded = decode_frame(frame)
    assert [e.kind for e in decoded.errors] == ["too_deep"]
    # the frame that follows on the same stream is untouched
    assert decode_frame(b"[" + TRADE + b"]").events[0].symbol == "AAPL"


def test_decode_frame_and_event_say_too_deep() -> None:
    assert [e.kind for e in decode_frame(DEEP).errors] == ["too_deep"]
    with pytest.raises(NestedTooDeep):
        decode_event(DEEP_OBJECT)


def test_a_nested_article_is_too_deep() -> None:
    with pytest.raises(NestedTooDeep) as caught:
        decode_article(b'{"extra":' + DEEP + b"}")
    assert caught.value.kind == "too_deep"


def envelope_around(events: list[bytes]) -> bytes:
    return encode_envelope(
        kind="T",
        source="t",
        batch="b1",
        received_ns=1,
        events=[msgspec.Raw(e) for e in events],
    )


@pytest.mark.parametrize("decode", [decode_header, decode_event_batch, decode_news_batch])
def test_a_nested_envelope_is_an_envelope_error(decode: object) -> None:
    body = envelope_around([TRADE, DEEP_OBJECT])
    with pytest.raises(EnvelopeTooDeep) as caught:
        decode(body)  # type: ignore[operator]  # each decoder takes bytes
    assert caught.value.kind == "envelope_too_deep"
