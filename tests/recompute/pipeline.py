"""The real pipeline on loopback, fed through the recording proxy, and its drain.

simulator (Massive websocket + REST) -> :class:`~tape.RecordingProxy` -> listener (the official
``massive`` client) -> RabbitMQ -> processor replicas -> Redis -> scanner (DailyRangeAnalyzer).

Every component is the production class with the production analyzers, run in this process on
its own connections (each replica has its own AMQP consumer and Redis clients, as a worker
process has). One thing is not as in production: the **clock** of the processors and the scanner
is the simulator's market clock (:class:`MarketClock`) rather than the wall clock, because the
simulated day is a fixed day in the past and both components decide the trading day, the 09:30
switch of the gainers board and the 04:00 roll from their clock. That is also why they run in
process: the worker and scanner entry points hard-wire the wall clock.

Nothing here is the oracle: :mod:`recompute` knows nothing of this module's imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as wall_time
from typing import Any, ClassVar

import aiohttp
import msgspec
from redis.asyncio import Redis

from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_analyzers.typing import Output
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import (
    FEED_ALERTS_HOD,
    FEED_ALERTS_LOD,
    FEED_DAILY_RANGE,
    FEED_QUOTE,
    FEED_SCANNER_TOP_GAINERS,
    FEED_SCANNER_TOP_GAPPERS,
    FEED_SCANNER_TOP_VOLUME,
    FEED_TOP_TRADES,
    FEED_TRADE_STATS,
)
from mdp_cache.ownership import RedisOwnership
from mdp_cache.reference import ReferenceCache
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ET, LiveClock, from_ns
from mdp_core.events import MarketEvent, MinuteAggregate, SecondAggregate
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_listener import ListenerSettings, MassiveListener
from mdp_processor.massive_reference import MassiveReferenceSource
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.settings import ProcessorSettings
from mdp_processor.worker import build_analyzers
from mdp_queues import AmqpConsumer, AmqpPublisher, Topology
from mdp_queues.nodes import broker_urls
from mdp_scanner import Scanner
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import SimConfig, SimServers

from .tape import FrameFaults, RecordingProxy

__all__ = ["WDC_BOARDS", "Applied", "BarKey", "Observed", "Pipeline", "Variant"]

#: Every bar and LULD event; the trades are subscribed by :meth:`Variant.topics`.
BAR_TOPICS = ("A.*", "AM.*", "LULD.*")
#: Board name -> WDC feed name, spelled from the catalogue.
WDC_BOARDS = {
    "top_volume": FEED_SCANNER_TOP_VOLUME.name(),
    "top_gappers": FEED_SCANNER_TOP_GAPPERS.name(),
    "top_gainers": FEED_SCANNER_TOP_GAINERS.name(),
}
#: A message on a quote channel the scanner cannot decode: it marks the end of the drain.
DRAIN_CHANNEL = FEED_QUOTE.name(symbol="ZZDRAIN")
_PAUSED = 1e-9  # simulated seconds per real second while the pipeline starts
_QUEUE_TTL_MS = 60_000  # see Pipeline.__init__
_FLUSH_SECONDS = 0.05
_QUIET_FLUSHES = 3
#: Simulated seconds per real second once the tape is final (see :meth:`Pipeline.stream`).
_DRAIN_SPEED = 1.0


@dataclass(frozen=True, slots=True)
class Variant:
    """One run: when, how long, how many replicas, which faults."""

    name: str
    day: date
    start: str
    replicas: int = 1
    partitions: int = 1
    faults: FrameFaults = field(default_factory=FrameFaults)
    symbols: int = 24
    seed: int = 13
    speed: float = 30.0
    sim_seconds: float = 120.0
    board_size: int = 100
    #: Symbols whose trades are subscribed (the first of the universe), None for all: trades
    #: outnumber bars several times, and a long run needs only some to check them.
    trade_symbols: int | None = None

    def topics(self, symbols: Sequence[str]) -> tuple[str, ...]:
        """What the listener subscribes: every bar, and the trades of ``trade_symbols``."""
        if self.trade_symbols is None:
            return (*BAR_TOPICS, "T.*")
        return (*BAR_TOPICS, *(f"T.{symbol}" for symbol in sorted(symbols)[: self.trade_symbols]))

    @property
    def start_time(self) -> wall_time:
        hour, minute = (int(part) for part in self.start.split(":"))
        return wall_time(hour, minute)


class MarketClock:
    """The simulator's market time as ``now``; real time for intervals and sleeps."""

    def __init__(self, sim: SimServers) -> None:
        self._sim = sim

    def now_ns(self) -> int:
        return self._sim.market.now_ns

    def now(self) -> datetime:
        return from_ns(self.now_ns())

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(slots=True)
class Observed:
    """What WDC serves after the drain."""

    boards: dict[str, dict[str, Any] | None]
    ranges: dict[str, dict[str, Any]]
    hod: list[dict[str, Any]]
    lod: list[dict[str, Any]]
    #: ``trades:top``, and each symbol's ``trades:stats:{symbol}``.
    top_trades: dict[str, Any] | None = None
    trade_stats: dict[str, dict[str, Any]] = field(default_factory=dict)


async def eventually(what: str, predicate: Callable[[], Awaitable[bool]], within: float) -> None:
    """Wait until ``predicate()`` holds; fail saying ``what`` did not happen in time.

    The components expose counters, not change notifications, so the state is re-checked every
    10 ms; the deadline, not the poll interval, bounds the wait.
    """
    try:
        async with asyncio.timeout(within):
            while not await predicate():  # noqa: ASYNC110 - counters have no change event
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"drain: {what} did not happen within {within:.0f} s") from None


#: A bar's identity on the tape and in a processor: kind, symbol, start and end (ms).
BarKey = tuple[str, str, int, int]


class Applied:
    """An extra analyzer recording every ``A``/``AM`` bar its replica applied (writes nothing).

    Lets a test with losses name which bars reached the processors, not only how many.
    """

    name: ClassVar[str] = "applied"
    consumes: ClassVar[frozenset[str]] = frozenset({"A", "AM"})

    def __init__(self) -> None:
        self.bars: set[BarKey] = set()

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        del now_ns
        for event in inputs:
            if isinstance(event, SecondAggregate | MinuteAggregate):
                self.bars.add((event.EV, event.symbol, event.start_ms, event.end_ms))

    def collect(self, now_ns: int) -> Output:
        del now_ns
        return Output()


def _rotated(urls: Sequence[str], start: int) -> str:
    """The node URLs from ``start`` on, wrapping (one URL: itself): clients spread over nodes."""
    first = start % len(urls)
    return ",".join([*urls[first:], *urls[:first]])


class Replica:
    """One processor with its own AMQP consumer and Redis clients, as one worker has."""

    def __init__(  # noqa: PLR0917 - one worker's connections and its recorder
        self,
        name: str,
        amqp_url: str,
        topology: Topology,
        redis_url: str,
        sim: SimServers,
        applied: Applied | None = None,
    ) -> None:
        # With partitioned queues each replica owns its share of the symbols (leases in MDC).
        settings = load(ProcessorSettings, {}, service_name="processor")
        self.mdc = create_redis(redis_url)
        self.ref = create_redis(redis_url)
        self.wdc = create_redis(redis_url)
        source = MassiveReferenceSource(sim.api_key, sim.rest_base)
        self.consumer = AmqpConsumer(amqp_url, topology, prefetch=settings.prefetch)
        self.processor = Processor(
            self.consumer,
            [*build_analyzers(settings), *([applied] if applied is not None else [])],
            state=RedisState(self.mdc),
            widgets=WidgetWriter(self.wdc),
            reference=ReferenceCache(source, self.ref),
            clock=MarketClock(sim),
            config=ProcessorConfig(
                flush_interval_seconds=_FLUSH_SECONDS,
                batch_messages=settings.batch_messages,
                instance=name,
                ownership_interval_seconds=0.2,
                lease_ttl_seconds=1.0,
            ),
            ownership=RedisOwnership(self.mdc, "recompute"),
        )
        self.applied = applied
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.processor.run())
        async with asyncio.timeout(15):
            await self.processor.wait_until(lambda s: self.processor.consumer.connected)

    async def stop(self) -> None:
        self.processor.stop()
        if self.task is not None:
            await self.task
        for client in (self.mdc, self.ref, self.wdc):
            await close_redis(client)

    def fingerprint(self) -> tuple[int, int, int, int]:
        """Flushes done and what they carried so far (board compositions aside, which rewrite
        the board documents every simulated second whether or not anything changed)."""
        stats = self.processor.stats
        return (stats.flushes, stats.flush_state_ops, stats.messages, stats.last_flush_events)


class Pipeline:
    """One variant's pipeline: start, stream for the variant's window, drain, read WDC.

    ``amqp_url`` may list a RabbitMQ cluster's nodes (comma-separated): replica ``n`` then
    lists them from node ``n`` on and the listener from the node after the last replica's, so
    the clients sit on different nodes. ``mdq_cluster`` declares the queues for a cluster
    (transient, spread over the nodes) and turns publisher confirms on, as the cluster
    deployment does, so that a batch sent to a queue lost with its node is counted.
    ``record_applied`` gives every replica an :class:`Applied` recorder.
    """

    def __init__(
        self,
        variant: Variant,
        amqp_url: str,
        prefix: str,
        redis_url: str,
        *,
        mdq_cluster: bool = False,
        record_applied: bool = False,
    ) -> None:
        self.variant = variant
        self.amqp_url = amqp_url
        self.amqp_urls = broker_urls(amqp_url)
        self.record_applied = record_applied
        # Queues that keep market data a minute, not 5 s: what is measured here is exactness,
        # and the rest of a test session can load these two cores so much that a batch waits
        # past 5 s before the publisher sends it (it was dropped as expired, and counted, and
        # the drain waited for it in vain). Shedding stale data is tested by the chaos tests.
        self.topology = Topology(
            prefix=prefix,
            partitions=variant.partitions,
            cluster=mdq_cluster,
            ttl_ms=_QUEUE_TTL_MS,
        )
        self.redis_url = redis_url
        self.sim = SimServers(
            SimConfig(
                scenario=ScenarioConfig(
                    seed=variant.seed,
                    symbols=variant.symbols,
                    trading_day=variant.day,
                    start=variant.start_time,
                    quotes=False,
                    news_per_hour=0.0,
                ),
                speed=_PAUSED,
            )
        )
        self.proxy: RecordingProxy | None = None
        self.replicas: list[Replica] = []
        self.ranges = DailyRangeAnalyzer()
        self.scanner: Scanner | None = None
        self.listener: MassiveListener | None = None
        self.listener_metrics = Metrics("listener")
        self.publisher = AmqpPublisher(
            _rotated(self.amqp_urls, variant.replicas), self.topology, confirms=mdq_cluster
        )
        self.redis: Redis = create_redis(redis_url)
        #: The scanner's and the listener's tasks (the replicas keep their own).
        self.tasks: list[asyncio.Task[None]] = []
        self._stops: list[Callable[[], Awaitable[None]]] = []

    # --- run ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Pipeline]:
        """Start everything (the market paused until the listener is subscribed); stop after."""
        try:
            await self._start()
            yield self
        finally:
            for stop in reversed(self._stops):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(15):
                        await stop()
            await close_redis(self.redis)

    async def _start(self) -> None:
        await self.sim.start()
        self._stops.append(self.sim.stop)
        self.proxy = RecordingProxy(self.sim.massive_feed, self.variant.faults)
        await self.proxy.start()
        self._stops.append(self.proxy.close)
        for n in range(self.variant.replicas):
            replica = Replica(
                f"r{n}",
                _rotated(self.amqp_urls, n),
                self.topology,
                self.redis_url,
                self.sim,
                Applied() if self.record_applied else None,
            )
            await replica.start()
            self.replicas.append(replica)
            self._stops.append(replica.stop)
        scanner_redis = create_redis(self.redis_url)
        self.scanner = Scanner(
            scanner_redis,
            [self.ranges],
            clock=MarketClock(self.sim),
            backoff=BackoffPolicy(0.05, 10.0, jitter=0.5),
        )
        scanner_stop = asyncio.Event()
        scanner_task = asyncio.create_task(self.scanner.run(scanner_stop))
        self.tasks.append(scanner_task)

        async def stop_scanner() -> None:
            scanner_stop.set()
            await scanner_task
            await close_redis(scanner_redis)

        self._stops.append(stop_scanner)
        assert await self.scanner.wait_ready(15), "the scanner did not subscribe"
        await self.publisher.start()
        self._stops.append(self.publisher.close)
        topics = self.variant.topics(list(self.sim.market.profiles))
        settings = load(
            ListenerSettings,
            {},
            api_key=Secret(self.sim.api_key),
            feed=self.proxy.feed,
            secure=False,
            always_on=True,
            topics=topics,
            stale_after_seconds=120.0,
            batch_interval_seconds=0.01,
            heartbeat_enabled=False,
        )
        self.listener = MassiveListener(
            settings, self.publisher, LiveClock(), self.listener_metrics
        )
        listener_stop = asyncio.Event()
        listener_task = asyncio.create_task(self.listener.run(listener_stop))
        self.tasks.append(listener_task)

        async def stop_listener() -> None:
            listener_stop.set()
            async with asyncio.timeout(10):
                await listener_task

        self._stops.append(stop_listener)
        massive = self.sim.massive
        async with asyncio.timeout(15):
            await massive.watch.wait_for(
                lambda: sum(len(s) for s in massive.subscriptions()) == len(topics)
            )

    async def stream(self) -> None:
        """Let the market run for the variant's window, then freeze the tape."""
        await self.advance(self.variant.sim_seconds)
        assert self.proxy is not None
        await self.proxy.freeze()
        # The drain's compositions stamp the top trades board with the market's time: at the
        # stream's speed a drain of seconds would slide its 5-minute window past the trades.
        self.sim.set_pacing(_DRAIN_SPEED)

    async def advance(self, sim_seconds: float) -> None:
        """Let the market run (at the variant's speed) for ``sim_seconds`` of market time."""
        variant = self.variant
        self.sim.set_pacing(variant.speed)
        market = self.sim.market
        until = market.now_ns + int(sim_seconds * 1e9)

        async def window_over() -> bool:
            return market.now_ns >= until

        await eventually("the simulated window", window_over, sim_seconds / variant.speed + 30)

    # --- drain ----------------------------------------------------------------------------

    def events_on_tape(self) -> int:
        assert self.proxy is not None
        total = 0
        for frame in self.proxy.tape:
            messages = msgspec.json.decode(frame.text)
            if isinstance(messages, list):
                total += sum(1 for m in messages if isinstance(m, dict) and m.get("ev") != "status")
        return total

    async def drain(self, within: float = 45.0) -> None:
        """Wait until every component has written everything the tape carried (bounded)."""
        on_tape = self.events_on_tape()
        received = self.listener_metrics.counter("events_in")

        async def listener_has_all() -> bool:
            return received.total >= on_tape

        await eventually(f"the listener receiving {on_tape} events", listener_has_all, within)
        stats = self.publisher.stats

        async def all_published() -> bool:
            return stats.total_published_events >= received.total

        try:
            await eventually("the listener publishing everything", all_published, within)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; events dropped: {stats.dropped_events}") from None

        async def all_applied() -> bool:
            applied = sum(
                r.processor.stats.total_events + sum(r.processor.stats.bad_events.values())
                for r in self.replicas
            )
            return applied >= stats.total_published_events

        await eventually("the processors applying every event", all_applied, within)
        await self.settle(within)

    async def settle(self, within: float = 45.0, *, scanner_lost: bool = False) -> None:
        """Once the processors have every event they will get: every replica flushed with
        nothing left to write, a board composition after that, and the scanner through every
        quote record published before a marker (the end of a drain, or of a lossy stream).

        ``scanner_lost``: the scanner lost its Redis link on the way, so quote records it had
        counted in a batch that was cut off were never processed (``messages`` stays above
        ``processed``); a second marker then shows the first one's batch was fully handled.
        """
        await self._quiet_flushes(within)
        quiet_ms = self.sim.market.now_ns // 1_000_000

        async def composed_after() -> bool:
            for name in (*WDC_BOARDS.values(), FEED_TOP_TRADES.name()):
                raw = await self.redis.get(name)
                if raw is None or msgspec.json.decode(raw).get("as_of_ms", 0) <= quiet_ms:
                    return False
            return True

        await eventually("a board composition after the last write", composed_after, within)
        markers = self.ranges.rejected["invalid_json"]
        await self.redis.publish(DRAIN_CHANNEL, b"end of the drain")
        scanner = self.scanner
        assert scanner is not None

        async def scanner_done() -> bool:
            return self.ranges.rejected["invalid_json"] > markers and (
                scanner_lost or scanner.stats.processed == scanner.stats.messages
            )

        async def second_marker() -> bool:
            return self.ranges.rejected["invalid_json"] > markers + 1

        try:
            await eventually("the scanner processing every quote record", scanner_done, within)
            if scanner_lost:
                await self.redis.publish(DRAIN_CHANNEL, b"end of the drain, again")
                await eventually("the scanner processing the second marker", second_marker, within)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: {scanner.stats}, rejected {self.ranges.rejected}"
            ) from None

    async def _quiet_flushes(self, within: float) -> None:
        """Every replica did a few flushes in a row that wrote nothing (reference data in)."""
        quiet = dict.fromkeys(range(len(self.replicas)), 0)
        last = [r.fingerprint() for r in self.replicas]

        async def all_quiet() -> bool:
            for n, replica in enumerate(self.replicas):
                now = replica.fingerprint()
                if now[0] == last[n][0]:
                    continue
                quiet[n] = quiet[n] + 1 if now[1:] == (*last[n][1:3], 0) else 0
                last[n] = now
            return all(count >= _QUIET_FLUSHES for count in quiet.values())

        await eventually("quiet flushes", all_quiet, within)

    # --- reading --------------------------------------------------------------------------

    async def observed(self) -> Observed:
        """The boards, every range document and both alert lists, as WDC serves them."""
        boards: dict[str, dict[str, Any] | None] = {}
        for board, name in WDC_BOARDS.items():
            raw = await self.redis.get(name)
            boards[board] = None if raw is None else msgspec.json.decode(raw)
        ranges = await self._by_symbol(FEED_DAILY_RANGE.pattern)
        hod = [
            msgspec.json.decode(a) for a in await self.redis.lrange(FEED_ALERTS_HOD.name(), 0, -1)
        ]
        lod = [
            msgspec.json.decode(a) for a in await self.redis.lrange(FEED_ALERTS_LOD.name(), 0, -1)
        ]
        raw_top = await self.redis.get(FEED_TOP_TRADES.name())
        stats = await self._by_symbol(FEED_TRADE_STATS.pattern)
        return Observed(
            boards=boards,
            ranges=ranges,
            hod=hod,
            lod=lod,
            top_trades=None if raw_top is None else msgspec.json.decode(raw_top),
            trade_stats=stats,
        )

    async def _by_symbol(self, pattern: str) -> dict[str, dict[str, Any]]:
        """Every document of a per-symbol feed, by its ``symbol``."""
        found: dict[str, dict[str, Any]] = {}
        async for key in self.redis.scan_iter(match=pattern, count=1000):
            raw = await self.redis.get(key)
            if raw is not None:
                doc = msgspec.json.decode(raw)
                found[str(doc["symbol"])] = doc
        return found

    async def previous_closes(self, symbols: set[str]) -> dict[str, float]:
        """Each symbol's previous close, as the simulator's REST ``/prev`` endpoint answers."""
        closes: dict[str, float] = {}
        headers = {"Authorization": f"Bearer {self.sim.api_key}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for symbol in sorted(symbols):
                url = f"{self.sim.rest_base}/v2/aggs/ticker/{symbol}/prev"
                async with http.get(url) as response:
                    response.raise_for_status()
                    body = await response.json()
                results = body.get("results") or []
                if results and isinstance(results[0].get("c"), int | float):
                    closes[symbol] = float(results[0]["c"])
        return closes

    def describe(self) -> str:
        """One line on what the run carried (for failure messages and the report)."""
        assert self.proxy is not None
        counters = self.proxy.counters
        applied = [r.processor.stats.total_events for r in self.replicas]
        start = from_ns(self.sim.market.now_ns, ET).strftime("%H:%M:%S")
        return (
            f"{self.variant.name}: {len(self.proxy.tape)} frames, {self.events_on_tape()} "
            f"events on tape; {counters.duplicated} duplicated, {counters.reordered} "
            f"reordered, op dropped from {counters.op_dropped} bars, ids blanked from "
            f"{counters.ids_blanked} trades; applied per replica "
            f"{applied}; market at {start} ET after the drain"
        )
