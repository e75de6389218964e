"""A bench run that carried nothing fails its correctness, though every check "passed".

Seen once under a loaded run: the simulator's own account held no bar, so the boards and
ranges were empty on both sides and every verdict said "ok".
"""

from __future__ import annotations

from mdp_platform.bench.board import BoardCheck
from mdp_platform.bench.check import nothing_checked


def verdict(board: str, expected_rows: int) -> BoardCheck:
    return BoardCheck(board, True, expected_rows, expected_rows, (), (), (), 0, "matches")


CHECKED = [verdict("top_volume", 0), verdict("ranges", 60)]
EMPTY = [verdict("top_volume", 0), verdict("ranges", 0)]


def test_a_run_with_events_and_ranges_checked_proved_something() -> None:
    assert nothing_checked(1, CHECKED, ("A", "T")) is None


def test_a_run_that_offered_nothing_proved_nothing() -> None:
    reason = nothing_checked(0, CHECKED, ("A", "T"))
    assert reason is not None
    assert reason.startswith("the simulator offered no events")


def test_a_run_with_aggregates_but_no_range_to_check_proved_nothing() -> None:
    assert nothing_checked(500, EMPTY, ("A", "T")) == "no symbol had a bar, so no range was checked"
    assert nothing_checked(500, [], ("A",)) == "no symbol had a bar, so no range was checked"


def test_without_aggregates_in_the_mix_no_range_is_expected() -> None:
    assert nothing_checked(500, EMPTY, ("T", "Q")) is None
