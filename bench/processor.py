"""Benchmark: events/s through the market data processor into the real Redis.

For each analyzer under test, every worker process pre-generates a simulated session with
``mdp_sim.Market``, packs it into envelopes of ``--batch`` events (as the listener does) and
feeds them in-process through the memory bus into a real :class:`~mdp_processor.Processor`
writing to the real Redis (MDC and WDC in database ``--db``): one state pipeline (the batches'
marks last) and one widget pipeline per flush, paced as the service paces them
(``mdp_processor.pacing``), acks after the write. The producer keeps the
queue topped up and stamps each envelope with its enqueue time, so "receipt lag" is
enqueue-to-written (queue wait at saturation included). By default the day's reference data is
cached before timing (steady state); ``--cold`` starts empty, so fetches from the simulator
compete for the same core.

Prints events/s per worker process and in aggregate, with p50/p99 lag, and the Redis server's
CPU per event over the timed span (``INFO cpu``: run it on a private ``redis-server`` for a
figure of its own), for the leaderboard analyzer (``A`` events) and the top-trades analyzer
(``T`` events). With ``--rvol-days N`` the leaderboard also gets time-of-day volume profiles
over N days (``MDP_RVOL_DAYS``), from the simulator's 5-minute bars; the time to build and
cache every symbol's profile (a day's first lookups) is printed apart, and the steady-state
figures can be compared with a run without. ``--router`` adds the router, which writes each
symbol's latest aggregate and trade documents: with it the processor runs what the default
``MDP_ANALYZERS`` runs on these events.
Not a test: the figures depend on the machine (2 shared cores here).

Usage::

    uv run python bench/processor.py [--events 300000] [--workers 1] [--symbols 3000]
        [--redis redis://127.0.0.1:6379 | --redis redis+cluster://127.0.0.1:7000]
    uv run python bench/processor.py --only A --rvol-days 20   # the same with RVol profiles
    uv run python bench/processor.py --only A --saturated-ceiling 0.025  # without the
        # saturated pacing: the ceiling a worker that keeps up has
    uv run python bench/processor.py --only A --symbols 3000 --events 600000 --pairs 3
        # one worker then two, three times: each pair's ratio, the median, the CPU model

Each worker prints how many of its flushes were paced for saturation (its consumer had not
waited for a batch for ``MDP_SATURATION_SECONDS``): the producer keeps the queue topped up,
so after the first second nearly all are.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as wall_time
from typing import Any, Final, cast

import msgspec

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_cache.client import close_redis, create_redis, discover, is_cluster, is_cluster_url
from mdp_cache.records import DailyBar
from mdp_cache.reference import ReferenceCache, daily_bar_from_agg
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.clock import ET, LiveClock, to_ns
from mdp_core.envelope import encode_envelope
from mdp_processor.pacing import DEFAULT_SATURATED_MAX_INTERVAL_SECONDS
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import MemoryBus, OutgoingBatch, Topology
from mdp_sim.market import Market
from mdp_sim.scenario import ScenarioConfig

DAY = date(2026, 3, 4)
#: How far ahead of the clock the replayed session may run (a day: all of it).
REPLAY_AHEAD_SECONDS = 86_400.0
START = wall_time(10, 0)


class OffsetClock(LiveClock):
    """The live clock shifted so that "now" is the simulated session's time."""

    def __init__(self, offset_ns: int) -> None:
        self.offset_ns = offset_ns

    def now_ns(self) -> int:
        """The simulated session's current instant."""
        return super().now_ns() + self.offset_ns


class MarketSource:
    """The simulator's reference data as a ``ReferenceSource``."""

    def __init__(self, market: Market) -> None:
        self.market = market

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        """The simulator's daily bars as records."""
        rows = self.market.daily_bars(symbol, start, end)
        return [bar for row in rows if (bar := daily_bar_from_agg(row)) is not None]

    async def free_float(self, symbol: str) -> int | None:
        """The simulator's free float."""
        row = self.market.free_float(symbol)
        value = None if row is None else row.get("free_float")
        return value if isinstance(value, int) else None

    async def slot_volumes(self, symbol: str, start: date, end: date) -> Sequence[tuple[int, int]]:
        """The simulator's 5-minute bars as ``(start_ms, volume)`` (the REST API's shape)."""
        rows = self.market.minute_bars(symbol, start, end, multiplier=5)
        return [(int(cast(int, r["t"])), int(cast(int, r["v"]))) for r in rows]


def generate(kind: str, count: int, symbols: int, seed: int) -> tuple[Market, list[list[bytes]]]:
    """At least ``count`` events of ``kind`` from the simulator, as raw JSON per event."""
    market = Market(
        ScenarioConfig(
            seed=seed, symbols=symbols, trading_day=DAY, start=START, quotes=False, news_per_hour=0
        )
    )
    raws: list[bytes] = []
    while len(raws) < count:
        update = market.take(200_000)
        raws += [msgspec.json.encode(e) for e in update.events if e["ev"] == kind]
    return market, [raws[:count]]


async def warm_up(
    args: argparse.Namespace, kind: str, reference: ReferenceCache, raws: list[bytes]
) -> float:
    """Cache the day's reference data (steady state, unless ``--cold``); the profiles' time.

    The reference data then is already in MDC and in this process, as on a running processor.
    """
    if not (args.warm and kind == "A"):
        return 0.0
    symbols = {msgspec.json.decode(raw)["sym"] for raw in raws}
    await asyncio.gather(*(reference.get(symbol, DAY) for symbol in symbols))
    if not args.rvol_days:
        return 0.0
    profiles_started = time.perf_counter()
    await asyncio.gather(*(reference.volume_profile(s, DAY) for s in symbols))
    return time.perf_counter() - profiles_started


async def run_one(
    args: argparse.Namespace, kind: str, worker: int, barrier: Any = None
) -> dict[str, Any]:
    """One worker's measurement: generate, feed, wait until everything is written.

    With ``barrier`` the timed part starts when every worker has generated its session and
    warmed up, so the workers' windows overlap and the aggregate is a concurrent rate.
    """
    market, (raws,) = generate(kind, args.events, args.symbols, seed=7 + worker)
    topology = Topology(prefix=f"bench.{worker}.")
    sim_start = to_ns(datetime.combine(DAY, START, tzinfo=ET))
    clock = OffsetClock(sim_start - LiveClock().now_ns())
    bus = MemoryBus(topology, clock=clock, max_messages=100_000)
    queue = topology.for_kind(kind)
    assert queue is not None
    run_id = uuid.uuid4().hex[:8]
    url = redis_url(args)
    mdc, wdc, ref = create_redis(url), create_redis(url), create_redis(url)
    analyzers: list[Any] = [LeaderboardAnalyzer() if kind == "A" else TopTradesAnalyzer()]
    if args.router:
        analyzers.append(MassiveDataAnalyzer())
    reference = ReferenceCache(MarketSource(market), ref, profile_days=args.rvol_days)
    profiles_seconds = await warm_up(args, kind, reference, raws)
    processor = Processor(
        bus.consumer(),
        analyzers,
        state=RedisState(mdc),
        widgets=WidgetWriter(wdc),
        reference=reference,
        clock=clock,
        # The session is replayed much faster than its clock runs: its later events are
        # minutes ahead of the clock, which the default tolerance (300 s) drops as bad.
        config=ProcessorConfig(
            instance=f"bench-{worker}-{run_id}",
            future_tolerance_seconds=REPLAY_AHEAD_SECONDS,
            flush_saturated_max_interval_seconds=args.saturated_ceiling,
        ),
    )
    batches = [
        (f"{run_id}:{i}", [msgspec.Raw(r) for r in raws[i : i + args.batch]])
        for i in range(0, len(raws), args.batch)
    ]
    publisher = bus.publisher()
    await publisher.start()
    total = len(raws)
    task = asyncio.create_task(processor.run())
    if barrier is not None:
        await asyncio.to_thread(barrier.wait)
    redis_cpu_started = await redis_cpu_seconds(mdc)
    wall_started = time.time()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for batch_id, events in batches:
        # Pacing the producer against the queue depth (not synchronisation): poll the depth.
        while bus.depth(queue) > args.depth:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        now = clock.now_ns()
        body = encode_envelope(
            kind=kind, source="bench", batch=batch_id, received_ns=now, events=events
        )
        publisher.publish(OutgoingBatch(queue, body, batch_id, now, len(events)))
        await asyncio.sleep(0)
    # Applied, or dropped ahead of the clock: such drops end the run with their count rather
    # than hang it. (Other bad events are bars an analyzer rejected after they were applied,
    # already in total_events; the session has no malformed events.)
    async with asyncio.timeout(600):
        await processor.wait_until(lambda s: s.total_events + s.bad_events["future"] >= total)
    elapsed = time.perf_counter() - started
    wall_ended = time.time()
    cpu = time.process_time() - cpu_started
    redis_cpu_ended = await redis_cpu_seconds(mdc)
    stats = processor.stats
    processor.stop()
    await task
    await close_redis(mdc)
    await close_redis(wdc)
    await close_redis(ref)
    return {
        "worker": worker,
        "events": total,
        "seconds": elapsed,
        "wall": (wall_started, wall_ended),
        "rate": total / elapsed,
        "cpu_us_per_event": cpu / total * 1e6,
        "flushes": stats.flushes,
        "saturated_flushes": stats.saturated_flushes,
        "state_ops": stats.flush_state_ops,
        "widget_writes": stats.flush_widget_writes,
        "lag_p50": stats.lag_receipt.percentile(0.5),
        "lag_p99": stats.lag_receipt.percentile(0.99),
        "dropped": sum(bus.dropped(q) for q in topology.queues),
        "bad_events": dict(stats.bad_events),
        "profiles_seconds": profiles_seconds,
        "redis_cpu": (redis_cpu_started, redis_cpu_ended),
    }


async def redis_cpu_seconds(client: Any) -> float | None:
    """The Redis server's CPU time so far (user + system, ``INFO cpu``); None on a cluster.

    Server-wide: on a shared server other clients' commands count too, so a private
    ``redis-server`` gives the benchmark's own figure.
    """
    if is_cluster(client):
        return None
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _child(args: argparse.Namespace, kind: str, worker: int, barrier: Any, out: Any) -> None:
    out.put(asyncio.run(run_one(args, kind, worker, barrier)))


def run(args: argparse.Namespace, kind: str) -> list[dict[str, Any]]:
    """Measure ``kind`` in ``args.workers`` processes started together."""
    if args.workers == 1:
        return [asyncio.run(run_one(args, kind, 0))]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(args.workers)
    out = context.Queue()
    processes = [
        context.Process(target=_child, args=(args, kind, i, barrier, out))
        for i in range(args.workers)
    ]
    for process in processes:
        process.start()
    results = [out.get() for _ in processes]
    for process in processes:
        process.join()
    return sorted(results, key=lambda r: r["worker"])


def main() -> None:
    """Parse the arguments, run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events per worker")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--symbols", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=100, help="events per envelope")
    parser.add_argument(
        "--db", type=int, default=11, help="Redis database the benchmark owns (flushed)"
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379",
        help="Redis server (database --db), or a Redis Cluster node as redis+cluster://host:port",
    )
    parser.add_argument("--only", choices=("A", "T"), default=None)
    parser.add_argument(
        "--rvol-days", type=int, default=0, help="trading days of RVol profiles (MDP_RVOL_DAYS)"
    )
    parser.add_argument(
        "--depth", type=int, default=20, help="queue depth (messages) the producer keeps"
    )
    parser.add_argument(
        "--saturated-ceiling",
        type=float,
        default=DEFAULT_SATURATED_MAX_INTERVAL_SECONDS,
        help="the pacing's ceiling in seconds while a worker is saturated "
        "(MDP_FLUSH_SATURATED_MAX_INTERVAL_SECONDS); 0.025 turns the mode off",
    )
    parser.add_argument(
        "--router",
        action="store_true",
        help="also run the router (the latest aggregate and trade documents), as a processor "
        "with the default MDP_ANALYZERS does",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="instead of --workers: N runs of one worker then two, alternating, each on an "
        "emptied database; prints each pair's ratio, their median and the model 2 w1 / (w2 + r2)",
    )
    parser.add_argument(
        "--cold",
        dest="warm",
        action="store_false",
        help="start with no reference data cached (fetches compete with processing)",
    )
    args = parser.parse_args()
    if args.pairs < 0:
        parser.error("--pairs must be 0 (off) or more")
    if args.pairs and args.workers != 1:
        parser.error("--pairs runs one worker and two itself: leave out --workers")
    if args.db in (0, 1, 15):
        parser.error("databases 0, 1 (live caches) and 15 (tests) are not for benchmarks")
    asyncio.run(flush_database(redis_url(args)))
    kinds = [args.only] if args.only else ["A", "T"]
    for kind in kinds:
        if args.pairs > 0:
            compare(args, kind)
        else:
            report(args, kind, run(args, kind))
    asyncio.run(flush_database(redis_url(args)))


_NAMES: Final = {"A": "leaderboard (aggregate events)", "T": "top trades (trade events)"}


def report(args: argparse.Namespace, kind: str, results: list[dict[str, Any]]) -> Measured:
    """Print one measurement's workers and aggregate; return its aggregate figures."""
    routed = " + router" if args.router else ""
    print(f"== {_NAMES[kind]}{routed}: {len(results)} worker(s), {args.events:,} events each")
    for r in results:
        print(
            f"  worker {r['worker']}: {r['rate']:>10,.0f} events/s  "
            f"({r['cpu_us_per_event']:.1f} us CPU/event, {r['flushes']} flushes "
            f"({r['saturated_flushes']} saturated), "
            f"{r['state_ops']:,} state ops, {r['widget_writes']:,} widget writes)  "
            f"lag p50 {r['lag_p50'] * 1000:.0f} ms  p99 {r['lag_p99'] * 1000:.0f} ms"
        )
        if r["bad_events"]:
            # "future": dropped unapplied, so the rate is not of the events asked for;
            # other reasons: applied, then rejected by an analyzer.
            print(f"  worker {r['worker']}: bad events by reason {r['bad_events']}")
    if kind == "A" and args.rvol_days:
        print(
            f"  RVol profiles ({args.rvol_days} days) of the symbols traded: built and "
            f"cached in {max(r['profiles_seconds'] for r in results):.1f} s "
            "(cold, before timing)"
        )
    measured = measure(results)
    print(f"  aggregate: {measured.rate:,.0f} events/s")
    if measured.redis_cpu is not None:
        print(
            f"  Redis: {measured.redis_us:.1f} us CPU/event "
            f"({measured.redis_cpu:.2f} CPU s over the span, server-wide INFO cpu)"
        )
    return measured


@dataclass(frozen=True, slots=True)
class Measured:
    """One measurement's aggregate: events/s, worker CPU per event, Redis CPU over the span."""

    events: int
    rate: float
    worker_us: float
    redis_cpu: float | None

    @property
    def redis_us(self) -> float | None:
        """Redis's CPU per event (None on a cluster, whose CPU is not read)."""
        return None if self.redis_cpu is None else self.redis_cpu / self.events * 1e6


def measure(results: list[dict[str, Any]]) -> Measured:
    """The aggregate of a measurement's workers: every event over the whole span."""
    # Every event over the span from the first worker's start to the last one's end.
    span = max(r["wall"][1] for r in results) - min(r["wall"][0] for r in results)
    events = sum(r["events"] for r in results)
    worker_us = sum(r["cpu_us_per_event"] * r["events"] for r in results) / events
    readings = [r["redis_cpu"] for r in results]
    redis_cpu: float | None = None
    if all(start is not None and end is not None for start, end in readings):
        # The workers' windows overlap (a barrier starts them): first start to last end.
        redis_cpu = max(end for _, end in readings) - min(start for start, _ in readings)
    return Measured(events, events / span, worker_us, redis_cpu)


def compare(args: argparse.Namespace, kind: str) -> None:
    """``--pairs``: one worker then two, alternating, and the ratios of each pair.

    Two runs on these shared cores minutes apart can differ by a third, so one pair says
    little; the median of several, and the model from the CPU figures, say more: with one
    worker's CPU per event w1, two workers' w2 and Redis's r2 (two workers), the ratio is
    2 w1 / (w2 + r2) when one worker is bound by its own CPU and two by the two cores.
    Pairs alternate which runs first.
    """
    ratios: list[float] = []
    for pair in range(1, args.pairs + 1):
        rates: dict[int, Measured] = {}
        # One then two, then two then one: a machine drifting over the series moves the two
        # kinds of run alike.
        for workers in (1, 2) if pair % 2 else (2, 1):
            asyncio.run(flush_database(redis_url(args)))
            rates[workers] = report(
                args, kind, run(argparse.Namespace(**{**vars(args), "workers": workers}), kind)
            )
        one, two = rates[1], rates[2]
        ratios.append(two.rate / one.rate)
        modelled = ""
        if two.redis_us is not None:
            # A model, not a bound: one worker at 1 / w1 events/s (it may wait on Redis, and
            # run slower), two workers and Redis sharing two cores at 2 / (w2 + r2). A worker's
            # CPU per event is not the same alone and side by side.
            model = 2 * one.worker_us / (two.worker_us + two.redis_us)
            modelled = (
                f", model 2 w1 / (w2 + r2) {model:.2f}x (w {one.worker_us:.1f} -> "
                f"{two.worker_us:.1f} us, r {two.redis_us:.1f} us an event)"
            )
        print(f"-- pair {pair}: two workers / one = {ratios[-1]:.2f}x{modelled}")
    print(
        f"-- {_NAMES[kind]}: median ratio of {len(ratios)} pairs {statistics.median(ratios):.2f}x"
    )


def redis_url(args: argparse.Namespace) -> str:
    """The benchmark's database on ``--redis`` (a cluster has database 0 only)."""
    return args.redis if is_cluster_url(args.redis) else f"{args.redis}/{args.db}"


async def flush_database(url: str) -> None:
    """Empty the benchmark's own database (before: no old rows; after: no leftovers).

    On a cluster every master is flushed: run it on a cluster of its own.
    """
    client = create_redis(url)
    if is_cluster(client):
        await discover(client)
        await client.flushall(target_nodes="primaries")  # type: ignore[call-arg] # RedisCluster
    else:
        await client.flushdb()
    await close_redis(client)


if __name__ == "__main__":
    main()
