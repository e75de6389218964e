"""State operations are a closed union: anything else raises where it is applied, never dropped.

Static checking makes a new operation type an error wherever the exhaustive ``match`` does not
handle it; these tests pin the run-time half for what escapes the type checker (a plugin
analyzer): ``MemoryState`` and ``checked_ops`` raise ``UnknownStateOp`` naming the type, and
never the payload (it would end up in a log).
"""

from __future__ import annotations

import pytest

from mdp_analyzers.state import (
    AppendTrades,
    KeepTop,
    MemoryState,
    PutNewer,
    SetValue,
    StateOp,
    UnknownStateOp,
)
from mdp_cache.ops import checked_ops


class NotAnOp:
    """Looks like a SetValue, is none: the shape a forgotten backend case would have."""

    key = "mdp:t:value"
    payload = b"secret-payload"
    ttl = 60

    def __repr__(self) -> str:
        return f"NotAnOp({self.payload!r})"


def _row(member: str) -> PutNewer:
    return PutNewer("mdp:t:rows", "mdp:t:versions", member, 1, b"{}", ("mdp:t:board",), (1.0,), 60)


def test_every_state_op_type_is_applied_by_the_memory_backend() -> None:
    state = MemoryState()
    ops: list[StateOp] = [
        _row("A"),
        SetValue("mdp:t:value", b"v", 60),
        AppendTrades("A", (), 10, 60),
        KeepTop("mdp:t:top", ((b"A", 1.0),), 5, 60),
    ]
    assert state.apply_now(ops, ["mark"]) == 1
    assert (state.rows["mdp:t:rows"], state.values, state.capped) == (
        {"A": b"{}"},
        {"mdp:t:value": b"v"},
        {"mdp:t:top": {b"A": 1.0}},
    )
    assert state.marks == {"mark"}


def test_an_unknown_op_raises_in_the_memory_backend_and_its_marks_are_not_set() -> None:
    state = MemoryState()
    stray: object = NotAnOp()
    with pytest.raises(UnknownStateOp, match="NotAnOp") as raised:
        state.apply_now([_row("A"), stray, _row("B")], ["mark"])  # type: ignore[list-item]  # what the types forbid
    assert "secret-payload" not in str(raised.value)
    assert isinstance(raised.value, TypeError)
    assert raised.value.type_name.endswith("NotAnOp")
    assert "mdp:t:value" not in state.values  # not taken for the SetValue it resembles
    assert state.marks == set()  # a batch is never marked applied with a write missing
    assert "B" not in state.rows["mdp:t:rows"]  # nothing after it either


def test_checked_ops_passes_state_ops_through_and_stops_at_the_first_stranger() -> None:
    ops: list[StateOp] = [_row("A"), SetValue("k", b"v", 1)]
    assert checked_ops(ops) is ops
    assert checked_ops([]) == []
    with pytest.raises(UnknownStateOp, match=r"not a state operation: .*NotAnOp"):
        checked_ops([*ops, NotAnOp()])  # type: ignore[list-item]  # what the types forbid
    with pytest.raises(UnknownStateOp, match=r"builtins\.dict"):
        checked_ops([{"key": "k"}])  # type: ignore[list-item]  # what the types forbid
