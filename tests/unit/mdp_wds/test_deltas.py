"""Board deltas: the document of ``base`` plus the delta is the next document, at every step."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_wds.deltas import BoardTracker, apply_delta, project, project_payload

SYMBOLS = ["AA", "BB", "CC", "DD", "EE", "FF"]

rows = st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=6).flatmap(
    lambda names: st.tuples(
        *(
            st.fixed_dictionaries(
                {"symbol": st.just(name), "price": st.sampled_from([1.0, 1.5, 2.0])},
                optional={"rvol_tod": st.none() | st.just(1.25)},
            )
            for name in names
        )
    )
)
boards = st.fixed_dictionaries(
    {"board": st.just("top_volume"), "as_of_ms": st.integers(0, 3), "rows": rows.map(list)},
    optional={"status": st.sampled_from(["pre_open", "open"]), "session": st.just("regular")},
)


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@given(st.lists(boards, min_size=1, max_size=8))
def test_snapshot_plus_deltas_equals_every_board(documents: list[dict[str, Any]]) -> None:
    tracker = BoardTracker("symbol")
    assert tracker.advance(encode(documents[0])) is None  # the first goes whole
    shown = documents[0]
    for seq, document in enumerate(documents[1:], start=2):
        delta = tracker.advance(encode(document))
        assert delta is not None
        assert tracker.seq == seq
        shown = apply_delta(shown, json.loads(delta), "symbol")
        assert shown == document


def test_an_unchanged_board_is_a_tiny_delta_and_a_changed_row_goes_alone() -> None:
    tracker = BoardTracker("symbol")
    rows: list[dict[str, Any]] = [{"symbol": "AA", "price": 1.0}, {"symbol": "BB", "p": 2}]
    board: dict[str, Any] = {"as_of_ms": 1, "rows": rows}
    tracker.advance(encode(board))
    assert tracker.advance(encode(board)) == b'{"rows":{}}'
    rows[1] = {"symbol": "BB", "p": 3}
    board["as_of_ms"] = 2
    assert json.loads(tracker.advance(encode(board)) or b"") == {
        "set": {"as_of_ms": 2},
        "rows": {},
        "patch": {"BB": {"p": 3}},  # only the field that changed
    }
    rows[0] = {"symbol": "AA", "extra": None}
    rows.append({"symbol": "CC"})
    assert json.loads(tracker.advance(encode(board)) or b"") == {
        "order": ["AA", "BB", "CC"],
        "rows": {"CC": {"symbol": "CC"}},  # new on the board: whole
        "patch": {"AA": {"extra": None}},
        "unset": {"AA": ["price"]},
    }
    rows.pop()
    del board["as_of_ms"]
    rows.reverse()
    assert json.loads(tracker.advance(encode(board)) or b"") == {
        "drop": ["as_of_ms"],
        "order": ["BB", "AA"],
        "rows": {},
    }


def test_documents_without_keyed_rows_go_whole() -> None:
    tracker = BoardTracker("symbol")
    good = encode({"rows": [{"symbol": "AA"}]})
    for bad in (
        b"[1]",
        b"{not json",
        b'{"rows":{}}',
        b'{"rows":[1]}',
        b'{"rows":[{"price":1}]}',
        b'{"rows":[{"symbol":"AA"},{"symbol":"AA"}]}',
        b'{"rows":[{"symbol":7}]}',
    ):
        tracker.advance(good)
        assert tracker.advance(bad) is None, bad  # nothing to diff against the good one
        assert tracker.advance(good) is None  # nor the good one against it
        assert tracker.payload == good


# --- projections ------------------------------------------------------------------------------

FIELDS = ["price", "rvol_tod", "end_ms", "nowhere"]
wide_rows = st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=6).flatmap(
    lambda names: st.tuples(
        *(
            st.fixed_dictionaries(
                {"symbol": st.just(name), "price": st.sampled_from([1.0, 1.5])},
                optional={
                    "rvol_tod": st.none() | st.just(1.25),
                    "vwap": st.sampled_from([1.1, 1.2]),
                    "end_ms": st.integers(0, 2),
                    "regular": st.just({"open": 1.0, "high": 2.0}),
                },
            )
            for name in names
        )
    ).map(list)
)
wide_boards = st.fixed_dictionaries(
    {"board": st.just("top_volume"), "as_of_ms": st.integers(0, 3), "rows": wide_rows},
    optional={"status": st.sampled_from(["pre_open", "open"])},
)
field_sets = st.frozensets(st.sampled_from([*FIELDS, "symbol", "vwap", "regular"]), max_size=5)


@given(st.lists(wide_boards, min_size=1, max_size=8), field_sets)
def test_projected_deltas_on_the_projected_base_give_the_projected_boards(
    documents: list[dict[str, Any]], fields: frozenset[str]
) -> None:
    tracker = BoardTracker("symbol", fields)
    assert tracker.advance(encode(documents[0])) is None
    assert tracker.payload == encode(documents[0])  # as published: what snapshots match
    shown = json.loads(tracker.document or b"")
    assert shown == project(documents[0], "symbol", fields)
    for document in documents[1:]:
        delta = tracker.advance(encode(document))
        assert delta is not None
        shown = apply_delta(shown, json.loads(delta), "symbol")
        expected = project(document, "symbol", fields)
        assert shown == expected
        assert json.loads(tracker.document or b"") == expected
        for row in shown["rows"]:  # the key always, the named fields present, nothing else
            assert row["symbol"] in SYMBOLS
            assert set(row) <= fields | {"symbol"}
        assert {f: v for f, v in shown.items() if f != "rows"} == {
            f: v for f, v in document.items() if f != "rows"
        }


def test_a_projection_keeps_the_key_and_the_named_fields_in_the_row_s_order() -> None:
    document: dict[str, Any] = {
        "as_of_ms": 1,
        "rows": [
            {"vwap": 1.1, "price": 2.0, "symbol": "AA", "end_ms": 5},
            {"symbol": "BB"},
            "not a row",
        ],
    }
    projected = project(document, "symbol", frozenset({"end_ms", "price", "unknown"}))
    assert projected == {
        "as_of_ms": 1,
        "rows": [{"price": 2.0, "symbol": "AA", "end_ms": 5}, {"symbol": "BB"}, "not a row"],
    }
    assert list(projected["rows"][0]) == ["price", "symbol", "end_ms"]
    assert document["rows"][0] == {"vwap": 1.1, "price": 2.0, "symbol": "AA", "end_ms": 5}
    assert project(document, "symbol", frozenset())["rows"][:2] == [
        {"symbol": "AA"},
        {"symbol": "BB"},
    ]


@pytest.mark.parametrize(
    "document", [None, 3, [1, 2], {"rows": "x"}, {"no_rows": [{"symbol": "AA", "p": 1}]}]
)
def test_a_document_without_a_rows_list_is_not_projected(document: Any) -> None:
    assert project(document, "symbol", frozenset({"price"})) == document


def test_a_projected_payload_is_reencoded_and_a_bad_one_relayed_as_it_is() -> None:
    payload = b'{"rows": [{"symbol": "AA", "price": 1.5, "vwap": 1.0}], "x": 2}'
    assert project_payload(payload, "symbol", None) is payload
    assert project_payload(payload, "symbol", frozenset({"price"})) == (
        b'{"rows":[{"symbol":"AA","price":1.5}],"x":2}'
    )
    assert project_payload(b"{not json", "symbol", frozenset()) == b"{not json"
    nested = b"[" * 5000 + b"]" * 5000
    assert project_payload(nested, "symbol", frozenset()) == nested


def test_a_tracker_without_fields_relays_the_bytes_published() -> None:
    tracker = BoardTracker("symbol")
    payload = b'{"rows": [{"symbol": "AA", "vwap": 1.0}]}'
    tracker.advance(payload)
    assert tracker.document is payload
    assert tracker.fields is None
    projected = BoardTracker("symbol", frozenset({"price"}))
    projected.advance(payload)
    assert projected.document == b'{"rows":[{"symbol":"AA"}]}'
    assert projected.payload is payload
    assert projected.advance(b"{not json") is None
    assert projected.document == b"{not json"
