"""Widget writes are invisible to the cyclic garbage collector (they can be in no cycle).

A flush makes one per changed document; tracked, they outlived young collections and were
promoted, bringing full collections of the whole heap round every few seconds.
"""

from __future__ import annotations

import gc
from datetime import date

from mdp_analyzers.board import Board
from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import WidgetWrite, published
from mdp_testing.conformance import aggregate, at_ms

DAY = date(2026, 3, 4)


def test_the_widget_write_type_is_untracked() -> None:
    assert WidgetWrite.__struct_config__.gc is False


def test_a_flush_and_a_composition_make_only_untracked_writes() -> None:
    analyzer = LeaderboardAnalyzer()
    state = MemoryState()
    now_ns = at_ms(DAY, 10, 1) * 1_000_000
    analyzer.apply([aggregate(s, at_ms(DAY, 10, 0), close=12.0) for s in ("AAA", "BBB")], now_ns)
    output = analyzer.collect(now_ns)
    state.apply_now(output.state)
    writes = list(output.widgets) + published(state.applied.accepted)
    answers = [state.top_now(read) for read in analyzer.reads(now_ns)]
    writes += analyzer.compose(now_ns, answers)
    names = {write.name for write in writes}
    assert {"quote:AAA", "quote:BBB"} <= names
    assert any(Board.TOP_VOLUME.value in name for name in names)
    assert not any(gc.is_tracked(write) for write in writes)
