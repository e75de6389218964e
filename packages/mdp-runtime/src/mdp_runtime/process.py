"""Supervised worker processes for CPU-bound async work (the processors scale this way).

:class:`ProcessManager` runs N copies of a top-level ``async def worker(index, ctx)`` in
separate processes started with the ``spawn`` method (no inherited locks, sockets or event
loops), each in its own event loop. The parent stays an ordinary asyncio program: it never
blocks its loop, watching process sentinels and status pipes with ``loop.add_reader``.

What the parent does for each worker:

- passes the parent's trace context, so spans in the child join the parent's trace;
- restarts a worker that exits, after the ``restart`` backoff (:mod:`mdp_core.backoff`: 0.5 s
  doubling up to 30 s by default), reset once a worker has stayed up for the policy's
  ``stable_after_seconds``;
- collects the counters the worker reports with :meth:`WorkerContext.report` (coalesced, sent
  at most every ``report_interval`` seconds) into :meth:`ProcessManager.status`, keeping the
  counts a slot's earlier runs reached (a restart never makes a summed counter go backwards);
- ties each worker's life to its own: a worker watches a pipe only the parent holds open, and
  when the parent dies in any way (``kill -9`` included) it stops like on SIGTERM and is gone
  within ``grace_period`` (no orphan keeps consuming beside a restarted parent);
- on :meth:`ProcessManager.stop`, sends SIGTERM (the child's ``ctx.stopping`` event is set so
  the worker can drain and return) and kills what is still running after ``grace_period``.

Example::

    async def worker(index: int, ctx: WorkerContext) -> None:   # importable, top level
        while not ctx.stopping.is_set():
            ...
            ctx.report(processed=n)

    async with ProcessManager(worker, count=4) as manager:
        ...  # manager.status(), manager.all_alive
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Protocol, Self

from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import Clock, LiveClock
from mdp_core.logging import LogFormat, configure_logging, get_logger
from mdp_core.telemetry import attached_context, inject_context
from mdp_runtime.collector import settle_heap

__all__ = ["DEFAULT_RESTART", "ProcessManager", "WorkerContext", "WorkerStatus", "WorkerTarget"]

CounterValue = int | float | str | bool
CarryOver = Callable[[str, CounterValue], bool]

_log = get_logger(__name__)

DEFAULT_RESTART = BackoffPolicy(initial_seconds=0.5, max_seconds=30.0, stable_after_seconds=60.0)
"""Restart delays when the service passes none: 0.5 s doubling to 30 s, reset after 60 s up."""


class WorkerTarget(Protocol):
    """**Protocol:** a top-level coroutine function run in each worker process."""

    def __call__(self, index: int, ctx: WorkerContext, /) -> Awaitable[None]:
        """Run until ``ctx.stopping`` is set (then return) or fail (the parent restarts it)."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What the parent knows about one worker slot."""

    index: int
    name: str
    alive: bool
    pid: int | None
    restarts: int
    last_exit_code: int | None
    started_at: datetime | None
    counters: Mapping[str, CounterValue]
    """The latest report; counts (see ``carry_over``) include the slot's earlier runs."""


@dataclass(frozen=True, slots=True)
class _ChildLogging:
    service: str
    level: str
    fmt: LogFormat


@dataclass(frozen=True, slots=True)
class _ChildSpec:
    """Everything a worker process needs, pickled once by ``spawn``."""

    target: WorkerTarget
    index: int
    name: str
    restarts: int
    trace_carrier: dict[str, str]
    report_interval: float
    logging: _ChildLogging | None
    orphan_grace: float


class WorkerContext:
    """The worker's handle on its supervisor, created inside the child process.

    Attributes:
        index: the slot number, ``0 <= index < count``; stable across restarts.
        name: the process name, ``<name>-<index>``.
        restarts: how many times this slot was restarted before this run.
        trace_carrier: the parent's trace context as injected headers (already attached as the
            current context while the worker runs; forward it in messages if needed).
        stopping: set when the parent asks the worker to stop (SIGTERM); return soon after.
    """

    def __init__(self, spec: _ChildSpec, status: Connection) -> None:
        self.index = spec.index
        self.name = spec.name
        self.restarts = spec.restarts
        self.trace_carrier = dict(spec.trace_carrier)
        self.stopping = asyncio.Event()
        self._status = status
        self._interval = spec.report_interval
        self._counters: dict[str, CounterValue] = {}
        self._dirty = asyncio.Event()

    def report(self, **counters: CounterValue) -> None:
        """Publish counters (merged with earlier ones) to the parent's :meth:`status`.

        Cheap to call per event: it only updates a dict; a background task sends the latest
        values at most every ``report_interval`` seconds.
        """
        self._counters.update(counters)
        self._dirty.set()

    @property
    def counters(self) -> Mapping[str, CounterValue]:
        """The counters reported so far in this run."""
        return self._counters

    async def _flush_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._flush()
            await asyncio.sleep(self._interval)

    def _flush(self) -> None:
        if not self._dirty.is_set():
            return
        self._dirty.clear()
        with contextlib.suppress(OSError, ValueError):  # parent gone or pipe closed
            self._status.send(dict(self._counters))


async def _child_run(spec: _ChildSpec, status: Connection) -> None:
    ctx = WorkerContext(spec, status)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, ctx.stopping.set)
    flusher = asyncio.create_task(ctx._flush_forever())
    try:
        with attached_context(ctx.trace_carrier):
            await spec.target(ctx.index, ctx)
    finally:
        await cancel_until_done(flusher)
        ctx._flush()


def _watch_parent(lifeline: Connection, grace: float) -> None:
    """Block on a pipe only the parent writes to; its end of file means the parent is gone.

    A thread, not the event loop, so a busy or wedged loop cannot keep an orphan alive: first
    SIGTERM (the worker drains as on :meth:`ProcessManager.stop`), then a hard exit.
    """
    with contextlib.suppress(EOFError, OSError):
        while True:
            lifeline.recv_bytes()
    os.kill(os.getpid(), signal.SIGTERM)
    with contextlib.suppress(Exception):  # the log's stream may have died with the parent
        get_logger(__name__).warning("parent_gone_worker_stopping")
    threading.Event().wait(grace)  # the deadline for a graceful exit, not synchronisation
    os._exit(70)


def _child_main(spec: _ChildSpec, status: Connection, lifeline: Connection) -> None:
    """Entry point of a worker process: its own event loop around the target."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the parent stops us
    if spec.logging is not None:
        configure_logging(spec.logging.service, spec.logging.level, spec.logging.fmt)
    threading.Thread(
        target=_watch_parent, args=(lifeline, spec.orphan_grace), name="lifeline", daemon=True
    ).start()
    # What importing and configuring made lives as long as the process: out of every
    # collection, so a full collection scans only what the worker built since (tens of ms
    # less per pause with the analyzers' state of a whole market).
    settle_heap()
    try:
        asyncio.run(_child_run(spec, status))
    except Exception:
        get_logger(__name__).exception("worker_failed", worker=spec.name, index=spec.index)
        sys.exit(1)
    finally:
        status.close()


class _Slot:
    """Mutable supervision state of one worker slot (parent side)."""

    def __init__(self, index: int, name: str, backoff: Backoff) -> None:
        self.index = index
        self.name = name
        self.process: BaseProcess | None = None
        self.status_conn: Connection | None = None
        self.lifeline: Connection | None = None
        self.alive = False
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.started_at: datetime | None = None
        self.counters: dict[str, CounterValue] = {}
        self.carried: dict[str, int | float] = {}
        self.backoff = backoff
        self.exited: asyncio.Future[None] | None = None

    def snapshot(self) -> WorkerStatus:
        return WorkerStatus(
            index=self.index,
            name=self.name,
            alive=self.alive,
            pid=self.process.pid if self.process is not None else None,
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            started_at=self.started_at,
            counters=self.cumulative(),
        )

    def cumulative(self) -> dict[str, CounterValue]:
        """The latest report with the earlier runs' counts added."""
        merged: dict[str, CounterValue] = dict(self.counters)
        for name, earlier in self.carried.items():
            value = merged.get(name, 0)
            if isinstance(value, int | float) and not isinstance(value, bool):
                merged[name] = value + earlier
        return merged

    def retire(self, carry_over: CarryOver) -> None:
        """Keep the last figures of a run that ended, before the next run reports afresh."""
        for name, value in self.counters.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if carry_over(name, value):
                self.carried[name] = self.carried.get(name, 0) + value
        self.counters = {}


class ProcessManager:
    """Run and supervise ``count`` worker processes from an asyncio program.

    Args:
        target: a top-level (importable, picklable) ``async def worker(index, ctx)``.
        count: how many worker processes to run.
        name: prefix of process names (``<name>-<index>``) and log fields.
        restart: delays before restarting a worker that exited; its
            ``stable_after_seconds`` is the uptime after which a worker's backoff resets.
        grace_period: seconds between SIGTERM and SIGKILL on :meth:`stop`.
        report_interval: how often a worker sends its counters at most.
        child_logging: ``(service, level, fmt)`` to configure logging in each child; children
            inherit no logging configuration under ``spawn``.
        clock: the clock for ``started_at``, uptime and backoff waits.
        rng: random source of the restart jitter (seed it in tests).
        carry_over: which reported numbers are counts that survive a restart (added to the
            next run's); by default every integer that is not a bool. Gauges must be excluded.
    """

    def __init__(
        self,
        target: WorkerTarget,
        count: int,
        *,
        name: str = "worker",
        restart: BackoffPolicy = DEFAULT_RESTART,
        grace_period: float = 10.0,
        report_interval: float = 0.5,
        child_logging: tuple[str, str, LogFormat] | None = None,
        clock: Clock | None = None,
        carry_over: CarryOver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if count < 1:
            msg = f"count must be at least 1; it was {count}"
            raise ValueError(msg)
        if restart.initial_seconds <= 0 or restart.max_attempts is not None:
            msg = (
                "the restart backoff must start above 0 s (a crashing worker would spin) and "
                "have no max_attempts (a slot is always restarted)"
            )
            raise ValueError(msg)
        self._target = target
        self._name = name
        self._grace = grace_period
        self._report_interval = report_interval
        self._child_logging = _ChildLogging(*child_logging) if child_logging else None
        self._clock: Clock = clock if clock is not None else LiveClock()
        self._carry_over: CarryOver = carry_over if carry_over is not None else _is_count
        self._mp = multiprocessing.get_context("spawn")
        jitter = rng or random.Random()
        self._slots = [
            _Slot(i, f"{name}-{i}", Backoff(restart, jitter, self._clock)) for i in range(count)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._carrier: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Future[None] | None = None

    # --- public -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker (returns once all processes are launched).

        The trace context current at this call is handed to every worker (and to restarts).

        Raises:
            RuntimeError: if already started.
        """
        if self._loop is not None:
            msg = "ProcessManager already started"
            raise RuntimeError(msg)
        self._loop = asyncio.get_running_loop()
        self._carrier = inject_context()
        for slot in self._slots:
            await self._launch(slot)
        self._tasks = [
            asyncio.create_task(self._supervise(slot), name=f"supervise-{slot.name}")
            for slot in self._slots
        ]

    async def stop(self) -> None:
        """Stop every worker: SIGTERM, wait ``grace_period``, then SIGKILL. Idempotent."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        for slot in self._slots:
            self._signal(slot, kill=False)
        _, late = await asyncio.wait(tasks, timeout=self._grace)
        if late:
            for slot in self._slots:
                if slot.alive:
                    _log.warning("worker_killed_after_sigterm_ignored", worker=slot.name)
                    self._signal(slot, kill=True)
            await asyncio.wait(late)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                _log.error("supervisor_failed", error=repr(task.exception()))

    def status(self) -> list[WorkerStatus]:
        """A snapshot of every slot, in index order."""
        return [slot.snapshot() for slot in self._slots]

    async def wait_until(
        self, predicate: Callable[[list[WorkerStatus]], bool]
    ) -> list[WorkerStatus]:
        """Wait until ``predicate(status())`` holds; re-checked on every status change.

        Changes are launches, exits and counter reports. Wrap in ``asyncio.timeout`` to bound
        the wait. Returns the status that satisfied the predicate.
        """
        while True:
            status = self.status()
            if predicate(status):
                return status
            if self._changed is None or self._changed.done():
                self._changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._changed)

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    @property
    def all_alive(self) -> bool:
        """True when every worker process is running (for readiness probes)."""
        return all(slot.alive for slot in self._slots)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- supervision ----------------------------------------------------------------------

    async def _launch(self, slot: _Slot) -> None:
        loop = self._loop
        assert loop is not None
        reader, writer = self._mp.Pipe(duplex=False)
        # Only the parent holds the writing end: when it dies, the child reads end of file.
        life_reader, life_writer = self._mp.Pipe(duplex=False)
        spec = _ChildSpec(
            target=self._target,
            index=slot.index,
            name=slot.name,
            restarts=slot.restarts,
            trace_carrier=self._carrier,
            report_interval=self._report_interval,
            logging=self._child_logging,
            orphan_grace=self._grace,
        )
        process = self._mp.Process(
            target=_child_main, name=slot.name, args=(spec, writer, life_reader), daemon=True
        )
        # Spawning writes the preparation data through a pipe: keep it off the event loop.
        await asyncio.to_thread(process.start)
        writer.close()  # the child holds its own copy; ours would hide EOF
        life_reader.close()
        slot.process = process
        slot.status_conn = reader
        slot.lifeline = life_writer
        slot.retire(self._carry_over)
        slot.alive = True
        slot.started_at = self._clock.now()
        exited: asyncio.Future[None] = loop.create_future()
        slot.exited = exited
        sentinel = process.sentinel
        loop.add_reader(sentinel, self._on_exit, sentinel, exited)
        loop.add_reader(reader.fileno(), self._on_report, slot, reader)
        _log.info("worker_started", worker=slot.name, pid=process.pid, restarts=slot.restarts)
        self._notify()
        if self._stopping.is_set():  # stop() ran while this process was being spawned
            self._signal(slot, kill=False)

    def _on_exit(self, sentinel: int, exited: asyncio.Future[None]) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sentinel)
        if not exited.done():
            exited.set_result(None)

    def _on_report(self, slot: _Slot, conn: Connection) -> None:
        try:
            update: Any = conn.recv()
        except (EOFError, OSError):
            self._close_status(slot, conn)
            return
        if slot.status_conn is conn and isinstance(update, dict):
            slot.counters = update
            self._notify()

    def _close_status(self, slot: _Slot, conn: Connection) -> None:
        assert self._loop is not None
        with contextlib.suppress(OSError, ValueError):
            self._loop.remove_reader(conn.fileno())
        conn.close()
        if slot.status_conn is conn:
            slot.status_conn = None

    async def _reap(self, slot: _Slot) -> None:
        process = slot.process
        if process is None:
            return
        await asyncio.to_thread(process.join)
        if slot.status_conn is not None:
            self._drain_status(slot, slot.status_conn)
        if slot.lifeline is not None:
            slot.lifeline.close()
            slot.lifeline = None
        slot.alive = False
        slot.last_exit_code = process.exitcode
        self._notify()

    def _drain_status(self, slot: _Slot, conn: Connection) -> None:
        """Read the final reports a worker sent just before exiting, then close the pipe."""
        with contextlib.suppress(EOFError, OSError):
            while conn.poll():
                update: Any = conn.recv()
                if isinstance(update, dict):
                    slot.counters = update
        self._close_status(slot, conn)

    def _signal(self, slot: _Slot, *, kill: bool) -> None:
        process = slot.process
        if process is None or not slot.alive:
            return
        with contextlib.suppress(OSError, ValueError):
            if kill:
                process.kill()
            else:
                process.terminate()

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` on the clock, waking early when :meth:`stop` is called."""
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        stopper = asyncio.ensure_future(self._stopping.wait())
        _, pending = await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _supervise(self, slot: _Slot) -> None:
        while True:
            slot.backoff.started()
            assert slot.exited is not None
            await slot.exited
            await self._reap(slot)
            if self._stopping.is_set():
                return
            uptime = slot.backoff.lasted()
            delay = slot.backoff.wait()
            _log.warning(
                "worker_restarting",
                worker=slot.name,
                exit_code=slot.last_exit_code,
                uptime_seconds=round(uptime, 3),
                delay_seconds=round(delay, 3),
            )
            await self._pause(delay)
            if self._stopping.is_set():
                return
            slot.restarts += 1
            await self._launch(slot)


def _is_count(name: str, value: CounterValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
