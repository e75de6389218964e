"""``mdp bench``: the whole pipeline on this machine, measured end to end, with a correctness check.

The benchmark runs the real components as subprocesses through their console scripts, against
the real RabbitMQ on loopback (a unique queue prefix whose queues are deleted at the end) and a
private ``redis-server`` (pub/sub channels are server-wide, so a shared server would mix other
users' publishes into the measured feeds; ``--redis-url`` uses a shared one, in databases 13 (MDC)
and 14 (WDC), flushed at start):

    simulator -> mdp-listener -> RabbitMQ -> mdp-processor (N workers) -> Redis
              -> mdp-scanner / mdp-wds -> loopback websocket clients (in this process)

The simulator generates and encodes the fixed and saturation phases' events before each phase
(its tape), so the load generator takes little of the cores it measures. It measures a fixed
offered rate, then searches for the highest fixed rate the pipeline keeps
up with (:mod:`mdp_platform.bench.sustained`), then saturation (the processors offered a bounded
backlog ahead of what they have flushed, or with ``--saturation open`` as much as the listener
reads), then stops the market, waits until the pipeline has provably caught up
(:mod:`mdp_platform.bench.drain`) and compares the published leaderboards and every symbol's
session ranges with its own recomputation from the events the simulator sent. See
``docs/performance.md`` for the method and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import aiohttp
import msgspec
from redis.asyncio import Redis

from mdp_cache.keys import FEED_QUOTE
from mdp_core.settings import SettingsError, load
from mdp_core.token import issue_token
from mdp_platform.bench.board import (
    BOARD_NAMES,
    BoardCheck,
)
from mdp_platform.bench.broker import ExpiryCounter, expired_messages
from mdp_platform.bench.check import check_boards, nothing_checked, read_boards, read_ranges
from mdp_platform.bench.clients import BOARD_FEEDS, QUOTE_PREFIX, ClientPool, Sample
from mdp_platform.bench.config import (
    DEFAULT_AMQP,
    MDC_DB,
    WDC_DB,
    BenchConfig,
    BenchError,
    check_loopback,
    parse_component_env,
    parse_mix,
    topics_of,
    with_database,
)
from mdp_platform.bench.drain import (
    BARRIER_CHANNEL,
    BARRIER_REJECTION,
    flushes,
    listener_waiting,
    processor_waiting,
    scanner_waiting,
    settled,
)
from mdp_platform.bench.processes import (
    ProcessTree,
    children_named,
    find_pids_by_name,
    read_cpu_seconds,
)
from mdp_platform.bench.report import (
    PhaseResult,
    delta,
    pick,
    progress_line,
    render_table,
    sum_matching,
)
from mdp_platform.bench.services import (
    Service,
    SimProcess,
    build_services,
    child_env,
    processor_env,
)
from mdp_platform.bench.simulator import SimProcessConfig
from mdp_platform.bench.stats import EmissionMap, LagSummary, longest_gap_ms, p99_by_second
from mdp_platform.bench.sustained import (
    IN_BOUND_SHARE,
    KEPT_UP_SHARE,
    SearchStep,
    SustainedSearch,
    share_within,
)
from mdp_platform.embedded import EmbeddedRedis
from mdp_platform.settings import DemoSettings
from mdp_queues import MAX_PARTITIONS, Topology

__all__ = [
    "BenchConfig",
    "BenchError",
    "parse_mix",
    "processor_env",
    "run_bench",
    "run_bench_command",
    "topics_of",
    "with_database",
]

_DRAIN_TIMEOUT: Final = 90.0
_CATCH_UP_TIMEOUT: Final = 30.0
#: Flushes per worker that must pass with the accounts closed before the processor is done.
_SETTLING_FLUSHES: Final = 3
_DROP_WORDS: Final = ("drop", "stale", "poison", "error", "failure", "rejected")


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class _Snapshot:
    monotonic: float
    wall_ns: int
    sim: Mapping[str, Any]
    components: Mapping[str, Mapping[str, float]]
    cpu: Mapping[str, float]
    client_updates: int
    redis_updates: int
    load_1min: float


@dataclass(slots=True)
class _RedisWatch:
    """Subscribes to the clients' quote channels in WDC: when each update reached Redis."""

    redis: Redis
    channels: list[str]
    samples: list[Sample] = field(default_factory=list)
    updates: int = 0
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(*self.channels)
        self._task = asyncio.create_task(self._read(pubsub))

    async def _read(self, pubsub: Any) -> None:
        decoder = msgspec.json.Decoder(_EndMs)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                now = time.time_ns()
                self.updates += 1
                with contextlib.suppress(msgspec.DecodeError):
                    end = decoder.decode(message["data"]).end_ms
                    if end is not None and len(self.samples) < 400_000:
                        channel = bytes(message["channel"]).decode()
                        symbol = channel.removeprefix(QUOTE_PREFIX)
                        self.samples.append(Sample(now, False, end, symbol))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class _EndMs(msgspec.Struct):
    end_ms: int | None = None


@dataclass(slots=True)
class _Run:
    """Everything one benchmark run holds while it runs."""

    config: BenchConfig
    out: TextIO
    services: dict[str, Service]
    sim: SimProcess
    http: aiohttp.ClientSession
    trees: dict[str, ProcessTree]
    clients: ClientPool | None = None
    watch: _RedisWatch | None = None
    expiry: ExpiryCounter | None = None
    notes: list[str] = field(default_factory=list)
    #: Each phase's tape: events prepared and seconds it took (see :func:`_prepare`).
    tapes: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def expired_events(self) -> int:
        """Events of the run's batches the broker expired unread (0 when not counted)."""
        return self.expiry.events if self.expiry is not None and self.expiry.active else 0

    async def snapshot(self) -> _Snapshot:
        names = list(self.services)
        statuses = await asyncio.gather(*(self.services[n].status(self.http) for n in names))
        sim = await self.sim.ask({"op": "stats"})
        cpu = await asyncio.to_thread(self._cpu)
        return _Snapshot(
            monotonic=time.monotonic(),
            wall_ns=time.time_ns(),
            sim=sim,
            components=dict(zip(names, statuses, strict=True)),
            cpu=cpu,
            client_updates=0 if self.clients is None else self.clients.updates,
            redis_updates=0 if self.watch is None else self.watch.updates,
            load_1min=os.getloadavg()[0],
        )

    async def statuses(self) -> dict[str, dict[str, float]]:
        """Every component's flattened ``/status`` (empty for a missing one)."""
        names = list(self.services)
        found = await asyncio.gather(*(self.services[n].status(self.http) for n in names))
        return dict(zip(names, found, strict=True))

    def _cpu(self) -> dict[str, float]:
        figures = {name: tree.sample().cpu_seconds for name, tree in self.trees.items()}
        figures["bench"] = read_cpu_seconds(os.getpid())
        return figures

    def stage_rates(self, before: _Snapshot, after: _Snapshot) -> dict[str, float | None]:
        seconds = max(after.monotonic - before.monotonic, 1e-9)
        rates: dict[str, float | None] = {
            "simulator": (int(after.sim["total"]) - int(before.sim["total"])) / seconds,
        }
        for name, paths in _STAGE_COUNTERS.items():
            service = self.services.get(name)
            if service is None or service.process is None:
                rates[name] = None
                continue
            change = delta(after.components.get(name, {}), before.components.get(name, {}))
            value = _counter(change, paths)
            rates[name] = None if value is None else value / seconds
        rates["clients"] = (after.client_updates - before.client_updates) / seconds
        return rates


_STAGE_COUNTERS: Final[dict[str, tuple[str, ...]]] = {
    "listener": ("queue.published_events", "counters.events_in.total"),
    "processor": (
        "events",
        "processor.events",
        "stats.events",
        "counters.events.total",
        "counters.events_processed.total",
        "events_total",
    ),
    "scanner": ("messages_total", "messages"),
    "wds": ("messages_out",),
}


def _counter(figures: Mapping[str, float], paths: Sequence[str]) -> float | None:
    """The first counter found: a leaf by that name, or the sum of a subtree."""
    for path in paths:
        value = pick(figures, path)
        if value is not None:
            return value
        if any(name.startswith(path + ".") for name in figures):
            return sum_matching(figures, path)
    return None


def _drops(before: _Snapshot, after: _Snapshot) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, figures in after.components.items():
        change = delta(figures, before.components.get(name, {}))
        for key, value in change.items():
            leaf = key.lower()
            if any(word in leaf for word in _DROP_WORDS) and "seconds" not in leaf:
                found[f"{name} {key}"] = value
    listener = delta(after.components.get("listener", {}), before.components.get("listener", {}))
    found["listener buffer_full (outbox)"] = sum_matching(listener, "queue.dropped_events")
    kicks = int(after.sim.get("slow_consumer_kicks", 0)) - int(
        before.sim.get("slow_consumer_kicks", 0)
    )
    found["simulator slow_consumer_kicks"] = float(kicks)
    return found


def _broker_expiry(
    counter: ExpiryCounter | None, expired: int | None
) -> tuple[int, dict[str, int | str | None]]:
    """What the broker dropped unread, as stale drops for the checks and report figures.

    Events when they were read back; else the broker's count of messages (each held at least
    one event: a lower bound the checks treat as "some were dropped").
    """
    read = counter if counter is not None and counter.active else None
    figures: dict[str, int | str | None] = {
        "broker_expiry_not_counted_because": None if counter is None else counter.problem or None,
        "broker_expired_messages": expired,
        "broker_expired_batches_read": None if read is None else read.messages,
        "broker_expired_events": None if read is None else read.events,
    }
    return (expired or 0) if read is None else read.events, figures


def _tape_line(tapes: Mapping[str, Mapping[str, float]]) -> str:
    """What the simulator generated ahead of the measured phases (or that it did not)."""
    if not tapes:
        return "simulator: every event generated live (--tape-rate 0)"
    return "simulator tapes prepared before their phase: " + ", ".join(
        f"{phase} {tape['events']:,.0f} events in {tape['seconds']:g} s"
        for phase, tape in tapes.items()
    )


def _expiry_line(expired: int | None, counter: ExpiryCounter | None = None) -> str:
    """What the broker dropped unread during the run: read back by event, or its counter."""
    if counter is not None and counter.active:
        unreadable = f", {counter.unreadable:,} unreadable" if counter.unreadable else ""
        return (
            f"broker expiry: {counter.messages:,} MDQ batches ({counter.events:,} events"
            f"{unreadable}) expired unread past the TTL, read back through a dead-letter policy"
        )
    if expired is None:
        return "broker expiry: not read (needs rabbitmqctl and the broker on 127.0.0.1:5672)"
    return (
        f"broker expiry: {expired:,} MDQ messages (batches of events) expired unread "
        "past the TTL (RabbitMQ's broker-wide counter)"
    )


def _stale_drops(figures: Mapping[str, float]) -> int:
    return int(sum(value for key, value in figures.items() if "stale" in key.lower()))


# --------------------------------------------------------------------------- the run


def _infrastructure(*, private_redis: bool) -> dict[str, ProcessTree]:
    """Redis and RabbitMQ processes, measured like the components (reads ``/proc``)."""
    redis_pids = (
        children_named(os.getpid(), "redis-server")
        if private_redis
        else find_pids_by_name("redis-server")
    )
    found = {"redis-server": redis_pids, "rabbitmq": find_pids_by_name("beam.smp")}
    return {label: ProcessTree(pids) for label, pids in found.items() if pids}


def _peak_memory_mib(trees: Mapping[str, ProcessTree]) -> dict[str, float]:
    return {name: round(tree.sample().hwm_kib / 1024, 1) for name, tree in trees.items()}


async def _prepare_stores(config: BenchConfig) -> None:
    for database in (MDC_DB, WDC_DB):
        redis = Redis.from_url(config.redis(database))
        try:
            await redis.flushdb()
        except Exception as exc:
            msg = f"Redis at {config.redis_url} is unreachable: {exc}"
            raise BenchError(msg) from exc
        finally:
            await redis.aclose()


async def _delete_queues(config: BenchConfig, prefix: str) -> None:
    import aio_pika  # noqa: PLC0415 - only needed at the end

    connection = await aio_pika.connect(config.amqp_url)
    try:
        channel = await connection.channel()
        for queue in Topology(prefix=prefix, partitions=config.partitions).queues:
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue.name)
    finally:
        await connection.close()


class _Progress:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_plain = 0.0

    def show(self, line: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K" + line[:200])
            self.out.flush()
        elif time.monotonic() - self._last_plain >= 2.0:
            self._last_plain = time.monotonic()
            print(line, file=self.out, flush=True)

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


async def _measure(
    run: _Run, name: str, mode: dict[str, object], seconds: float, progress: _Progress
) -> tuple[_Snapshot, _Snapshot]:
    await run.sim.ask(mode)
    before = previous = await run.snapshot()
    while True:
        elapsed = time.monotonic() - before.monotonic
        if elapsed >= seconds:
            break
        await asyncio.sleep(min(1.0, seconds - elapsed))
        current = await run.snapshot()
        progress.show(
            progress_line(
                name,
                current.monotonic - before.monotonic,
                seconds,
                run.stage_rates(previous, current),
            )
        )
        previous = current
    progress.done()
    return before, previous


_Window = tuple[_Snapshot, _Snapshot]

#: Closed-loop saturation: the backlog the simulator may keep ahead of the processors, in
#: seconds of their latest rate, and at least this many events.
_WINDOW_SECONDS: Final = 2.5
_WINDOW_MIN_EVENTS: Final = 20_000
#: How often the bench reads the processors' progress to move the window.
_WINDOW_POLL: Final = 0.1


async def _saturate(run: _Run, progress: _Progress) -> tuple[_Snapshot, _Snapshot]:
    """The saturation phase: as much as the pipeline takes (``--saturation``).

    ``window`` (the default) keeps a bounded backlog ahead of the processors: the simulator
    offers up to ``_WINDOW_SECONDS`` of their latest rate (at least ``_WINDOW_MIN_EVENTS``)
    beyond what they are done with (:func:`~mdp_platform.bench.drain.settled`), so they always
    have work (enough to pace their flushes for saturation) and the phase measures what they
    carry, not what an overfed machine drops: on two shared cores a generator and listener
    racing ahead of the processors take the CPU they need (offered 134,000 events/s from a
    tape at 500 symbols, one worker carried 21,000 and 400,000 events expired in the broker).
    ``open`` offers as fast as the listener reads, with no regard for the processors (the
    bench's only saturation before 2026-12-07, session 29). A window the bench could not
    hold (no reading of the processors) is noted in the report, never silently opened.
    """
    config = run.config
    closed = config.saturation == "window" and run.services["processor"].process is not None
    start = await _settled(run) if closed else None
    if start is None:
        if closed:
            run.notes.append("saturation ran open: the processors' progress could not be read")
        return await _measure(
            run, "saturation", {"op": "mode", "mode": "max"}, config.seconds, progress
        )
    # What was offered and never reaches the accounts (none, when every loss is counted).
    offset = int((await run.sim.ask({"op": "stats"}))["total"]) - int(start)
    await run.sim.ask({"op": "allow", "events": int(start) + offset + _WINDOW_MIN_EVENTS})
    stop = asyncio.Event()
    polls = {"read": 0, "failed": 0}

    async def hold() -> None:
        marks: deque[tuple[float, float]] = deque([(time.monotonic(), start)], maxlen=11)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_WINDOW_POLL):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                done = await _settled(run)
                if done is None:
                    polls["failed"] += 1
                    continue
                done = max(done, marks[-1][1])  # counters only grow; a restart reads lower
                marks.append((time.monotonic(), done))
                (t0, n0), (t1, n1) = marks[0], marks[-1]
                rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
                window = max(_WINDOW_MIN_EVENTS, rate * _WINDOW_SECONDS)
                await run.sim.ask({"op": "allow", "events": int(done + offset + window)})
                polls["read"] += 1
            except (BenchError, TimeoutError, OSError):
                polls["failed"] += 1

    task = asyncio.create_task(hold())
    try:
        return await _measure(
            run, "saturation", {"op": "mode", "mode": "window"}, config.seconds, progress
        )
    finally:
        stop.set()
        await task
        if polls["failed"]:
            run.notes.append(
                f"saturation window: {polls['failed']} of {polls['read'] + polls['failed']} "
                "readings of the processors' progress failed (the window held still then)"
            )


async def _settled(run: _Run) -> float | None:
    """Events the pipeline is done with (:func:`~mdp_platform.bench.drain.settled`)."""
    listener, processor = await asyncio.gather(
        run.services["listener"].status(run.http), run.services["processor"].status(run.http)
    )
    return settled(listener, processor, run.expired_events)


async def _search(run: _Run, progress: _Progress) -> tuple[SustainedSearch | None, list[_Window]]:
    """Offer rising fixed rates until the pipeline falls behind (:mod:`.sustained`)."""
    config = run.config
    if config.search_seconds <= 0:
        return None, []
    search = SustainedSearch(
        start=config.search_start or config.rate * config.search_factor,
        factor=config.search_factor,
        max_steps=config.search_steps,
        lag_bound_ms=config.search_lag_ms,
    )
    windows: list[_Window] = []
    while (rate := search.next_rate()) is not None:
        mode: dict[str, object] = {"op": "mode", "mode": "rate", "rate": rate}
        await run.sim.ask(mode)
        # Unmeasured: every stage reaches the step's rate before its window opens.
        await asyncio.sleep(config.search_settle_seconds)
        window = await _measure(
            run, f"sustained {rate:,.0f}/s", mode, config.search_seconds, progress
        )
        rates = run.stage_rates(*window)
        before, after = window
        change = delta(
            after.components.get("processor", {}), before.components.get("processor", {})
        )
        search.record(
            SearchStep(
                rate,
                rates["simulator"] or 0.0,
                rates.get("processor") or 0.0,
                in_bound=share_within(change, search.lag_bound_ms / 1_000),
            )
        )
        windows.append(window)
    await _catch_up(run, "the sustained-rate search")
    return search, windows


#: The fixed phase's tape holds this many times the events it should offer.
_TAPE_MARGIN: Final = 1.2
#: The longest the bench waits for the simulator to prepare a tape.
_TAPE_TIMEOUT: Final = 300.0
#: The most events a tape holds (~330 bytes each in the simulator; past it, events are
#: generated live and the phase's tape share says so).
_TAPE_MAX_EVENTS: Final = 3_000_000
#: The simulator's ``final`` folds what the check has not yet seen, ~5 µs an event.
_FINAL_TIMEOUT: Final = 60.0
_FINAL_SECONDS_PER_TAPE_EVENT: Final = 10e-6


async def _prepare(run: _Run, phase: str, events: float) -> None:
    """Have the simulator generate and encode a phase's events ahead (its tape), while idle.

    Then the pipeline catches up, so the phase starts from an empty backlog whatever came
    before it. ``--tape-rate 0`` turns tapes off. What each tape held and how long it took go
    into the report; each phase's figures say how much of it came from a tape.
    """
    if run.config.tape_rate <= 0 or events < 1:
        return
    await run.sim.ask({"op": "mode", "mode": "idle"})
    wanted = int(min(events, _TAPE_MAX_EVENTS))
    reply = await run.sim.ask({"op": "prepare", "events": wanted}, within=_TAPE_TIMEOUT)
    run.tapes[phase] = {"events": int(reply["events"]), "seconds": float(reply["seconds"])}
    await _catch_up(run, f"preparing the {phase} phase's tape")


async def _catch_up(run: _Run, after: str) -> None:
    """Pause the market until the pipeline has taken every event (bounded; noted if not).

    The last step of a search fell behind by design: its backlog would otherwise be the first
    seconds of the next phase.
    """
    await run.sim.ask({"op": "mode", "mode": "idle"})
    if any(run.services[name].process is None for name in ("listener", "processor")):
        return  # nothing to wait for: the drain reports the missing stage
    offered = int((await run.sim.ask({"op": "stats"}))["total"])
    waiting, _ = await _until(
        run,
        time.monotonic() + _CATCH_UP_TIMEOUT,
        lambda c: _pipeline_waiting(c, offered, run.expired_events),
    )
    if waiting is not None:
        run.notes.append(f"after {after} the pipeline had not caught up: {waiting}")


def _search_report(
    run: _Run, search: SustainedSearch | None, windows: Sequence[_Window], emission: EmissionMap
) -> tuple[dict[str, Any] | None, PhaseResult | None]:
    """The search's steps with their latencies, and the best step as a phase of the table."""
    if search is None:
        return None, None
    samples = run.watch.samples if run.watch is not None else []
    lags = [
        _lags(_timed_lags(samples, emission, before.wall_ns, after.wall_ns, board=False))
        for before, after in windows
    ]
    search.with_lags([lag.p99_ms if lag.count else None for lag in lags])
    best = search.best()
    report = {
        "rate": None if best is None else search.steps[best].asked,
        "ceiling": search.ceiling(),
        "lag_bound_ms": search.lag_bound_ms,
        "kept_up_share": KEPT_UP_SHARE,
        "in_bound_share": IN_BOUND_SHARE,
        "factor": search.factor,
        "seconds_per_step": run.config.search_seconds,
        "steps": [
            {**msgspec.to_builtins(step), "sustained": search.sustained(step)}
            for step in search.steps
        ],
    }
    phase = (
        None
        if best is None
        else _phase_result(run, "sustained", search.steps[best].asked, windows[best], emission)
    )
    return report, phase


def _search_lines(report: Mapping[str, Any] | None) -> list[str]:
    if report is None:
        return []
    steps = " ".join(
        f"{step['asked']:,.0f}{'' if step['sustained'] else '(x)'}" for step in report["steps"]
    )
    found = "none" if report["rate"] is None else f"{report['rate']:,.0f} ev/s"
    return [f"sustained rate: {found}; stopped {report['ceiling']}; steps offered: {steps}"]


@dataclass(frozen=True, slots=True)
class _Drained:
    """How the drain ended.

    Attributes:
        seconds: from stopping the market to the end of the drain.
        caught_up_ms: wall ms at which the processor had provably written everything (boards
            composed after it hold every row).
        waiting: what was still outstanding at the deadline (None: the drain completed).
    """

    seconds: float
    caught_up_ms: int
    waiting: str | None


def _pipeline_waiting(
    components: Mapping[str, Mapping[str, float]], offered: int, expired: int
) -> str | None:
    listener = components.get("listener", {})
    return listener_waiting(listener, offered) or processor_waiting(
        components.get("processor", {}),
        sum_matching(listener, "queue.published_events"),
        expired,
    )


async def _until(
    run: _Run, deadline: float, waiting: Callable[[dict[str, dict[str, float]]], str | None]
) -> tuple[str | None, dict[str, dict[str, float]]]:
    """Poll the components until ``waiting`` says nothing is outstanding, or the deadline."""
    while True:
        components = await run.statuses()
        reason = waiting(components)
        if reason is None or time.monotonic() >= deadline:
            return reason, components
        await asyncio.sleep(0.25)


async def _reference_ready(run: _Run) -> float | None:
    """Trickle events until the processors hold the day's reference data; seconds it took.

    The first event of a trading day starts the bulk reference load (grouped daily bars of
    the look-back, all floats), as the first pre-market print does in production, hours
    before the open. Measuring from a cold start would fold that one-time load into the
    fixed-rate phase's latencies, so the bench streams a trickle (``_TRICKLE`` events/s)
    until every symbol's reference data is in and no lookup is in flight (bounded: None past
    ``_REFERENCE_TIMEOUT``) and prints how long that took. Without a processor there is
    nothing to wait for (0).
    """
    if run.services["processor"].process is None:
        return 0.0
    started = time.monotonic()
    await run.sim.ask({"op": "mode", "mode": "rate", "rate": _TRICKLE})

    def loading(components: dict[str, dict[str, float]]) -> str | None:
        processor = components.get("processor", {})
        loaded = pick(processor, "reference_bulk_symbols") or 0.0
        if loaded < run.config.symbols:
            return "reference data loading"
        # The bulk load brings the previous days; the free float is one lookup per symbol
        # seen in the warm-up, and each answer changes that symbol's row (written again with
        # its last bar): measured from the fixed phase, that was seconds of "lag" at 10,000
        # symbols, and the lookups' CPU.
        pending = pick(processor, "reference_pending") or 0.0
        return None if pending <= 0 else "reference lookups in flight"

    waiting, _ = await _until(run, started + _REFERENCE_TIMEOUT, loading)
    await run.sim.ask({"op": "mode", "mode": "idle"})
    return None if waiting is not None else round(time.monotonic() - started, 2)


#: Events/s streamed while the reference data loads (a pre-market trickle).
_TRICKLE: Final = 200.0
#: The longest the bench waits for the reference data before measuring anyway.
_REFERENCE_TIMEOUT: Final = 120.0


async def _drain(run: _Run) -> _Drained:
    """Stop the market and wait until every stage has provably caught up (bounded)."""
    await run.sim.ask({"op": "mode", "mode": "idle"})
    started = time.monotonic()
    deadline = started + _DRAIN_TIMEOUT
    offered = int((await run.sim.ask({"op": "stats"}))["total"])
    missing = [name for name in ("listener", "processor") if run.services[name].process is None]
    if missing:
        return _Drained(0.0, time.time_ns() // 1_000_000, f"missing stages: {missing}")
    waiting, components = await _until(
        run, deadline, lambda c: _pipeline_waiting(c, offered, run.expired_events)
    )
    if waiting is None:
        # The accounts closed; a row changed by the last reference lookup or a refusal is
        # written by a flush after that, so a few more must pass with nothing new coming in.
        target = flushes(components["processor"]) + _SETTLING_FLUSHES * run.config.workers

        def settled(now: dict[str, dict[str, float]]) -> str | None:
            if flushes(now["processor"]) < target:
                return "processor flushing after its accounts closed"
            return _pipeline_waiting(now, offered, run.expired_events)

        waiting, components = await _until(run, deadline, settled)
    caught_up_ms = time.time_ns() // 1_000_000
    if waiting is None and run.watch is not None and run.services["scanner"].process is not None:
        barriers = pick(components["scanner"], BARRIER_REJECTION) or 0.0
        await run.watch.redis.publish(BARRIER_CHANNEL, b"end of the bench drain")
        waiting, _ = await _until(
            run, deadline, lambda c: scanner_waiting(c.get("scanner", {}), barriers)
        )
    return _Drained(round(time.monotonic() - started, 2), caught_up_ms, waiting)


def _timed_lags(
    samples: Sequence[Sample], emission: EmissionMap, start_ns: int, end_ns: int, *, board: bool
) -> list[tuple[int, float]]:
    """``(wall ns received, lag ms)`` of the samples of one kind received in the window."""
    timed: list[tuple[int, float]] = []
    for sample in samples:
        if sample.board != board or not start_ns <= sample.wall_ns < end_ns:
            continue
        if board:
            timed.append((sample.wall_ns, (sample.wall_ns - sample.stamp_ms * 1_000_000) / 1e6))
        else:
            lag = emission.lag_ms(sample.stamp_ms, sample.wall_ns, sample.symbol)
            if lag is not None:
                timed.append((sample.wall_ns, lag))
    return timed


def _lags(timed: Sequence[tuple[int, float]]) -> LagSummary:
    return LagSummary.of([lag for _, lag in timed])


def _phase_result(
    run: _Run,
    name: str,
    offered: float | None,
    window: tuple[_Snapshot, _Snapshot],
    emission: EmissionMap,
) -> PhaseResult:
    before, after = window
    seconds = after.monotonic - before.monotonic
    rates = run.stage_rates(before, after)
    offered_events = int(after.sim["total"]) - int(before.sim["total"])
    cpu = (
        {
            component: round(
                (after.cpu.get(component, 0.0) - before.cpu.get(component, 0.0))
                / offered_events
                * 100_000,
                3,
            )
            for component in after.cpu
        }
        if offered_events
        else {}
    )
    processor_lag = {k: v for k, v in after.components.get("processor", {}).items() if "lag" in k}
    processed = delta(after.components.get("processor", {}), before.components.get("processor", {}))
    flushes, saturated = processed.get("flushes"), processed.get("saturated_flushes")
    taped = int(after.sim.get("tape_sent", 0)) - int(before.sim.get("tape_sent", 0))
    clients = run.clients.samples if run.clients is not None else []
    arrivals = run.clients.board_arrivals.values() if run.clients is not None else []
    redis_samples = run.watch.samples if run.watch is not None else []
    window_ns = (before.wall_ns, after.wall_ns)
    to_client = _timed_lags(clients, emission, *window_ns, board=False)
    return PhaseResult(
        name=name,
        seconds=round(seconds, 2),
        offered_rate=offered,
        rates={k: None if v is None else round(v, 1) for k, v in rates.items()},
        end_to_end_rate=None
        if rates.get("processor") is None
        else round(rates["processor"] or 0.0, 1),
        lag_event_to_redis=_lags(_timed_lags(redis_samples, emission, *window_ns, board=False)),
        lag_event_to_client=_lags(to_client),
        lag_board_to_client=_lags(_timed_lags(clients, emission, *window_ns, board=True)),
        processor_lag=processor_lag,
        drops=_drops(before, after),
        cpu_per_100k=cpu,
        longest_board_gap_ms=longest_gap_ms(arrivals, before.wall_ns, after.wall_ns),
        load_1min=(round(before.load_1min, 2), round(after.load_1min, 2)),
        client_p99_by_second_ms=tuple(p99_by_second(to_client, *window_ns)),
        processor_flushes=None if flushes is None or saturated is None else (flushes, saturated),
        tape_share=round(taped / offered_events, 4) if offered_events else None,
    )


async def run_bench(config: BenchConfig, out: TextIO) -> dict[str, Any]:
    """Run the benchmark and return the report (also written to ``config.report``).

    Raises:
        BenchError: when a server is unreachable or a URL is not loopback.
    """
    check_loopback(config.amqp_url, "AMQP")
    private: EmbeddedRedis | None = None
    if config.redis_url is None:
        private = EmbeddedRedis()
        await private.start()
        if private.kind != "redis-server":
            await private.stop()
            msg = "no redis-server binary for a private Redis: pass --redis-url"
            raise BenchError(msg)
        config = dataclasses.replace(config, redis_url=private.url(0))
    try:
        return await _run_bench(config, out, private is not None)
    finally:
        if private is not None:
            await private.stop()


async def _run_bench(config: BenchConfig, out: TextIO, private_redis: bool) -> dict[str, Any]:  # noqa: PLR0915 - one linear script
    """The benchmark proper, against ``config.redis_url``."""
    assert config.redis_url is not None
    check_loopback(config.redis_url, "Redis")
    await _prepare_stores(config)
    bindir = Path(sys.executable).parent
    logs = config.report.parent / "logs" / config.report.stem
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"bench{secrets.token_hex(4)}."
    key = "bench_" + secrets.token_urlsafe(12)
    secret = secrets.token_urlsafe(32)
    services = build_services(config, bindir, logs, prefix=prefix, key=key, secret=secret)
    sim = SimProcess(
        SimProcessConfig(
            symbols=config.symbols,
            seed=config.seed,
            mix=config.mix,
            api_key=key,
            start=config.start,
        ),
        child_env(bindir, {}),
        logs / "simulator.log",
    )
    started = time.time()
    load_at_start = list(os.getloadavg())
    expired_before = await expired_messages(config.amqp_url)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3.0), trust_env=False)
    run = _Run(config, out, services, sim, http, {})
    expiry = run.expiry = ExpiryCounter(config.amqp_url, prefix)
    await expiry.start()
    progress = _Progress(out)
    report: dict[str, Any] = {}
    final: dict[str, Any] = {}
    try:
        print(_header(config), file=out, flush=True)
        await sim.start()
        assert sim.tree is not None
        run.trees["simulator"] = sim.tree
        services["listener"].env["MDP_MASSIVE_FEED"] = sim.feed
        services["processor"].env.update(processor_env(config.workers, sim.rest))
        for name in ("processor", "scanner", "wds"):
            await services[name].start(bindir)
        await asyncio.gather(
            *(services[n].wait_ready(http) for n in ("processor", "scanner", "wds"))
        )
        await services["listener"].start(bindir)
        await sim.ask({"op": "mode", "mode": "rate", "rate": config.rate})
        await services["listener"].wait_ready(http)
        for name, service in services.items():
            if service.missing is not None:
                run.notes.append(f"{name}: MISSING: {service.missing}")
                print(f"  {name}: MISSING - {service.missing}", file=out, flush=True)
            elif service.tree is not None:
                run.trees[name] = service.tree
        run.trees.update(await asyncio.to_thread(_infrastructure, private_redis=private_redis))
        feeds = [*BOARD_FEEDS, FEED_QUOTE.pattern]
        token = issue_token(secret, "mdp-bench", feeds, 3600.0, time.time())
        pool = ClientPool(
            f"ws://127.0.0.1:{services['wds'].port}/ws",
            token,
            sim.symbols,
            config.clients,
            config.quotes_each,
        )
        if services["wds"].process is not None and config.clients > 0:
            run.clients = pool
            await pool.start()
        watched = sorted(
            {feed for i in range(max(1, config.clients)) for feed in pool.feeds_of(i)}
            - set(BOARD_FEEDS)
        )
        run.watch = _RedisWatch(
            Redis.from_url(config.redis(WDC_DB)),
            watched or [FEED_QUOTE.name(symbol="NONE")],
        )
        await run.watch.start()
        watched_symbols = sorted(
            feed.removeprefix(QUOTE_PREFIX) for feed in watched if feed.startswith(QUOTE_PREFIX)
        )
        await sim.ask({"op": "watch", "symbols": watched_symbols})
        await asyncio.sleep(config.warmup_seconds)
        reference_ready_seconds = await _reference_ready(run)
        await _prepare(run, "fixed", config.rate * config.seconds * _TAPE_MARGIN)
        fixed = await _measure(
            run,
            "fixed",
            {"op": "mode", "mode": "rate", "rate": config.rate},
            config.seconds,
            progress,
        )
        search, search_windows = await _search(run, progress)
        await _prepare(run, "saturation", config.tape_rate * config.seconds)
        saturation = await _saturate(run, progress)
        drained = await _drain(run)
        expired_after = await expired_messages(config.amqp_url)
        expired = (
            None
            if expired_before is None or expired_after is None
            else expired_after - expired_before
        )
        last = await run.snapshot()
        memory = await asyncio.to_thread(_peak_memory_mib, run.trees)
        present = services["processor"].process is not None
        boards = await read_boards(config, drained.caught_up_ms) if present else {}
        ranges = await read_ranges(config) if present else {}
        taped = sum(tape["events"] for tape in run.tapes.values())
        final = await sim.ask(
            {"op": "final"}, within=_FINAL_TIMEOUT + taped * _FINAL_SECONDS_PER_TAPE_EVENT
        )
        emission = EmissionMap(
            [(int(a), int(b)) for a, b in final["emission"]],
            {(str(symbol), int(at)): int(wall) for symbol, at, wall in final.get("watched", [])},
        )
        # Batches the broker dropped unread (TTL) are stale drops no component could count.
        broker_lost, broker_figures = _broker_expiry(run.expiry, expired)
        stale = _stale_drops(last.components.get("processor", {})) + broker_lost
        diagnosis: dict[str, Any] = {}
        if services["processor"].process is None:
            checks = [
                BoardCheck(b, False, 0, 0, (), (), (), 0, "not checked: the processor is missing")
                for b in (*BOARD_NAMES, "ranges")
            ]
        else:
            checks, diagnosis = await check_boards(
                config, boards, ranges, final, stale=stale, drain_waiting=drained.waiting
            )
            diagnosis["drained_ms"] = drained.caught_up_ms
            diagnosis["drain_waiting_at_deadline"] = drained.waiting
        sustained, sustained_phase = _search_report(run, search, search_windows, emission)
        phases = [
            _phase_result(run, "fixed", config.rate, fixed, emission),
            *([] if sustained_phase is None else [sustained_phase]),
            _phase_result(run, "saturation", None, saturation, emission),
        ]
        offered_total = int(final["total"])
        vacuous = nothing_checked(offered_total, checks, config.mix)
        report = {
            "version": 1,
            "started_at": started,
            "config": {
                "symbols": config.symbols,
                "workers": config.workers,
                "partitions": config.partitions,
                "seconds": config.seconds,
                "rate": config.rate,
                "mix": list(config.mix),
                "clients": config.clients,
                "quotes_each": config.quotes_each,
                "seed": config.seed,
                "start": config.start,
                "saturation": config.saturation,
                "tape_rate": config.tape_rate,
                "component_env": _component_env(config),
            },
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg_at_start": load_at_start,
                "loadavg_at_end": list(os.getloadavg()),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "phases": msgspec.to_builtins(phases),
            "sustained": sustained,
            "drain_seconds": drained.seconds,
            "reference_ready_seconds": reference_ready_seconds,
            "tapes": run.tapes,
            "offered_events_total": offered_total,
            "offered_by_type": final.get("offered", {}),
            "peak_memory_mib": memory,
            "correctness": {
                "ok": all(c.ok for c in checks) and vacuous is None,
                "nothing_checked": vacuous,
                "stale_drops": stale,
                **broker_figures,
                "diagnosis": diagnosis,
                "boards": msgspec.to_builtins(checks),
            },
            "components": {
                name: {"missing": s.missing, "final_metrics": last.components.get(name, {})}
                for name, s in services.items()
            },
            "clients": None
            if run.clients is None
            else {
                "connected": run.clients.connected,
                "messages": run.clients.messages,
                "errors": run.clients.errors[:20],
            },
            "redis": "private redis-server" if private_redis else "shared (databases 13/14)",
            "notes": run.notes,
            "logs": str(logs),
        }
        print(render_table(phases, memory, [(c.board, c.ok, c.detail) for c in checks]), file=out)
        out.writelines(f"{line}\n" for line in _search_lines(sustained))
        print(
            f"load average (1 min) {load_at_start[0]:.2f} at start, "
            f"{report['machine']['loadavg_at_end'][0]:.2f} at end; drain {drained.seconds:g} s"
            + ("" if drained.waiting is None else f", INCOMPLETE: {drained.waiting}"),
            file=out,
        )
        out.writelines(f"correctness: nothing was checked: {v}\n" for v in (vacuous,) if v)
        print(_expiry_line(expired, run.expiry), file=out)
        print(_tape_line(run.tapes), file=out)
        print(
            "reference data: "
            + (
                "not complete after the warm-up's bound; measured anyway"
                if reference_ready_seconds is None
                else f"loaded for every symbol {reference_ready_seconds:g} s into the warm-up"
            ),
            file=out,
        )
    finally:
        if run.clients is not None:
            await run.clients.stop()
        if run.watch is not None:
            await run.watch.stop()
            await run.watch.redis.aclose()
        for name in ("listener", "processor", "scanner", "wds"):
            await services[name].stop()
        if not final:
            with contextlib.suppress(Exception):
                await sim.ask({"op": "final"}, within=10.0)
        await sim.stop()
        await http.close()
        with contextlib.suppress(Exception):
            await expiry.stop()
        with contextlib.suppress(Exception):
            await _delete_queues(config, prefix)
    return report


def _header(config: BenchConfig) -> str:
    """What the run is, printed first: its size, mix, phases and any component settings."""
    lines = [
        f"mdp bench: {config.symbols} symbols, mix {','.join(config.mix)}, {config.workers} "
        f"worker(s), {config.partitions} partition(s), {config.clients} clients, "
        f"{config.seconds:g} s per phase, market from {config.start} ET"
    ]
    if config.component_env:
        given = ", ".join(f"{i.component}:{i.name}={i.value}" for i in config.component_env)
        lines.append(f"component settings: {given}")
    return "\n".join(lines)


def _component_env(config: BenchConfig) -> dict[str, dict[str, str]]:
    """The run's ``--component-env`` settings, by component (recorded in the report)."""
    given: dict[str, dict[str, str]] = {}
    for item in config.component_env:
        given.setdefault(item.component, {})[item.name] = item.value
    return given


def _config_from_args(args: argparse.Namespace) -> BenchConfig:
    try:
        settings = load(DemoSettings)
    except SettingsError as exc:
        raise BenchError(str(exc)) from None
    amqp = args.amqp_url or (settings.amqp_url.reveal() if settings.amqp_url else DEFAULT_AMQP)
    redis = args.redis_url or (settings.redis_url.reveal() if settings.redis_url else None)
    partitions = args.workers if args.partitions is None else args.partitions
    if args.workers < 1 or args.clients < 0 or not 1 <= partitions <= MAX_PARTITIONS:
        msg = f"--workers must be >= 1, --clients >= 0, --partitions within 1..{MAX_PARTITIONS}"
        raise BenchError(msg)
    return BenchConfig(
        symbols=args.symbols,
        workers=args.workers,
        partitions=partitions,
        seconds=args.seconds,
        rate=args.rate,
        mix=parse_mix(args.mix),
        clients=args.clients,
        start=getattr(args, "start", "10:00"),
        search_seconds=getattr(args, "search_seconds", 5.0),
        search_start=getattr(args, "search_start", None),
        saturation=getattr(args, "saturation", "window"),
        tape_rate=getattr(args, "tape_rate", 200_000.0),
        component_env=tuple(
            parse_component_env(text) for text in getattr(args, "component_env", None) or ()
        ),
        amqp_url=amqp,
        redis_url=redis,
        report=Path(args.report),
    )


def run_bench_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``mdp bench``: run, print the table, save the JSON report; 0 only if the check passed."""
    stream = out if out is not None else sys.stdout
    try:
        config = _config_from_args(args)
        report = asyncio.run(run_bench(config, stream))
    except BenchError as exc:
        print(f"mdp bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdp bench: interrupted", file=sys.stderr)
        return 130
    config.report.parent.mkdir(parents=True, exist_ok=True)
    config.report.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    ok = bool(report.get("correctness", {}).get("ok"))
    print(
        f"correctness: {'PASS' if ok else 'FAIL'}; report written to {config.report}", file=stream
    )
    return 0 if ok else 1
