"""``mdp demo``: the whole platform on one machine, in one process.

The same component classes the services run are wired here in one event loop: the Massive and
Finlight simulators, the listeners, the processors, the scanner, the WDS and the SCP. Only the
transports differ from a deployment: an in-process queue instead of RabbitMQ and an embedded
Redis-compatible store, unless ``--amqp-url`` / ``--redis-url`` point at real ones. Analyzers
follow the simulated market clock (the market can start at 03:59 ET whatever the hour here),
transports keep real time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import date, time
from importlib.metadata import version
from typing import Any

from redis.asyncio import Redis

from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_analyzers.registry import create_feed_analyzer, create_market_analyzer
from mdp_analyzers.state import MemoryState, StateBackend
from mdp_cache.client import close_redis, create_redis
from mdp_cache.control import RuntimeState
from mdp_cache.reference import ReferenceCache
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.calendar import MarketCalendar
from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger, quiet_vendor_loggers
from mdp_core.settings import Secret, load, resolve_finlight_key, resolve_massive_key
from mdp_core.telemetry import Metrics
from mdp_listener.control import mount_control
from mdp_listener.listener import MassiveListener
from mdp_listener.metrics import FAMILIES as LISTENER_FAMILIES
from mdp_listener.settings import ListenerSettings
from mdp_news_processor.processor import NewsProcessor
from mdp_platform.embedded import EmbeddedRedis, free_port, port_taken
from mdp_platform.feeds import FeedPlan, real_feeds, simulated_feeds
from mdp_platform.news_feed import start_news_listener
from mdp_platform.settings import DemoSettings
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import AmqpConsumer, AmqpPublisher, Consumer, MemoryBus, Publisher, Topology
from mdp_runtime import HealthServer, RuntimeControl, component_heartbeat
from mdp_scanner.scanner import Scanner
from mdp_scp.app import ControlPlane
from mdp_scp.passwords import hash_password
from mdp_scp.settings import ScpSettings
from mdp_scp.users import User
from mdp_sim.market import not_a_trading_day
from mdp_sim.scenario import ScenarioConfig, ScenarioError
from mdp_sim.server import SimConfig, SimServers
from mdp_wds.server import WidgetServer
from mdp_wds.settings import WdsSettings

__all__ = ["Demo", "DemoError", "DemoOptions", "DemoUsageError", "run_demo_command"]

_log = get_logger("mdp_platform.demo")

#: How long one step of the stop (a server, a client, the simulators, the store) may take
#: before it is abandoned and named (``demo_stop_step_stuck``): a stop must always end.
STOP_STEP_SECONDS = 15.0


def bounded_step(
    name: str, step: Callable[[], Awaitable[object]], seconds: float = STOP_STEP_SECONDS
) -> Callable[[], Awaitable[None]]:
    """``step`` for the stop's exit stack, abandoned after ``seconds`` and named in the log.

    The steps after it still run. A ``TimeoutError`` of the step's own is raised as is.
    """

    async def run() -> None:
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                await step()
        except TimeoutError:
            if not deadline.expired():
                raise
            _log.error("demo_stop_step_stuck", step=name, seconds=seconds)

    return run


_NO_ENV: Mapping[str, str] = {}
# The demo's control plane keeps users, sessions and watchlists in an embedded SQLite database
# in memory: nothing to set up, nothing left behind.
DEMO_DATABASE_URL = "sqlite:///:memory:"
#: The market analyzers of the demo's processor, by registered name.
MARKET_ANALYZERS = ("router", "leaderboard", "top_trades")
SCANNER_ANALYZERS = ("daily_range", "unusual_volume", "news_movers", "halt_alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    """What the demo runs; built from the command line, or directly by tests."""

    symbols: int = 300
    speed: float = 5.0
    start: time = time(9, 28)
    day: date | None = None
    seed: int = 7
    news_per_hour: float = 600.0
    amqp_url: str | None = None
    redis_url: str | None = None
    fakeredis: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    wds_port: int = 4202
    admin_password: str | None = None
    queue_prefix: str = "mdp-demo."
    heartbeat_seconds: float = 2.0
    real_feeds: bool = False
    massive_key: Secret | None = None
    finlight_key: Secret | None = None


class DemoError(Exception):
    """The demo cannot start as asked (a message for the user, not a bug)."""


class DemoUsageError(DemoError):
    """An option asks for what cannot work (a closed day, a taken port): exit code 2."""


@dataclass(slots=True)
class _Running:
    """What the demo started, for the banner, the tests and the shutdown."""

    dashboard_url: str = ""
    wds_url: str = ""
    admin_user: str = "admin"
    admin_password: str = ""
    #: Whether the password came from the options (else it was made up for this run).
    password_chosen: bool = False
    redis_kind: str = ""
    queue_kind: str = ""
    clients: list[Redis] = field(default_factory=list)


class Demo:
    """The platform, started component by component, stopped in reverse order.

    Args:
        options: what to run.
        progress: called with one line per step while starting (printed by the CLI).
    """

    def __init__(self, options: DemoOptions, progress: Callable[[str], None] = print) -> None:
        self.options = options
        self._progress = progress
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []
        self.info = _Running()
        self.sim: SimServers | None = None
        self.processor: Processor | None = None
        self.news_processor: NewsProcessor | None = None
        self.scanner: Scanner | None = None
        self.listener: MassiveListener | None = None
        self.wds: WidgetServer | None = None
        self.scp: ControlPlane | None = None
        self.wdc: Redis | None = None
        self.mdc: Redis | None = None
        self._stop = asyncio.Event()

    # --- start --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; on failure, stop what was started and re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    def check(self, calendar: MarketCalendar) -> None:
        """Refuse, before starting anything, what cannot work: a closed day, a taken port.

        Raises:
            DemoUsageError: one line naming the option to change.
        """
        o = self.options
        if o.day is not None and not o.real_feeds:
            problem = not_a_trading_day(o.day, calendar)
            if problem is not None:
                raise DemoUsageError(f"--day {problem}")
        if o.port and o.port == o.wds_port:
            msg = f"--port and --wds-port are both {o.port}; give them different ports"
            raise DemoUsageError(msg)
        for option, port in (("--port", o.port), ("--wds-port", o.wds_port)):
            if port and port_taken(o.host, port):
                msg = (
                    f"port {port} on {o.host} is in use; choose another with {option} "
                    "(0 picks a free one)"
                )
                raise DemoUsageError(msg)

    async def _start(self) -> None:  # noqa: PLR0915 - one step per component, in order
        o = self.options
        calendar = MarketCalendar()
        self.check(calendar)
        plan = await self._feeds()
        market_clock = plan.market_clock
        real_clock = LiveClock()

        mdc_url, wdc_url = await self._redis_urls()
        self.mdc = self._redis(mdc_url)
        self.wdc = self._redis(wdc_url)
        self._progress(f"Redis: {self.info.redis_kind} (MDC and WDC in separate databases)")

        topology = Topology(prefix=o.queue_prefix)
        publisher, market_consumer, news_consumer = await self._bus(topology)
        self._progress(f"queues: {self.info.queue_kind}")

        token_secret = secrets.token_urlsafe(32)
        # The WDS must know the dashboard's origin before either binds: fix both ports now.
        scp_port = o.port or free_port(o.host)
        wds_port = o.wds_port or free_port(o.host)
        origins = tuple(
            f"http://{host}:{scp_port}"
            for host in dict.fromkeys((o.host, "127.0.0.1", "localhost"))
        )
        wds = WidgetServer(
            load(
                WdsSettings, _NO_ENV, host=o.host, port=wds_port, wdc_redis_url=wdc_url,
                mdc_redis_url=mdc_url, token_secret=Secret(token_secret), allowed_origins=origins,
            ),
            clock=real_clock,
        )  # fmt: skip
        await wds.start()
        self.wds = wds
        self._on_stop("widget service", self._stop_wds)
        self.info.wds_url = wds.url
        self._progress(f"widget data service: {wds.url}")
        self._beat(
            "widget-service",
            lambda: self.wds.stats.as_dict() if self.wds else {},
            lambda: "draining" if self.wds and self.wds.draining else "running",
        )
        self._follow("widget-service", self._wds_state)

        analyzers = [create_market_analyzer(name, calendar=calendar) for name in MARKET_ANALYZERS]
        processor = Processor(
            market_consumer,
            analyzers,
            state=self._state_backend(),
            widgets=WidgetWriter(self.wdc),
            # Time-of-day RVol from the simulator's consistent history (20 trading days).
            reference=ReferenceCache(plan.reference, self.mdc, profile_days=20),
            clock=market_clock,
            config=ProcessorConfig(flush_interval_seconds=0.1, instance="demo-processor"),
        )
        self.processor = processor
        self._spawn(processor.run(), "processor", stop=processor.stop)
        self._beat("processor", processor.stats.snapshot, lambda: _word(processor.paused, "paused"))
        self._follow("processor", processor.set_runtime_state)

        news = NewsProcessor(
            news_consumer, topology.news, WidgetWriter(self.wdc), FinlightDataAnalyzer(),
            clock=real_clock, metrics=Metrics("news-processor"),
        )  # fmt: skip
        self.news_processor = news
        self._spawn(news.run(self._stop), "news processor")
        self._beat("news-processor", news.status)

        scanner = Scanner(
            self.wdc,
            [create_feed_analyzer(name, calendar=calendar) for name in SCANNER_ANALYZERS],
            clock=market_clock,
        )
        self.scanner = scanner
        self._spawn(scanner.run(self._stop), "scanner")
        self._beat("scanner", scanner.metrics_snapshot, lambda: _word(scanner.paused, "paused"))
        self._follow("scanner", scanner.set_runtime_state)
        self._progress("processors and scanner running")

        control_token = secrets.token_urlsafe(24)
        listener_settings = load(
            ListenerSettings, _NO_ENV, **plan.listener, heartbeat_enabled=False, health_port=0,
            control_token=Secret(control_token), mdc_redis_url=mdc_url,
        )  # fmt: skip
        listener = MassiveListener(listener_settings, publisher, real_clock, Metrics("listener"))
        self.listener = listener
        health = HealthServer(
            "127.0.0.1", 0, service="listener", version=version("mdp-listener"),
            metrics_snapshot=listener.metrics_snapshot, metric_families=LISTENER_FAMILIES,
            readiness={"upstream": lambda: listener.streaming}, control_token=control_token,
        )  # fmt: skip
        mount_control(health, listener)
        await health.start()
        self._on_stop("health server", health.stop)
        self._spawn(listener.run(self._stop), "listener")
        self._beat("listener", listener.status, lambda: str(listener.state))
        if plan.news is not None:
            news_listener, task = start_news_listener(plan.news, publisher, real_clock, self._stop)
            self._tasks.append(task)
            self._beat("news-listener", news_listener.status, lambda: str(news_listener.state))
        self._progress(plan.description)

        scp = ControlPlane(
            load(
                ScpSettings, _NO_ENV, host=o.host, port=scp_port, wds_url=wds.url,
                wds_token_secret=Secret(token_secret), mdc_redis_url=mdc_url,
                listener_control_url=health.url, listener_control_token=Secret(control_token),
                wdc_redis_url=wdc_url, database_url=Secret(DEMO_DATABASE_URL),
            ),
            redis=self.mdc,
            revocations=self.wdc,  # type: ignore[arg-type] # redis-py types score bounds widely
            market_clock=market_clock,
            market_speed=1.0 if o.real_feeds else o.speed,
            calendar=calendar,
        )  # fmt: skip
        if o.admin_password:
            scp.users.add(User(self.info.admin_user, "admin", hash_password(o.admin_password)))
            self.info.admin_password = o.admin_password
            self.info.password_chosen = True
        else:
            self.info.admin_password = scp.create_first_admin(self.info.admin_user)
        await scp.start()
        self._on_stop("control plane", scp.stop)
        self.scp = scp
        self.info.dashboard_url = scp.url

    async def _redis_urls(self) -> tuple[str, str]:
        o = self.options
        if o.redis_url:
            self.info.redis_kind = "external"
            return _with_db(o.redis_url, 0), _with_db(o.redis_url, 1)
        store = EmbeddedRedis(prefer="fakeredis" if o.fakeredis else "auto")
        await store.start()
        self._on_stop("embedded redis", store.stop)
        self.info.redis_kind = f"embedded {store.kind}"
        return store.url(0), store.url(1)

    def _state_backend(self) -> StateBackend:
        """Analyzer state in MDC; in process memory when the store is fakeredis.

        The Redis state backend merges rows with a Lua script that needs Redis's built-in
        ``cmsgpack``, which fakeredis lacks. One in-process processor does not need the
        cross-replica merge anyway: the memory backend applies the same operations.
        """
        if self.info.redis_kind.endswith("fakeredis"):
            return MemoryState()
        assert self.mdc is not None
        return RedisState(self.mdc)

    def _redis(self, url: str) -> Redis:
        client = create_redis(url, client_name="mdp-demo")
        self._on_stop("redis client", lambda: close_redis(client))
        return client

    async def _bus(self, topology: Topology) -> tuple[Publisher, Consumer, Consumer]:
        url = self.options.amqp_url
        if url is None:
            bus = MemoryBus(topology)
            self.info.queue_kind = "in-process"
            parts: tuple[Publisher, Consumer, Consumer] = (
                bus.publisher(),
                bus.consumer(),
                bus.consumer(),
            )
            for part in parts:
                await part.start()
                self._on_stop("bus", part.close)
            return parts
        publisher = AmqpPublisher(url, topology, app_id="mdp-demo", on_mismatch="recreate")
        market = AmqpConsumer(url, topology, on_mismatch="recreate")
        news = AmqpConsumer(url, topology, prefetch=20, on_mismatch="recreate")
        for part in (publisher, market, news):
            await part.start()
            self._on_stop("bus", part.close)
        self.info.queue_kind = "RabbitMQ"
        return publisher, market, news

    async def _feeds(self) -> FeedPlan:
        o = self.options
        if o.real_feeds:
            if o.massive_key is None:
                msg = "--real-feeds needs a Massive key: set MASSIVE_API_KEY (or POLYGON_API_KEY)"
                raise DemoError(msg)
            return real_feeds(o.massive_key, o.finlight_key)
        sim = SimServers(
            SimConfig(
                scenario=ScenarioConfig(
                    seed=o.seed, symbols=o.symbols, trading_day=o.day, start=o.start,
                    news_per_hour=o.news_per_hour,
                ),
                speed=o.speed,
            )
        )  # fmt: skip
        await sim.start()
        self._on_stop("simulators", sim.stop)
        self.sim = sim
        self._progress(
            f"simulated market: {o.symbols} symbols, {sim.market.trading_day} from "
            f"{o.start:%H:%M} ET at {o.speed:g}x"
        )
        return simulated_feeds(sim)

    def _spawn(
        self, work: Awaitable[Any], name: str, stop: Callable[[], None] | None = None
    ) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("demo_component_failed", component=name)
                raise

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.append(task)
        if stop is not None:
            self._stack.callback(stop)

    def _beat(
        self,
        component: str,
        figures: Callable[[], Mapping[str, object]],
        status: Callable[[], str] | None = None,
    ) -> None:
        assert self.mdc is not None
        beat = component_heartbeat(
            self.mdc,
            component,
            payload=figures,
            clock=LiveClock(),
            version=version("mdp-platform"),
            interval_seconds=self.options.heartbeat_seconds,
            instance="demo",
            status=status,
        )
        beat.start()
        self._on_stop(f"heartbeat {component}", beat.stop)

    def _follow(self, component: str, apply: Callable[[RuntimeState], Awaitable[None]]) -> None:
        """Apply the admin page's runtime orders in process, as the service would."""
        assert self.mdc is not None
        control = RuntimeControl(self.mdc, component, "demo", apply)
        control.start()
        self._on_stop(f"runtime control {component}", control.close)

    def _on_stop(self, name: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step`` when the demo stops, last registered first, bounded (``bounded_step``)."""
        self._stack.push_async_callback(bounded_step(name, step))

    async def _wds_state(self, state: RuntimeState) -> None:
        if self.wds is not None:  # the WDS of the moment: a restart replaces it
            await self.wds.set_runtime_state(state)

    async def restart_wds(self, *, down: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop the WDS (clients see the connection drop), then start it on the same port.

        ``down`` runs while the WDS is stopped (a test waits there for clients to notice).
        """
        assert self.wds is not None
        settings = replace(self.wds.settings, port=self.wds.port)
        await self._stop_wds()
        if down is not None:
            await down()
        self.wds = WidgetServer(settings)
        await self.wds.start()

    async def _stop_wds(self) -> None:
        if self.wds is not None:
            await self.wds.stop()

    # --- stop ---------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every component, the last started first."""
        self._stop.set()
        if self.processor is not None:
            self.processor.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            if pending:
                # Bounded: a component (or a vendor client inside it) that swallows its
                # cancellation must not hang the stop; it is named instead.
                _, stuck = await asyncio.wait(pending, timeout=10)
                await asyncio.gather(*(pending - stuck), return_exceptions=True)  # retrieved
                if stuck:
                    names = sorted(task.get_name() for task in stuck)
                    _log.error("demo_components_stuck", components=names)
        self._tasks.clear()
        await self._stack.aclose()

    async def __aenter__(self) -> Demo:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Demo]:
        """``async with demo.running():`` start, yield, stop."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


def _word(flag: bool, word: str) -> str:
    return word if flag else "running"


def _with_db(url: str, offset: int) -> str:
    """``url`` with its database number moved by ``offset`` (MDC in db N, WDC in db N + 1)."""
    head, _, tail = url.rpartition("/")
    base = int(tail) if tail.isdigit() else 0
    root = head if tail.isdigit() or tail == "" else url
    return f"{root.rstrip('/')}/{base + offset}"


def _password_note(info: _Running) -> str:
    if info.password_chosen:
        return "the password from MDP_DEMO_ADMIN_PASSWORD"
    return (
        "a random password made for this run: reusable until the demo stops, "
        "never stored; set MDP_DEMO_ADMIN_PASSWORD to choose one"
    )


def _banner(info: _Running) -> str:
    return "\n".join(
        [
            "",
            "  mdp demo is running",
            f"  dashboard:  {info.dashboard_url}",
            f"  login:      {info.admin_user} / {info.admin_password}",
            f"              ({_password_note(info)})",
            f"  WDS:        {info.wds_url}",
            f"  transports: queues {info.queue_kind}, Redis {info.redis_kind}",
            "  Ctrl-C stops everything.",
            "",
        ]
    )


async def _started_unless_stopped(demo: Demo, stop: asyncio.Event) -> bool:
    """Start ``demo``; a stop requested meanwhile (Ctrl-C) abandons the start.

    A start takes seconds (the market, the servers, the first reference data); a user who
    presses Ctrl-C then expects the demo to stop, not to come up first. ``Demo.start`` stops
    what it had started when it is cancelled (a market still being built in its thread is
    waited for). A failed start raises its own error. The demo ends with 0 either way: it
    stopped on request, as after a start.
    """
    starting = asyncio.create_task(demo.start(), name="demo-start")
    stopping = asyncio.create_task(stop.wait(), name="demo-stop-requested")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not starting.done():
            print("stopping ...", flush=True)
            # Cancelled again if need be: a cancel lost inside a Redis call (Python 3.11)
            # would otherwise leave the start running to its end.
            await cancel_until_done(starting)
    if starting.cancelled():
        return False
    starting.result()
    return True


async def _run(options: DemoOptions, duration: float | None) -> int:
    demo = Demo(options, progress=lambda line: print(f"  ✓ {line}", flush=True))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("starting the mdp demo ...", flush=True)
    try:
        started = await _started_unless_stopped(demo, stop)
    except (OSError, DemoError, ScenarioError) as exc:
        print(f"mdp demo: could not start: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, DemoUsageError) else 69
    if not started:
        print("stopped before the start completed.", flush=True)
        return 0
    print(_banner(demo.info), flush=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(duration):
            await stop.wait()
    print("stopping ...", flush=True)
    await demo.stop()
    print("stopped.", flush=True)
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    """``mdp demo``: parse-time options to :class:`DemoOptions`, then run until Ctrl-C."""
    env = load(DemoSettings)
    configure_logging("demo", "WARNING", "console")
    quiet_vendor_loggers()
    options = DemoOptions(
        symbols=args.symbols,
        speed=args.speed,
        start=args.start,
        day=args.day,
        seed=args.seed,
        amqp_url=args.amqp_url or (env.amqp_url.reveal() if env.amqp_url else None),
        redis_url=args.redis_url or (env.redis_url.reveal() if env.redis_url else None),
        fakeredis=args.fakeredis,
        host=args.host,
        port=args.port,
        wds_port=args.wds_port,
        admin_password=env.admin_password.reveal() if env.admin_password else None,
        real_feeds=args.real_feeds,
        massive_key=resolve_massive_key() if args.real_feeds else None,
        finlight_key=resolve_finlight_key() if args.real_feeds else None,
    )
    return asyncio.run(_run(options, args.duration))
