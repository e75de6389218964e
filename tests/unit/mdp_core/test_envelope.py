"""The queue envelope: versioned, timestamped, events preserved byte for byte."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_core import (
    ENVELOPE_VERSION,
    EnvelopeError,
    OutOfRange,
    Trade,
    UnsupportedEnvelopeVersion,
    decode_event_batch,
    decode_header,
    decode_news_batch,
    encode_envelope,
    split_frame,
)
from mdp_testing.strategies import wire_trade

ARTICLE = {
    "link": "https://news.example/a1",
    "title": "Acme jumps",
    "publishDate": "2026-11-23T14:30:00Z",
    "source": "news.example",
    "language": "en",
    "summary": "Acme rose after earnings.",
    "sentiment": "positive",
    "confidence": 0.9,
    "companies": [
        {
            "companyId": 1,
            "name": "Acme Corp",
            "ticker": "ACME",
            "primaryListing": {"ticker": "ACME", "exchangeCode": "XNAS"},
        }
    ],
    "countries": ["US"],
}


def _raws(events: list[dict[str, Any]]) -> list[msgspec.Raw]:
    return [msgspec.Raw(json.dumps(e).encode()) for e in events]


@given(st.lists(wire_trade(), max_size=30), st.integers(min_value=0, max_value=2**62))
def test_events_round_trip_through_the_envelope(
    events: list[dict[str, Any]], received: int
) -> None:
    body = encode_envelope(
        kind="T", source="sim", batch="mdl-1:7", received_ns=received, events=_raws(events)
    )

    header = decode_header(body)
    batch = decode_event_batch(body)

    assert (header.v, header.kind, header.source, header.batch, header.received_ns) == (
        ENVELOPE_VERSION,
        "T",
        "sim",
        "mdl-1:7",
        received,
    )
    assert [json.loads(bytes(raw)) for raw in header.events] == events
    assert batch.errors == []
    assert all(isinstance(e, Trade) for e in batch.events)
    assert [e.trade_id for e in batch.events] == [e["i"] for e in events]  # type: ignore[union-attr]


def test_the_listener_path_copies_events_without_reencoding() -> None:
    frame = (
        b'[{"ev":"T","sym":"A","x":1,"i":"9","p":1.25,"s":5,"t":10},  '
        b'{"ev":"Q","sym":"A","bp":1,"bs":1,"ap":2,"as":1,"t":11}]'
    )
    split = split_frame(frame)
    body = encode_envelope(
        kind="T", source="massive", batch="b", received_ns=1, events=split.by_type["T"]
    )
    assert b'{"ev":"T","sym":"A","x":1,"i":"9","p":1.25,"s":5,"t":10}' in body


def test_a_bad_event_inside_an_envelope_is_skipped_with_a_typed_error() -> None:
    good = {"ev": "T", "sym": "A", "x": 1, "i": "1", "p": 2.5, "s": 5, "t": 10}
    body = encode_envelope(
        kind="T",
        source="sim",
        batch="b",
        received_ns=5,
        events=_raws([good, {**good, "s": -1}, good]),
    )
    batch = decode_event_batch(body)
    assert len(batch.events) == 2
    assert [(type(e), e.index) for e in batch.errors] == [(OutOfRange, 1)]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"v":1}', b'{"v":1,"kind":"T"}'])
def test_something_that_is_not_an_envelope_is_an_envelope_error(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_event_batch(body)
    with pytest.raises(EnvelopeError):
        decode_header(body)


def test_a_newer_envelope_version_is_refused_by_name() -> None:
    body = json.dumps(
        {
            "v": ENVELOPE_VERSION + 1,
            "kind": "T",
            "source": "s",
            "batch": "b",
            "received_ns": 1,
            "events": [],
            "new_field": True,
        }
    ).encode()
    with pytest.raises(UnsupportedEnvelopeVersion, match="version 2"):
        decode_event_batch(body)
    with pytest.raises(UnsupportedEnvelopeVersion):
        decode_header(body)


def test_news_batches_decode_articles_and_skip_bad_ones() -> None:
    bad = {k: v for k, v in ARTICLE.items() if k != "title"}
    body = encode_envelope(
        kind="news", source="finlight", batch="fdl:1", received_ns=9, events=_raws([ARTICLE, bad])
    )
    news = decode_news_batch(body)
    assert [a.link for a in news.articles] == ["https://news.example/a1"]
    assert news.articles[0].companies[0].primary_listing is not None
    assert news.articles[0].companies[0].primary_listing.exchange_code == "XNAS"
    assert [e.kind for e in news.errors] == ["missing_field"]
    clean = decode_news_batch(
        encode_envelope(kind="news", source="f", batch="b", received_ns=1, events=_raws([ARTICLE]))
    )
    assert clean.errors == []
    assert clean.articles[0].publish_date.year == 2026
