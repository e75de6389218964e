"""The queue envelope: versioned, timestamped, events preserved byte for byte."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_core import (
    ENVELOPE_VERSION,
    EnvelopeError,
    OutOfRange,
    Status,
    Trade,
    UnsupportedEnvelopeVersion,
    decode_event_batch,
    decode_header,
    decode_news_batch,
    encode_envelope,
    split_frame,
)
from mdp_core.errors import EnvelopeTooDeep
from mdp_core.wire import decode_element
from mdp_testing.strategies import any_wire_event, wire_status, wire_trade

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


# --------------------------------------------------------------------------------------------
# Pinned by mutation testing (issue 21): status filtering on both decode paths, the version
# bounds on every entry point, and the header fields carried through each path.

_BAD_TRADE = {"ev": "T", "sym": "A", "x": 1, "i": "1", "p": 2.5, "s": -1, "t": 10}


def _body(events: Sequence[object], *, v: int = ENVELOPE_VERSION, kind: str = "T") -> bytes:
    return json.dumps(
        {
            "v": v,
            "kind": kind,
            "source": "src-x",
            "batch": "batch-y",
            "received_ns": 4242,
            "events": events,
        }
    ).encode()


@st.composite
def _mixed_batch(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int]]:
    """Events, statuses and (maybe) bad events in any order; returns them and the bad indexes."""
    items = draw(
        st.lists(
            st.one_of(
                any_wire_event.map(lambda e: ("ok", e)),
                wire_status().map(lambda e: ("status", e)),
                st.just(("bad", _BAD_TRADE)),
            ),
            max_size=12,
        )
    )
    return [e for _, e in items], [i for i, (tag, _) in enumerate(items) if tag == "bad"]


@given(_mixed_batch())
def test_decoding_keeps_every_market_event_in_order_and_only_drops_statuses(
    batch_and_bad: tuple[list[dict[str, Any]], list[int]],
) -> None:
    # Reference: the non-status, non-bad elements, in order, decoded one by one.
    events, bad = batch_and_bad
    expected = [
        decode_element(json.dumps(e).encode())
        for i, e in enumerate(events)
        if e["ev"] != "status" and i not in bad
    ]
    batch = decode_event_batch(_body(events))
    assert batch.events == expected
    assert not any(isinstance(e, Status) for e in batch.events)
    assert [e.index for e in batch.errors] == bad
    assert (batch.kind, batch.source, batch.batch, batch.received_ns) == (
        "T",
        "src-x",
        "batch-y",
        4242,
    )


@pytest.mark.parametrize("with_bad_event", [False, True], ids=["fast-path", "slow-path"])
def test_a_status_between_events_is_dropped_on_both_paths(with_bad_event: bool) -> None:
    trade = {"ev": "T", "sym": "A", "x": 1, "i": "7", "p": 2.5, "s": 5, "t": 10}
    status = {"ev": "status", "status": "connected", "message": "hi"}
    events = [status, trade, status, *([_BAD_TRADE] if with_bad_event else []), status]
    batch = decode_event_batch(_body(events))
    assert [type(e) for e in batch.events] == [Trade]
    assert len(batch.errors) == (1 if with_bad_event else 0)


@pytest.mark.parametrize("version", [-1, 0, ENVELOPE_VERSION + 1, 99])
@pytest.mark.parametrize("with_bad_event", [False, True], ids=["fast-path", "slow-path"])
def test_versions_outside_one_to_current_are_refused_on_every_path(
    version: int, with_bad_event: bool
) -> None:
    events = [_BAD_TRADE] if with_bad_event else []
    with pytest.raises(UnsupportedEnvelopeVersion, match=f"version {version} is not supported"):
        decode_event_batch(_body(events, v=version))
    with pytest.raises(UnsupportedEnvelopeVersion, match=f"version {version} "):
        decode_header(_body(events, v=version))
    articles = [{"link": 5}] if with_bad_event else []
    with pytest.raises(UnsupportedEnvelopeVersion, match=f"version {version} "):
        decode_news_batch(_body(articles, v=version, kind="news"))


@pytest.mark.parametrize("with_bad_event", [False, True], ids=["fast-path", "slow-path"])
def test_versions_one_to_current_are_accepted_on_every_path(with_bad_event: bool) -> None:
    for version in range(1, ENVELOPE_VERSION + 1):
        events = [_BAD_TRADE] if with_bad_event else []
        decoded = decode_event_batch(_body(events, v=version))
        assert [(e.kind, e.index) for e in decoded.errors] == (
            [("out_of_range", 0)] if with_bad_event else []
        )
        header = decode_header(_body(events, v=version))
        assert (header.v, header.kind, header.source, header.batch, header.received_ns) == (
            version,
            "T",
            "src-x",
            "batch-y",
            4242,
        )
        news = decode_news_batch(_body([ARTICLE], v=version, kind="news"))
        assert (news.source, news.batch, news.received_ns) == ("src-x", "batch-y", 4242)


def test_a_news_batch_with_a_bad_article_keeps_the_header_and_the_index() -> None:
    bad = {k: v for k, v in ARTICLE.items() if k != "title"}
    news = decode_news_batch(_body([bad, ARTICLE, bad], kind="news"))
    assert (news.source, news.batch, news.received_ns) == ("src-x", "batch-y", 4242)
    assert [a.link for a in news.articles] == [ARTICLE["link"]]
    assert [(e.kind, e.index) for e in news.errors] == [("missing_field", 0), ("missing_field", 2)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"v":1,"kind":"T"}', "not an envelope"),
        (b"[1, 2]", "not an envelope"),
    ],
)
def test_envelope_errors_say_what_is_wrong(body: bytes, message: str) -> None:
    for decode in (decode_event_batch, decode_header, decode_news_batch):
        with pytest.raises(EnvelopeError, match=message) as caught:
            decode(body)
        assert not isinstance(caught.value, UnsupportedEnvelopeVersion)


def test_an_envelope_nested_too_deep_is_refused_as_such() -> None:
    deep = (
        b'{"v":1,"kind":"T","source":"s","batch":"b","received_ns":1,"events":['
        + (b"[" * 100_000)
        + b"]" * 100_000
        + b"]}"
    )
    for decode in (decode_event_batch, decode_header, decode_news_batch):
        with pytest.raises(EnvelopeTooDeep):
            decode(deep)
