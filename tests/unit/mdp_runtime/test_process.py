import asyncio
import importlib
import json
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_runtime.process import ProcessManager, WorkerStatus

TRACE_ID = 0xABCDEF0123456789ABCDEF0123456789
TIMEOUT = 30.0


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # Spawned children receive the parent's sys.path, so they can import the module too.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("process_workers")


async def wait_until(
    manager: ProcessManager, predicate: Callable[[list[WorkerStatus]], bool]
) -> list[WorkerStatus]:
    async with asyncio.timeout(TIMEOUT):
        return await manager.wait_until(predicate)


def alive(manager: ProcessManager) -> bool:
    return manager.all_alive


def fast_manager(target: Any, count: int, **kwargs: Any) -> ProcessManager:
    options: dict[str, Any] = {
        "restart": BackoffPolicy(0.05, 0.2, stable_after_seconds=60.0),
        "grace_period": 5.0,
        "report_interval": 0.01,
    }
    options.update(kwargs)
    return ProcessManager(target, count, **options)


async def test_counters_and_trace_context_reach_the_parent(workers: ModuleType) -> None:
    parent = NonRecordingSpan(
        SpanContext(TRACE_ID, 0x1122334455667788, is_remote=False, trace_flags=TraceFlags(1))
    )
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        manager = fast_manager(workers.reporting_worker, 2, name="reporter")
        await manager.start()
    finally:
        otel_context.detach(token)
    try:
        status = await wait_until(manager, lambda s: all("restarts_seen" in w.counters for w in s))
        assert manager.all_alive
        assert [w.name for w in status] == ["reporter-0", "reporter-1"]
        assert [w.counters["processed"] for w in status] == [10, 11]
        assert all(w.counters["trace_id"] == f"{TRACE_ID:032x}" for w in status)
        assert all(w.pid is not None and w.started_at is not None for w in status)
        assert all(w.restarts == 0 and w.last_exit_code is None for w in status)
    finally:
        await manager.stop()
    final = manager.status()
    assert not alive(manager)
    assert all(not w.alive for w in final)
    assert all(w.last_exit_code == 0 for w in final)
    # The worker saw ctx.stopping, drained, and its last report was still collected.
    assert all(w.counters.get("drained") is True for w in final)


async def test_a_worker_that_exits_is_restarted(workers: ModuleType) -> None:
    async with fast_manager(workers.exit_first_time_worker, 1) as manager:
        [status] = await wait_until(manager, lambda s: s[0].counters.get("restarts_seen") == 1)
        assert status.restarts == 1
        assert status.last_exit_code == 3
        assert status.alive
        assert manager.all_alive
    assert not alive(manager)


async def test_failing_workers_back_off_and_stop_cleanly(workers: ModuleType) -> None:
    manager = fast_manager(workers.failing_worker, 1)
    await manager.start()
    try:
        [status] = await wait_until(manager, lambda s: s[0].restarts >= 1 and not s[0].alive)
        assert status.last_exit_code == 1
    finally:
        await manager.stop()
    assert not alive(manager)


async def test_stop_kills_a_worker_that_ignores_sigterm(workers: ModuleType) -> None:
    manager = fast_manager(workers.stubborn_worker, 2, grace_period=0.5)
    await manager.start()
    await wait_until(manager, lambda s: all(w.counters.get("ready") for w in s))
    await manager.stop()
    status = manager.status()
    assert all(not w.alive for w in status)
    assert all(w.last_exit_code == -signal.SIGKILL for w in status)
    await manager.stop()  # idempotent


def test_invalid_arguments_are_refused(workers: ModuleType) -> None:
    with pytest.raises(ValueError, match="count must be at least 1"):
        ProcessManager(workers.reporting_worker, 0)
    with pytest.raises(ValueError, match="restart backoff"):
        ProcessManager(workers.reporting_worker, 1, restart=BackoffPolicy(0.0, 1.0))
    with pytest.raises(ValueError, match="max_attempts"):
        ProcessManager(workers.reporting_worker, 1, restart=BackoffPolicy(1.0, 2.0, max_attempts=3))


async def test_start_twice_is_refused(workers: ModuleType) -> None:
    async with fast_manager(workers.reporting_worker, 1) as manager:
        with pytest.raises(RuntimeError, match="already started"):
            await manager.start()


async def test_restart_delay_doubles_on_the_injected_clock(workers: ModuleType) -> None:
    clock = ManualClock(datetime(2026, 3, 9, 14, tzinfo=UTC))
    manager = fast_manager(workers.failing_worker, 1, restart=BackoffPolicy(1.0, 4.0), clock=clock)
    await manager.start()
    try:
        for restarts, delay in ((0, 1.0), (1, 2.0), (2, 4.0)):
            async with asyncio.timeout(TIMEOUT):
                await clock.wait_for_sleepers(1)
            assert manager.status()[0].restarts == restarts
            clock.advance(delay - 0.001)
            assert clock.pending_sleepers == 1
            clock.advance(0.001)
            assert clock.pending_sleepers == 0
        await wait_until(manager, lambda s: s[0].restarts == 3)
    finally:
        await manager.stop()


def _counts_but_not_depth(name: str, value: object) -> bool:
    return name != "depth"


async def test_counts_stay_cumulative_across_a_restart(workers: ModuleType) -> None:
    manager = fast_manager(workers.counting_worker, 1, carry_over=_counts_but_not_depth)
    async with manager:
        [status] = await wait_until(manager, lambda s: s[0].counters.get("depth") == 8)
        assert status.last_exit_code == 3
        assert status.counters["processed"] == 10  # 5 from the dead run + 5 from this one
        assert status.restarts == 1  # depth 8: the second run's gauge, its own value only
        assert status.counters["ready"] is True


_ORPHAN_PARENT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
import process_workers
from mdp_runtime.process import ProcessManager

async def main():
    manager = ProcessManager(process_workers.stubborn_worker, 2, grace_period=1.0,
                             report_interval=0.01)
    await manager.start()
    await manager.wait_until(lambda s: all(w.counters.get("ready") for w in s))
    print("PIDS", json.dumps([w.pid for w in manager.status()]), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}  # a zombie has exited


async def test_workers_die_with_a_parent_killed_hard(workers: ModuleType) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ORPHAN_PARENT,
        str(Path(__file__).parent),
        stdout=asyncio.subprocess.PIPE,
    )
    assert parent.stdout is not None
    async with asyncio.timeout(TIMEOUT):
        line = b""
        while not line.startswith(b"PIDS "):  # the manager logs to stdout too
            line = await parent.stdout.readline()
    pids = json.loads(line[5:])
    assert len(pids) == 2
    assert all(_running(pid) for pid in pids)
    parent.kill()  # SIGKILL: the parent runs no cleanup at all
    await parent.wait()
    # stubborn_worker ignores SIGTERM: only the hard exit after the grace period ends it.
    async with asyncio.timeout(TIMEOUT):
        while any(_running(pid) for pid in pids):  # noqa: ASYNC110 - no event for another process's exit
            await asyncio.sleep(0.05)
