"""``mdp chaos``: break the running pipeline on purpose and check it heals, counting every loss.

The pipeline runs as separate processes, as in production: the Massive simulator (with its
fault-control API), ``mdp-listener``, ``mdp-processor`` (two workers) and ``mdp-wds``, on a
private RabbitMQ node and a private ``redis-server`` (:mod:`mdp_platform._chaos_infra`), at a
few thousand events per second. Each scenario injects one fault, then waits (bounded) for
recovery, and the run checks, scenario by scenario and at the end:

* no component crashed or hung (each process is alive and its ``/readyz`` is 200 again within
  the scenario's recovery bound, except the one the scenario kills, which must be replaced);
* every loss is counted or bounded: between two drained moments (feed paused until nothing is
  in flight), the events whose flush landed never exceed the events the listener published
  plus those it never saw confirmed (a broker that stops may have taken them) plus those of
  redelivered batches no replica had marked applied (a consumer whose channel a stopping
  broker closed may still write its copy; the merges are idempotent),
  and what was published but never written stays under the events of the fault
  window plus one queue TTL (the TTL rule); the losses the components counted are shown;
* the figures of each scenario are printed as a table.

``--short`` (what CI runs) does one of each kind of fault quickly; the full run adds the longer
outages and the slow-client scenarios (see ``docs/operations.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aio_pika
import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from mdp_cache.keys import FEED_QUOTE
from mdp_core.token import issue_token
from mdp_platform._chaos_infra import ChaosError, PrivateRabbit, PrivateRedis, free_port, workdir
from mdp_platform.bench.processes import holds_port
from mdp_platform.bench.services import Service, child_env
from mdp_queues import DropReason, Topology
from mdp_sim.cli import CANNOT_LISTEN

__all__ = ["ChaosReport", "ScenarioResult", "add_chaos_options", "run_chaos", "run_chaos_command"]

_KEY: Final = "chaos-massive-key"
_SECRET: Final = secrets.token_hex(16)  # the WDS token secret of this run
_PREFIX: Final = "chaos"  # the queues' name prefix on the private node
_TTL_SECONDS: Final = 5.0  # the market data queues' TTL (and the consumers' freshness limit)
_NESTED: Final = b"[" * 5000 + b"]" * 5000
_SIM_PORT_TRIES: Final = 3  # starts of the simulator on fresh ports when one was taken


@dataclass(slots=True)
class ScenarioResult:
    """What one fault did."""

    name: str
    recovered_seconds: float | None = None
    bound_seconds: float = 0.0
    published: float = 0.0
    applied: float = 0.0
    counted_losses: float = 0.0
    loss_bound: float = 0.0
    duplicates: float = 0.0
    outbox_dropped: float = 0.0
    #: Of ``outbox_dropped``, events whose publish was never confirmed: the broker may have
    #: taken them all the same (the listener counts them lost, overstating the loss).
    unconfirmed: float = 0.0
    #: Events of redelivered messages the processors applied because no replica had marked
    #: them applied yet: a consumer that lost its channel to a stopping broker may have
    #: written its copy too (the merges make that harmless).
    redelivered: float = 0.0
    comparable: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Recovered in time and every check held."""
        return not self.problems and self.recovered_seconds is not None

    @property
    def unexplained_surplus(self) -> float:
        """Events applied beyond what the listener published and what explains more.

        A batch whose confirm never came may have reached the broker and been applied once
        (``unconfirmed``); a redelivered batch may have been applied by two consumers
        (``redelivered``). Anything beyond both is a duplicate the processors did not catch.
        """
        return self.applied - self.published - self.unconfirmed - self.redelivered


@dataclass(slots=True)
class ChaosReport:
    """Every scenario of a run."""

    results: list[ScenarioResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every scenario passed."""
        return bool(self.results) and all(r.ok for r in self.results)

    def table(self) -> str:
        """The figures of every scenario as a text table."""
        head = (
            f"{'scenario':<28} {'ok':<3} {'recovered':>10} {'bound':>6} {'published':>10} "
            f"{'applied':>9} {'lost':>7} {'counted':>8} {'loss max':>9} {'dups':>5} "
            f"{'outbox':>7}"
        )
        lines = [head, "-" * len(head)]
        for r in self.results:
            recovered = "-" if r.recovered_seconds is None else f"{r.recovered_seconds:.1f}s"
            figures = (
                f"{r.published:>10.0f} {r.applied:>9.0f} {r.published - r.applied:>7.0f} "
                f"{r.counted_losses:>8.0f} {r.loss_bound:>9.0f} {r.duplicates:>5.0f} "
                f"{r.outbox_dropped:>7.0f}"
                if r.comparable
                else f"{'(a new parent counts from zero: no figures)':>54}"
            )
            lines.append(
                f"{r.name:<28} {'yes' if r.ok else 'NO':<3} {recovered:>10} "
                f"{r.bound_seconds:>5.0f}s " + figures
            )
            lines.extend(f"    ! {problem}" for problem in r.problems)
        return "\n".join(lines)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _workers(pid: int) -> list[int]:
    """The worker processes of a processor (its spawned children, not the resource tracker)."""
    found = []
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


class Pipeline:
    """The components of one run and the means to look at and break them."""

    def __init__(self, base: Path, *, rate: int) -> None:
        self.base = base
        self.rate = rate
        self.rabbit = PrivateRabbit(base)
        self.redis = PrivateRedis(base)
        self.logs = base / "logs"
        self.bindir = Path(sys.executable).parent
        self.sim: asyncio.subprocess.Process | None = None
        self.sim_port = free_port()
        self.sim_rest = free_port()
        self.sim_control = free_port()
        self.services: dict[str, Service] = {}
        self.http: aiohttp.ClientSession | None = None
        self.clients: list[ClientConnection] = []

    # --- set-up -------------------------------------------------------------------------

    async def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        await asyncio.gather(self.rabbit.start(), self.redis.start())
        await self._start_sim()
        common = {
            "MDP_AMQP_URL": self.rabbit.url,
            "MDP_REDIS_URL": self.redis.url(0),
            "MDP_MDC_REDIS_URL": self.redis.url(0),
            "MDP_WDC_REDIS_URL": self.redis.url(1),
            "MDP_MDQ_PREFIX": _PREFIX,
            "MASSIVE_API_KEY": _KEY,
            "MDP_LOG_LEVEL": "WARNING",
        }
        extra = {
            "listener": {
                "MDP_MASSIVE_FEED": f"127.0.0.1:{self.sim_port}",
                "MDP_MASSIVE_SECURE": "false",
                "MDP_MASSIVE_TOPICS": "T.*,Q.*,A.*",
                "MDP_LISTENER_ALWAYS_ON": "true",
                "MDP_LISTENER_STALE_AFTER_SECONDS": "3",
                "MDP_LISTENER_READY_STALE_SECONDS": "2",
                "MDP_LISTENER_BACKOFF_MAX_SECONDS": "2",
                "MDP_LISTENER_KICK_FIRST_RETRY_SECONDS": "0.5",
            },
            "processor": {
                "MDP_WORKERS": "2",
                "MDP_FUTURE_TOLERANCE_SECONDS": "86400",
                "MDP_MASSIVE_REST_URL": f"http://127.0.0.1:{self.sim_rest}",
            },
            "wds": {
                "MDP_WDS_TOKEN_SECRET": _SECRET,
                "MDP_WDS_MAX_CONNECTIONS_PER_ADDRESS": "200",
                "MDP_WDS_SEND_QUEUE_BYTES": "65536",
            },
        }
        scripts = {
            "listener": ("mdp-listener", "mdp_listener.__main__"),
            "processor": ("mdp-processor", "mdp_processor.__main__"),
            "wds": ("mdp-wds", "mdp_wds.__main__"),
        }
        for name, (script, module) in scripts.items():
            port = free_port()
            env = child_env(self.bindir, {**common, "MDP_HEALTH_PORT": str(port), **extra[name]})
            if name == "wds":
                env["MDP_WDS_PORT"] = str(port)
            self.services[name] = Service(name, script, module, env, port, self.logs / name)
        for name in ("processor", "wds", "listener"):
            await self.launch(name, first=True)

    async def _start_sim(self) -> None:
        """Start the simulator; when a port it was given was taken meanwhile, on fresh ones.

        The ports are picked free, then bound by the child a moment later: another process can
        take one in between (it happened in CI). The simulator says so with its own exit status.
        """
        for _ in range(_SIM_PORT_TRIES):
            with (self.logs / "sim").open("ab") as log:  # every attempt kept
                self.sim = await asyncio.create_subprocess_exec(
                    str(self.bindir / "mdp-sim"), "serve", "--port", str(self.sim_port),
                    "--control-port", str(self.sim_control), "--rest-port", str(self.sim_rest),
                    "--key", _KEY, "--symbols", "60",
                    "--rate", str(self.rate), "--news-per-hour", "0", "--start", "10:00",
                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                    env=child_env(self.bindir, {}), start_new_session=True,
                )  # fmt: skip
            sim = self.sim
            await self._until(
                self._sim_up_or_gone, 30.0, f"the simulator did not start; see {self.logs / 'sim'}"
            )
            if sim.returncode is None:
                return
            if sim.returncode != CANNOT_LISTEN:
                msg = f"the simulator exited with {sim.returncode}; see {self.logs / 'sim'}"
                raise ChaosError(msg)
            self.sim_port, self.sim_rest, self.sim_control = free_port(), free_port(), free_port()
        msg = f"the simulator found a port taken {_SIM_PORT_TRIES} times; see {self.logs / 'sim'}"
        raise ChaosError(msg)

    async def _sim_up_or_gone(self) -> bool:
        assert self.sim is not None
        return self.sim.returncode is not None or await self._sim_up()

    async def _sim_up(self) -> bool:
        """Whether the simulator serves its control API (it, not a process that took the port)."""
        assert self.http is not None
        assert self.sim is not None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.http.get(f"http://127.0.0.1:{self.sim_control}/metrics") as response:
                return response.status == 200 and holds_port(self.sim_control, [self.sim.pid])
        return False

    async def launch(self, name: str, *, first: bool = False) -> None:
        """Start (or start again) one component and wait until it is ready.

        Only a first start may move to a fresh port when its own was taken: a component
        started again after a fault must come back where its clients reconnect.
        """
        assert self.http is not None
        service = self.services[name]
        service.missing = None
        if not first:
            service.port_retries = 0
        await service.start(self.bindir)
        # Ready, or started again on a fresh port when its own was taken; else missing.
        await service.wait_ready(self.http, within=60.0)
        if service.missing:
            raise ChaosError(service.missing)

    async def stop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for service in self.services.values():
            with contextlib.suppress(Exception):
                await service.stop()
        if self.sim is not None and self.sim.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sim.pid, signal.SIGKILL)
            await self.sim.wait()
        await self.redis.kill()
        await self.rabbit.stop()
        if self.http is not None:
            await self.http.close()

    # --- observation ----------------------------------------------------------------------

    async def ready(self, name: str) -> bool:
        assert self.http is not None
        service = self.services[name]
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.http.get(f"{service.base_url}/readyz") as response:
                return response.status == 200
        return False

    async def figures(self, name: str) -> dict[str, float]:
        assert self.http is not None
        return await self.services[name].status(self.http)

    async def published(self) -> float:
        figures = await self.figures("listener")
        return sum(v for k, v in figures.items() if k.startswith("queue.published_events."))

    async def outbox_dropped(self) -> tuple[float, float]:
        """Events the listener dropped before the broker, and of them those unconfirmed."""
        figures = await self.figures("listener")
        dropped = sum(v for k, v in figures.items() if k.startswith("queue.dropped_events."))
        return dropped, figures.get(f"queue.dropped_events.{DropReason.PUBLISH_FAILED}", 0.0)

    async def applied(self) -> dict[str, float]:
        return await self.figures("processor")

    def alive(self, name: str) -> bool:
        process = self.services[name].process
        return process is not None and process.returncode is None

    async def sim_post(self, path: str, body: dict[str, object] | None = None) -> None:
        assert self.http is not None
        url = f"http://127.0.0.1:{self.sim_control}{path}"
        async with self.http.post(url, json=body or {}) as response:
            if response.status >= 300:
                raise ChaosError(f"simulator control {path}: HTTP {response.status}")

    async def _until(
        self, check: Callable[[], Awaitable[bool]], within: float, failure: str
    ) -> float:
        """Seconds until ``check()`` held (re-checked every 0.1 s); ChaosError after ``within``."""
        started = time.monotonic()
        while not await check():
            if time.monotonic() - started > within:
                raise ChaosError(failure)
            await asyncio.sleep(0.1)  # the components offer no change notification
        return time.monotonic() - started

    async def flowing(self) -> bool:
        """Events reach the processors now (their applied count grows within 3 s)."""
        before = (await self.applied()).get("events", 0.0)
        for _ in range(30):
            await asyncio.sleep(0.1)
            if (await self.applied()).get("events", 0.0) > before:
                return True
        return False

    async def drained(self) -> tuple[float, float, dict[str, float]]:
        """Stop the feed, wait until the processors applied everything, resume; the totals.

        Returns (events published, events applied, the processors' figures), taken while
        nothing is in flight, so that what was published and never applied is exactly what was
        lost in between two such snapshots.
        """
        await self.sim_post("/faults", {"massive": {"stall": True}})
        try:
            figures = await self.applied()
            stable_since = time.monotonic()
            deadline = stable_since + 20.0
            while time.monotonic() - stable_since < 1.0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # the processors offer no "idle" notification
                again = await self.applied()
                if again.get("flushed_events") != figures.get("flushed_events"):
                    figures, stable_since = again, time.monotonic()
            published = await self.published()
        finally:
            await self.sim_post("/faults/clear")
        return published, figures.get("flushed_events", 0.0), figures

    async def healthy(self) -> bool:
        for name in self.services:
            if not self.alive(name) or not await self.ready(name):
                return False
        return await self.flowing()

    # --- WDS clients ----------------------------------------------------------------------

    async def client(self, feed: str = FEED_QUOTE.pattern) -> ClientConnection:
        port = self.services["wds"].port
        ws = await connect(f"ws://127.0.0.1:{port}/ws", max_size=None)
        token = issue_token(_SECRET, "chaos", ["*"], 3600, time.time())
        await ws.send(json.dumps({"op": "auth", "token": token}))
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "feeds": [feed]}))
        self.clients.append(ws)
        return ws


async def _updates_within(ws: ClientConnection, within: float) -> bool:
    """Whether an ``update`` arrives on ``ws`` within ``within`` seconds."""
    with contextlib.suppress(TimeoutError, Exception):
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await ws.recv())
                if message.get("op") == "update":
                    return True
    return False


# --- scenarios -------------------------------------------------------------------------------

Scenario = Callable[[Pipeline, ScenarioResult], Awaitable[float]]
"""Injects the fault; returns the seconds of the fault window (events lost there are allowed)."""


async def _broker_outage(seconds: float) -> Scenario:
    async def run(p: Pipeline, _: ScenarioResult) -> float:
        await p.rabbit.stop_app()
        await asyncio.sleep(seconds)  # the outage itself
        await p.rabbit.start_app()
        return seconds

    return run


async def _redis_crash(p: Pipeline, _: ScenarioResult) -> float:
    await p.redis.kill()
    await p.redis.start()  # empty: no persistence
    return 0.0


async def _feed_drop(p: Pipeline, _: ScenarioResult) -> float:
    await p.sim_post("/massive/drop", {"code": 1011})
    return 2.0


async def _feed_stall(p: Pipeline, _: ScenarioResult) -> float:
    await p.sim_post("/faults", {"massive": {"stall": True}})
    await asyncio.sleep(4.0)  # past the listener's watchdog (3 s)
    await p.sim_post("/faults/clear")
    return 6.0


async def _feed_refuse(p: Pipeline, _: ScenarioResult) -> float:
    await p.sim_post("/massive/refuse", {"seconds": 3})
    await p.sim_post("/massive/drop", {"code": 1011})
    return 5.0


async def _feed_kick(p: Pipeline, _: ScenarioResult) -> float:
    await p.sim_post("/massive/kick")
    return 2.0


async def _feed_malformed(p: Pipeline, result: ScenarioResult) -> float:
    before = await p.figures("listener")
    await p.sim_post("/faults", {"massive": {"malformed_ratio": 0.2}})
    await asyncio.sleep(3.0)
    await p.sim_post("/faults/clear")
    after = await p.figures("listener")
    malformed = sum(v for k, v in after.items() if "malformed" in k) - sum(
        v for k, v in before.items() if "malformed" in k
    )
    if malformed <= 0:
        result.problems.append("no malformed frame element was counted")
    return 3.0


async def _poison_and_nested_amqp(p: Pipeline, result: ScenarioResult) -> float:
    before = (await p.applied()).get("poison_dropped", 0.0)
    trades = Topology(prefix=_PREFIX).for_kind("T")
    assert trades is not None
    queue = trades.name
    connection = await aio_pika.connect(p.rabbit.url)
    async with connection:
        channel = await connection.channel()
        nested = b'{"v":1,"kind":"T","source":"x","batch":"n","received_ns":1,"events":['
        for body in (b"not an envelope", b"\x00\xff", nested + _NESTED + b"]}") * 3:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)

    async def counted() -> bool:
        return (await p.applied()).get("poison_dropped", 0.0) - before >= 9

    try:
        await p._until(counted, 15.0, "")
    except ChaosError:
        got = (await p.applied()).get("poison_dropped", 0.0) - before
        result.problems.append(f"9 poison messages sent, {got:.0f} counted")
    return 0.0


async def _worker_kill(p: Pipeline, result: ScenarioResult) -> float:
    parent = p.services["processor"].process
    assert parent is not None
    workers = _workers(parent.pid)
    before = (await p.applied()).get("events", 0.0)
    os.kill(workers[0], signal.SIGKILL)

    async def replaced() -> bool:
        figures = await p.applied()
        return figures.get("workers_alive", 0) == 2 and figures.get("worker_restarts", 0) >= 1

    await p._until(replaced, 20.0, "the killed worker was not replaced")
    if (await p.applied()).get("events", 0.0) < before:
        result.problems.append("the summed events counter went backwards after a worker restart")
    return 2.0


async def _parent_kill(p: Pipeline, result: ScenarioResult) -> float:
    service = p.services["processor"]
    parent = service.process
    assert parent is not None
    workers = _workers(parent.pid)
    parent.kill()
    await parent.wait()

    async def orphans_gone() -> bool:
        return not any(_running(pid) for pid in workers)

    try:
        await p._until(orphans_gone, 15.0, "")
    except ChaosError:
        result.problems.append(f"workers {workers} outlived their parent")
    await p.launch("processor")
    return 3.0


async def _wds_kill(p: Pipeline, result: ScenarioResult) -> float:
    clients = [await p.client() for _ in range(5)]
    wds = p.services["wds"].process
    assert wds is not None
    wds.kill()
    await wds.wait()
    for ws in clients:
        with contextlib.suppress(Exception):
            await ws.close()
    await p.launch("wds")
    again = await p.client()
    if not await _updates_within(again, 10.0):
        result.problems.append("a client reconnecting after the WDS restart got no update")
    return 0.0


async def _stalled_clients(p: Pipeline, result: ScenarioResult) -> float:
    stalled = [await p.client() for _ in range(50)]  # subscribed, never read
    healthy = await p.client()
    if not await _updates_within(healthy, 10.0):
        result.problems.append("a healthy client got no update beside 50 stalled ones")
    for ws in stalled:
        with contextlib.suppress(Exception):
            await ws.close()
    return 0.0


async def _scenarios(short: bool) -> list[tuple[str, Scenario, float]]:
    """(name, fault, recovery bound in seconds), in the order they run."""
    quick: list[tuple[str, Scenario, float]] = [
        ("broker stop/start 3 s", await _broker_outage(3.0), 30.0),
        ("redis kill -9, empty", _redis_crash, 30.0),
        ("feed drop (1011)", _feed_drop, 20.0),
        ("feed malformed + nested", _feed_malformed, 20.0),
        ("poison + nested AMQP", _poison_and_nested_amqp, 20.0),
        ("worker kill -9", _worker_kill, 30.0),
        ("wds kill -9, clients on", _wds_kill, 30.0),
    ]
    full: list[tuple[str, Scenario, float]] = [
        ("broker stop/start 10 s", await _broker_outage(10.0), 40.0),
        ("feed stall", _feed_stall, 30.0),
        ("feed refuse 3 s", _feed_refuse, 30.0),
        ("feed kick", _feed_kick, 20.0),
        ("50 stalled WDS clients", _stalled_clients, 20.0),
    ]
    last: list[tuple[str, Scenario, float]] = [("processor parent kill -9", _parent_kill, 60.0)]
    return quick + ([] if short else full) + last


async def run_chaos(*, short: bool, rate: int = 3000, keep: Path | None = None) -> ChaosReport:
    """Run every scenario against a fresh private pipeline and return the report."""
    report = ChaosReport()
    with workdir() as tmp:
        base = keep or Path(tmp)
        pipeline = Pipeline(base, rate=rate)
        try:
            await pipeline.start()
            await pipeline._until(pipeline.healthy, 60.0, "the pipeline never became healthy")
            for name, scenario, bound in await _scenarios(short):
                report.results.append(await _one(pipeline, name, scenario, bound))
        finally:
            await pipeline.stop()
    return report


async def _one(p: Pipeline, name: str, scenario: Scenario, bound: float) -> ScenarioResult:
    result = ScenarioResult(name, bound_seconds=bound)
    published, applied, figures = await p.drained()
    outbox, unconfirmed = await p.outbox_dropped()
    await p._until(p.healthy, 30.0, "not healthy again after the drain")
    try:
        window = await scenario(p, result)
        # recovery: from the end of the fault to every component ready and events flowing
        result.recovered_seconds = await p._until(
            p.healthy, bound, f"not healthy within {bound:.0f} s"
        )
    except ChaosError as exc:
        result.problems.append(str(exc))
        window = bound
    published_after, applied_after, after = await p.drained()
    await p._until(p.healthy, 30.0, "not healthy again after the drain")
    outbox_after, unconfirmed_after = await p.outbox_dropped()
    result.outbox_dropped = outbox_after - outbox
    result.unconfirmed = unconfirmed_after - unconfirmed
    result.published = published_after - published
    result.applied = applied_after - applied
    result.duplicates = after.get("duplicates", 0.0) - figures.get("duplicates", 0.0)
    result.redelivered = after.get("redelivered_events", 0.0) - figures.get(
        "redelivered_events", 0.0
    )
    result.counted_losses = sum(
        after.get(k, 0.0) - figures.get(k, 0.0) for k in ("stale_dropped", "bad_events")
    )
    # The TTL rule: events of the fault window, plus one queue TTL of waiting events, may be
    # lost; nothing else.
    result.loss_bound = p.rate * (window + _TTL_SECONDS)
    if name.startswith("processor parent"):
        result.comparable = False  # a new parent counts from zero
        return result
    if result.unexplained_surplus > 0:
        result.problems.append(
            f"{result.applied - result.published:.0f} more events applied than published "
            f"({result.unconfirmed:.0f} unconfirmed, {result.redelivered:.0f} redelivered)"
        )
    if result.published - result.applied > result.loss_bound:
        result.problems.append("more events lost than the fault window and the TTL allow")
    return result


def add_chaos_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``mdp chaos``."""
    parser.add_argument("--short", action="store_true", help="one of each fault (CI)")
    parser.add_argument("--rate", type=int, default=3000, help="simulated events per second")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and data here")


def run_chaos_command(args: argparse.Namespace) -> int:
    """``mdp chaos``: run, print the table, exit 0 only when every scenario passed."""
    try:
        report = asyncio.run(run_chaos(short=args.short, rate=args.rate, keep=args.keep))
    except ChaosError as exc:
        print(f"mdp chaos: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    return 0 if report.ok else 1
