"""Which reads change what is stored, so a composer must hold its lease before sending them."""

from __future__ import annotations

from mdp_cache.ops import RowsRead, TopRead, UnionTopRead, WindowStatsRead, takes_state


def test_only_the_changed_windows_read_takes_state() -> None:
    assert takes_state(WindowStatsRead(10))
    assert not takes_state(TopRead("board", "rows", 10))
    assert not takes_state(UnionTopRead(("a", "b"), 10))
    assert not takes_state(RowsRead("rows", "versions"))
