"""What the processor's heartbeat says while the control plane pauses it, and its metrics."""

from __future__ import annotations

from mdp_processor.__main__ import is_cumulative, metrics_of, status_of
from mdp_runtime.process import WorkerStatus


def worker(index: int, *, paused: int, alive: bool = True, ready: bool = True) -> WorkerStatus:
    counters = {"paused": paused, "ready": ready, "control_changes_paused": paused}
    return WorkerStatus(index, f"w-{index}", alive, 100 + index, 0, None, None, counters)


def test_paused_once_every_live_worker_paused_pausing_while_some_are() -> None:
    assert status_of([worker(0, paused=1), worker(1, paused=1)]) == "paused"
    assert status_of([worker(0, paused=1), worker(1, paused=0)]) == "pausing"
    assert status_of([worker(0, paused=1), worker(1, paused=0, alive=False)]) == "paused"
    assert status_of([worker(0, paused=0), worker(1, paused=0)]) == "running"
    assert status_of([worker(0, paused=0, ready=False)]) == "degraded"
    assert status_of([]) == "running"


def test_the_paused_gauge_counts_workers_and_is_never_carried_over() -> None:
    figures = metrics_of([worker(0, paused=1), worker(1, paused=1), worker(2, paused=0)])
    assert figures["paused"] == 2
    assert figures["control_changes_paused"] == 2
    assert not is_cumulative("paused", 1)
    assert is_cumulative("control_changes_paused", 1)
