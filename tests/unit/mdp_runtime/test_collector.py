"""The service processes' collector policy: start-up frozen, young threshold as asked."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mdp_runtime import settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """No automatic collection during the test (only settle_heap may collect), then restore."""
    thresholds = gc.get_threshold()
    gc.disable()
    yield
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_settle_heap_freezes_what_lives_and_sets_only_the_young_threshold() -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    kept = [[index] for index in range(1_000)]  # tracked objects alive at the call
    settle_heap(50_000)
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (50_000, middle, old)


@pytest.mark.usefixtures("restored_collector")
def test_settle_heap_collects_cycles_before_freezing() -> None:
    gc.unfreeze()
    collected: list[int] = []

    class Node:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            collected.append(1)

    Node()  # unreachable but for its own cycle: only the collector frees it
    settle_heap()
    assert collected == [1]  # freed, not frozen for the life of the process


@pytest.mark.usefixtures("restored_collector")
def test_settle_heap_without_a_threshold_keeps_the_thresholds() -> None:
    before = gc.get_threshold()
    settle_heap()
    assert gc.get_threshold() == before
