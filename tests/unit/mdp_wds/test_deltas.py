"""Board deltas: the document of ``base`` plus the delta is the next document, at every step."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mdp_wds.deltas import BoardTracker, apply_delta

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
