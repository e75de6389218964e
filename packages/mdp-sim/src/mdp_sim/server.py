"""The whole offline market in one object: every server, the market and the broadcaster.

``async with SimServers(SimConfig(...)) as sim:`` binds the Massive websocket and REST servers
and the Finlight websocket server on loopback, then drives the synthetic :class:`Market` with a
:class:`SimClock` (or replays a recording) until the block ends. The demo, the end-to-end tests
and the benchmarks all start the simulator this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec
from aiohttp import web

from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import Clock, LiveClock
from mdp_sim.faults import Faults, MalformedKind
from mdp_sim.finlight_ws import FinlightRestServer, FinlightWsConfig, FinlightWsServer
from mdp_sim.market import Market, MarketUpdate
from mdp_sim.massive_rest import MassiveRestConfig, MassiveRestServer
from mdp_sim.massive_ws import MassiveWsConfig, MassiveWsServer, StateWatch
from mdp_sim.replay import ReplayBroadcaster
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.simclock import SimClock

__all__ = [
    "BroadcasterMetrics",
    "ControlApi",
    "MarketBroadcaster",
    "SimConfig",
    "SimServers",
    "new_api_key",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_encode = msgspec.json.Encoder().encode
_NS_PER_MS = 1_000_000
_SECOND_NS = 1_000_000_000
_PACING_RECHECK = 0.2
"""Seconds an idle broadcaster waits for a subscriber before re-reading its pacing."""


def new_api_key() -> str:
    """A fresh random API key, so a simulator run never shares keys with anything else."""
    return "sim_" + secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Everything that shapes one simulator run.

    Attributes:
        scenario: the synthetic market (seed, symbols, start time, ...).
        speed: simulated seconds per real second; ``None`` paces by the consumer (backpressure).
        rate: target events per second (generated with ``Market.take``); overrides ``speed``
            for the stream, not for the REST views.
        api_key: Massive key accepted by the websocket and REST servers (random when None).
        finlight_api_key: Finlight key (random when None).
        host: interface every server binds (loopback).
        massive_ws_port: port of the Massive websocket server (0: ephemeral).
        rest_port: port of the Massive REST stub (0: ephemeral).
        finlight_ws_port: port of the Finlight websocket server (0: ephemeral).
        finlight_rest_port: port of the Finlight REST stub (0: ephemeral).
        replay: a JSONL recording to serve instead of the synthetic stream.
        replay_loop: start the recording again when it ends.
        auth_timeout: seconds a Massive connection may stay unauthenticated (None: forever).
        one_connection_per_key: enforce the Massive one-connection-per-key rule.
        max_events_per_frame: Massive frame size cap in events.
        tick: seconds between broadcaster steps when paced by time.
        control_port: also serve the fault-control HTTP API on this port (0: ephemeral;
            None: not at all). It has no authentication, so it only ever binds loopback.
    """

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    speed: float | None = 1.0
    rate: float | None = None
    api_key: str | None = None
    finlight_api_key: str | None = None
    host: str = "127.0.0.1"
    massive_ws_port: int = 0
    rest_port: int = 0
    finlight_ws_port: int = 0
    finlight_rest_port: int = 0
    replay: Path | None = None
    replay_loop: bool = False
    auth_timeout: float | None = None
    one_connection_per_key: bool = True
    max_events_per_frame: int = 500
    tick: float = 0.01
    control_port: int | None = None


@dataclass(slots=True)
class BroadcasterMetrics:
    """What the broadcaster generated (whether or not anyone was subscribed)."""

    steps: int = 0
    events: int = 0
    articles: int = 0


def _check_rate(rate: float | None) -> None:
    """Refuse a pace no broadcaster can keep (a zero, negative, infinite or NaN rate)."""
    if rate is not None and not 0 < rate < math.inf:
        msg = f"rate must be a positive number of events per second or None; it was {rate}"
        raise ValueError(msg)


class MarketBroadcaster:
    """Drives a :class:`Market` and pushes what it produces to the stream servers.

    Three pacings: by time (``clock.speed`` set: the market follows the simulated clock and
    keeps advancing even with nobody connected, but nothing is encoded then); by rate (``rate``
    events per real second, generated with ``Market.take``); or by backpressure (speed None and
    no rate: the next chunk is generated only once the previous frames were written).

    Args:
        market: the synthetic market.
        clock: maps real time to simulated time.
        massive: the Massive websocket server receiving events.
        finlight: the Finlight websocket server receiving articles (optional).
        rate: target events per second, or None.
        tick: seconds between steps when paced by time or rate.
        chunk_events: events generated per step when paced by backpressure or rate.
        max_step_ns: simulated time advanced per step at most, so one step never hogs the loop.
        real: real clock (tests may pass a manual one).
    """

    def __init__(
        self,
        market: Market,
        clock: SimClock,
        massive: MassiveWsServer,
        finlight: FinlightWsServer | None = None,
        *,
        rate: float | None = None,
        tick: float = 0.01,
        chunk_events: int = 2_000,
        max_step_ns: int = _SECOND_NS // 5,
        real: Clock | None = None,
    ) -> None:
        _check_rate(rate)
        self.market = market
        self.clock = clock
        self.massive = massive
        self.finlight = finlight
        self.rate = rate
        self.tick = tick
        self.chunk_events = chunk_events
        self.max_step_ns = max_step_ns
        self.metrics = BroadcasterMetrics()
        self.watch = StateWatch()
        self._real: Clock = real if real is not None else LiveClock()

    async def run(self) -> None:
        """Broadcast until cancelled; the pacing follows :meth:`set_pacing` as it changes."""
        while True:
            if self.rate is not None:
                await self._rate_session(self.rate)
            elif self.clock.speed is None:
                await self._backpressure_step()
            else:
                await self._time_step()

    def set_pacing(self, speed: float | None, rate: float | None = None) -> None:
        """Switch pacing without restarting: simulated time continues from where it is.

        Raises:
            ValueError: if ``speed`` or ``rate`` is not positive.
        """
        _check_rate(rate)
        self.clock = SimClock(self.market.now_ns, speed, real=self._real)
        self.rate = rate

    async def _time_step(self) -> None:
        clock = self.clock
        target = clock.target_ns()
        while self.market.now_ns < target and self.clock is clock and self.rate is None:
            step = min(target, self.market.now_ns + self.max_step_ns)
            self._emit(self.market.advance(step), flush=False)
            if step < target:
                await asyncio.sleep(0)
        await self._real.sleep(self.tick)

    async def _backpressure_step(self) -> None:
        if not await self._subscriber_within(_PACING_RECHECK):
            return
        self._emit(self.market.take(self.chunk_events), flush=True)
        await self.massive.wait_drained()
        await asyncio.sleep(0)

    async def _rate_session(self, rate: float) -> None:
        if not await self._subscriber_within(_PACING_RECHECK):
            return
        origin = self._real.monotonic()
        sent = 0
        while self.massive.has_subscribers and self.rate == rate:
            due = int((self._real.monotonic() - origin) * rate) - sent
            if due <= 0:
                await self._real.sleep(self.tick)
                continue
            update = self.market.take(min(due, self.chunk_events))
            sent += max(1, len(update.events))
            self._emit(update, flush=False)
            await asyncio.sleep(0)

    async def _subscriber_within(self, seconds: float) -> bool:
        """Wait a bounded while for a subscriber, so a pacing change is noticed meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.massive.wait_for_subscriber()
        return self.massive.has_subscribers

    def _emit(self, update: MarketUpdate, *, flush: bool) -> None:
        self.watch.notify()
        self.metrics.steps += 1
        self.metrics.events += len(update.events)
        self.metrics.articles += len(update.articles)
        if update.events:
            self.massive.publish(update.events, flush=flush)
        if update.articles and self.finlight is not None:
            self.finlight.publish(update.articles)


class SimServers:
    """Every simulated provider on loopback, fed by one market.

    Use ``async with SimServers(SimConfig(...)) as sim:`` then point the clients at
    ``sim.massive_feed`` (``feed=``, with ``secure=False``), ``sim.rest_base`` (``base=``),
    ``sim.finlight_wss_url`` and ``sim.finlight_base_url``, with ``sim.api_key`` and
    ``sim.finlight_api_key``. ``sim.faults`` switches fault modes; ``sim.massive``,
    ``sim.rest`` and ``sim.finlight`` expose the one-shot fault actions and metrics.

    Args:
        config: the run's settings.
        market: an already built market to serve (default: one built from ``config.scenario``).
        real: the real clock pacing the market and replays (tests pass a ``ManualClock``).
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        market: Market | None = None,
        real: Clock | None = None,
    ) -> None:
        self.config = config if config is not None else SimConfig()
        self._real: Clock = real if real is not None else LiveClock()
        self.api_key = self.config.api_key or new_api_key()
        self.finlight_api_key = self.config.finlight_api_key or new_api_key()
        self.faults = Faults()
        self._market = market
        self._massive: MassiveWsServer | None = None
        self._rest: MassiveRestServer | None = None
        self._finlight: FinlightWsServer | None = None
        self._finlight_rest: FinlightRestServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._control: ControlApi | None = None
        self.clock: SimClock | None = None
        self.broadcaster: MarketBroadcaster | ReplayBroadcaster | None = None
        self.broadcaster_error: BaseException | None = None

    async def __aenter__(self) -> SimServers:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the market (in a thread: it can take a moment), bind every server, broadcast."""
        config = self.config
        if self._market is None:
            self._market = await asyncio.to_thread(Market, config.scenario)
        market = self._market
        keys = frozenset({self.api_key})
        finlight_keys = frozenset({self.finlight_api_key})
        self.clock = SimClock(market.now_ns, config.speed, real=self._real)
        clock = self.clock
        self._massive = MassiveWsServer(
            MassiveWsConfig(
                keys=keys,
                host=config.host,
                port=config.massive_ws_port,
                auth_timeout=config.auth_timeout,
                one_connection_per_key=config.one_connection_per_key,
                max_events_per_frame=config.max_events_per_frame,
                seed=config.scenario.seed,
            ),
            self.faults,
        )
        self._rest = MassiveRestServer(
            MassiveRestConfig(keys=keys, host=config.host, port=config.rest_port),
            market,
            self.faults,
        )
        self._finlight = FinlightWsServer(
            FinlightWsConfig(keys=finlight_keys, host=config.host, port=config.finlight_ws_port),
            self.faults,
            now_ms=lambda: market.now_ns // _NS_PER_MS,
        )
        self._finlight_rest = FinlightRestServer(
            finlight_keys, self._finlight, host=config.host, port=config.finlight_rest_port
        )
        try:
            await self._massive.start()
            await self._rest.start()
            await self._finlight.start()
            await self._finlight_rest.start()
            if config.control_port is not None:
                self._control = ControlApi(self, host=config.host, port=config.control_port)
                await self._control.start()
        except BaseException:
            await self.stop()
            raise
        if config.replay is not None:
            self.broadcaster = ReplayBroadcaster(
                config.replay,
                self._massive,
                speed=config.speed,
                loop=config.replay_loop,
                real=self._real,
            )
        else:
            self.broadcaster = MarketBroadcaster(
                market,
                clock,
                self._massive,
                self._finlight,
                rate=config.rate,
                tick=config.tick,
                real=self._real,
            )
        self._task = asyncio.get_running_loop().create_task(self.broadcaster.run())
        self._task.add_done_callback(self._broadcaster_done)

    async def stop(self) -> None:
        """Stop broadcasting, then close every server (clients see 1001 and return)."""
        if self._task is not None:
            # Its failure, if it failed, was reported when it happened (_broadcaster_done).
            await cancel_until_done(self._task)
            self._task = None
        if self._control is not None:
            await self._control.stop()
            self._control = None
        for server in (self._finlight_rest, self._finlight, self._rest, self._massive):
            if server is not None:
                await server.stop()

    def set_pacing(self, speed: float | None, rate: float | None = None) -> None:
        """Change the market's pace while running (speed None: as fast as clients read).

        Simulated time continues from where the market is; a replay is not affected.

        Raises:
            ValueError: if ``speed`` or ``rate`` is not positive.
        """
        broadcaster = self.broadcaster
        if isinstance(broadcaster, MarketBroadcaster):
            broadcaster.set_pacing(speed, rate)
            self.clock = broadcaster.clock

    def _broadcaster_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.broadcaster_error = error
            _log.error("broadcaster_stopped", exc_info=error)

    # ----------------------------------------------------------------- accessors

    @property
    def market(self) -> Market:
        """The synthetic market being served."""
        if self._market is None:
            msg = "the simulator is not started"
            raise RuntimeError(msg)
        return self._market

    @property
    def massive(self) -> MassiveWsServer:
        """The Massive websocket server (fault actions, metrics)."""
        return _started(self._massive)

    @property
    def rest(self) -> MassiveRestServer:
        """The Massive REST stub."""
        return _started(self._rest)

    @property
    def finlight(self) -> FinlightWsServer:
        """The Finlight websocket server (fault actions, metrics)."""
        return _started(self._finlight)

    @property
    def massive_ws_url(self) -> str:
        """``ws://host:port/stocks``."""
        return self.massive.url

    @property
    def massive_feed(self) -> str:
        """``host:port``: the official client's ``feed=`` (with ``secure=False``)."""
        return self.massive.feed

    @property
    def rest_base(self) -> str:
        """``http://host:port``: the official REST client's ``base=``."""
        return self.rest.base_url

    @property
    def finlight_wss_url(self) -> str:
        """``ws://host:port``: Finlight's ``ApiConfig.wss_url``."""
        return self.finlight.url

    @property
    def finlight_base_url(self) -> str:
        """``http://host:port``: Finlight's ``ApiConfig.base_url``."""
        return _started(self._finlight_rest).base_url

    @property
    def control_url(self) -> str | None:
        """``http://host:port`` of the fault-control API, if it was asked for."""
        return None if self._control is None else self._control.base_url

    def metrics(self) -> dict[str, object]:
        """Every server's counters and the current fault switches, as plain data."""
        broadcaster = self.broadcaster
        return {
            "massive_ws": dataclasses.asdict(self.massive.metrics),
            "massive_rest": dataclasses.asdict(self.rest.metrics),
            "finlight_ws": dataclasses.asdict(self.finlight.metrics),
            "broadcaster": None
            if broadcaster is None
            else msgspec.to_builtins(broadcaster.metrics),
            "faults": msgspec.to_builtins(dataclasses.asdict(self.faults)),
            "market_now_ns": self.market.now_ns,
        }


class ControlApi:
    """Loopback HTTP API to switch faults of a running simulator (``mdp-sim serve``).

    ``GET /metrics``; ``POST /faults`` with ``{"massive": {"stall": true}, "rest": {...},
    "finlight": {...}}``; ``POST /faults/clear``; ``POST /massive/drop`` ``{"code": 1011,
    "key": null}`` (code null aborts the TCP connection); ``POST /massive/kick``;
    ``POST /massive/refuse`` ``{"seconds": 10}``; ``POST /massive/oversized``;
    ``POST /finlight/kick`` ``{"retry_after_ms": 1000}``; ``POST /finlight/close``
    ``{"code": 1008}``. In-process callers use ``sim.faults`` and the servers' methods instead.

    Raises:
        ValueError: at construction, if ``host`` is not a loopback address.
    """

    def __init__(self, sim: SimServers, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            msg = f"the control API has no authentication and only binds loopback, not {host}"
            raise ValueError(msg)
        self.sim = sim
        self.host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self._port}"

    async def start(self) -> None:
        """Bind and start answering."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/faults", self._set_faults)
        app.router.add_post("/faults/clear", self._clear_faults)
        app.router.add_post("/{server}/{action}", self._action)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._requested_port).start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop answering."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        del request
        return web.Response(body=_encode(self.sim.metrics()), content_type="application/json")

    async def _clear_faults(self, request: web.Request) -> web.Response:
        del request
        self.sim.faults.clear()
        return await self._metrics_response()

    async def _metrics_response(self) -> web.Response:
        return web.Response(body=_encode(self.sim.metrics()), content_type="application/json")

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        faults = self.sim.faults
        try:
            for section_name, changes in body.items():
                section = getattr(faults, section_name, None)
                if section is None or not isinstance(changes, dict):
                    raise _ControlError(f"unknown fault section {section_name!r}")
                for name, value in changes.items():
                    _set_fault(section, name, value)
        except _ControlError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return await self._metrics_response()

    async def _action(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        target = (request.match_info["server"], request.match_info["action"])
        raw_key = body.get("key")
        key = raw_key if isinstance(raw_key, str) else None
        sim = self.sim
        affected: int
        if target == ("massive", "drop"):
            code = body.get("code", 1011)
            affected = await sim.massive.drop(code if isinstance(code, int) else None, key)
        elif target == ("massive", "kick"):
            affected = await sim.massive.kick(key)
        elif target == ("massive", "refuse"):
            seconds = body.get("seconds", 10)
            sim.massive.refuse_for(float(seconds) if isinstance(seconds, int | float) else 10.0)
            affected = 0
        elif target == ("massive", "oversized"):
            affected = await sim.massive.send_oversized(key)
        elif target == ("finlight", "kick"):
            retry = body.get("retry_after_ms", 1_000)
            affected = await sim.finlight.admin_kick(retry if isinstance(retry, int) else 1_000)
        elif target == ("finlight", "close"):
            code = body.get("code", 1011)
            affected = await sim.finlight.close(code if isinstance(code, int) else 1011, key)
        else:
            return web.json_response({"error": f"unknown action {target}"}, status=404)
        return web.json_response({"affected": affected})


class _ControlError(ValueError):
    """A control request naming a fault that does not exist or with a value of the wrong type."""


def _set_fault(section: object, name: str, value: object) -> None:
    if name.startswith("_") or not hasattr(section, name):
        raise _ControlError(f"unknown fault {name!r}")
    current = getattr(section, name)
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(current, set | tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = False
    if not ok:
        raise _ControlError(f"bad value for {name!r}: {value!r}")
    if isinstance(value, list) and isinstance(current, tuple):
        try:
            value = tuple(MalformedKind(v) for v in value)
        except ValueError as exc:
            raise _ControlError(str(exc)) from exc
    elif isinstance(value, list):
        value = set(value)
    elif isinstance(current, float) and isinstance(value, int):
        value = float(value)
    setattr(section, name, value)


async def _json_body(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _started(server: _T | None) -> _T:
    if server is None:
        msg = "the simulator is not started"
        raise RuntimeError(msg)
    return server
