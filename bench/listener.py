"""Benchmark: how many events/s the Massive listener moves from the simulator into RabbitMQ.

The simulator runs in its own process (one core), the listener with the real AMQP publisher in
this one (the other core). For each offered rate the simulator is restarted paced at that rate
(``SimConfig.rate``); the step passes when the listener published every event it received,
dropped nothing, and was never disconnected upstream (no reconnects, no slow-consumer kick).
A final step with ``speed=None`` lets the simulator go as fast as the listener reads.

Prints, per step, offered and achieved events/s and the listener's CPU seconds per 100k events,
then the highest sustained rate. Not a test: numbers depend on the machine.

Usage::

    uv run python bench/listener.py [--seconds 6] [--rates 50000,100000,...] [--amqp URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
import msgspec
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_listener import ListenerSettings, MassiveListener
from mdp_queues import AmqpPublisher, Topology
from mdp_sim.market import Market
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import new_api_key

_DEFAULT_RATES = (50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000)
_TOPICS = ("T.*", "Q.*", "A.*", "AM.*", "LULD.*")
_TAPE_EVENTS = 200_000
_FRAME_EVENTS = 500
_SLOW_CONSUMER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StepResult:
    """One measured step."""

    offered: float | None
    received: int
    published: int
    dropped: int
    reconnects: int
    kicks: int
    seconds: float
    cpu_seconds: float
    source_rate: float
    """Events/s the feed actually sent over the whole step (it may fall short on a busy host)."""

    @property
    def achieved(self) -> float:
        """Events per second published to the broker during the step."""
        return self.published / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_100k(self) -> float:
        """Listener process CPU seconds per 100,000 events received."""
        return self.cpu_seconds / self.received * 100_000 if self.received else float("nan")

    @property
    def clean(self) -> bool:
        """No drop, no reconnect, no kick: the step did not lose anything."""
        return self.dropped == 0 and self.reconnects == 0 and self.kicks == 0


# ------------------------------------------------------------------ simulator process


async def _serve_sim(rate: float | None, symbols: int) -> None:
    """Feed the listener simulator events at the rate the benchmark asks (or as fast as read).

    The simulator's websocket server encodes each event as it routes it and tops out near
    100k events/s on one core, below what the listener takes. So the simulator's market is run
    once up front, its events are encoded into 500-event frames, and a minimal server speaking
    the same handshake (greeting, auth, subscribe replies) replays those frames in a loop:
    paced at ``rate`` events/s, or as fast as the client reads when ``rate`` is None. A client
    that lets more than 16 MiB pile up in our send buffer is counted as a slow consumer, as the
    provider (and the simulator) would drop it.
    """
    configure_logging("bench-sim", "WARNING", "console", stream=sys.stderr)
    market = Market(ScenarioConfig(symbols=symbols, news_per_hour=0.0))
    events = market.take(_TAPE_EVENTS).events
    encode = msgspec.json.Encoder().encode
    frames = [
        (b"[" + b",".join(encode(e) for e in events[i : i + _FRAME_EVENTS]) + b"]", _FRAME_EVENTS)
        for i in range(0, len(events) - _FRAME_EVENTS + 1, _FRAME_EVENTS)
    ]
    key = new_api_key()
    figures: dict[str, float] = {
        "events_sent": 0,
        "send_seconds": 0.0,
        "slow_consumer_kicks": 0,
        "max_connections_kicks": 0,
    }

    async def handle(ws: ServerConnection) -> None:
        await ws.send(_status("connected", "Connected Successfully"), text=True)
        auth = json.loads(await ws.recv())
        if auth.get("params") != key:
            await ws.send(_status("auth_failed", "authentication failed"), text=True)
            await ws.close(1008, "authentication failed")
            return
        await ws.send(_status("auth_success", "authenticated"), text=True)
        subscribe = json.loads(await ws.recv())
        for topic in str(subscribe.get("params", "")).split(","):
            await ws.send(_status("success", f"subscribed to: {topic}"), text=True)
        await _replay(ws, frames, rate, figures)

    async with serve(handle, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"feed": f"127.0.0.1:{port}", "key": key}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # parent closes stdin to stop us
        print(json.dumps(figures), flush=True)


def _status(status: str, message: str) -> bytes:
    return json.dumps([{"ev": "status", "status": status, "message": message}]).encode()


async def _replay(
    ws: ServerConnection,
    frames: Sequence[tuple[bytes, int]],
    rate: float | None,
    figures: dict[str, float],
) -> None:
    origin = time.monotonic()
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        for frame, count in itertools.cycle(frames):
            if rate is not None:
                ahead = sent / rate - (time.monotonic() - origin)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await ws.send(frame, text=True)
            await asyncio.sleep(0)  # send() need not yield; let the stop signal through
            sent += count
            figures["events_sent"] = sent
            figures["send_seconds"] = time.monotonic() - origin
            if ws.transport.get_write_buffer_size() > _SLOW_CONSUMER_BYTES:
                figures["slow_consumer_kicks"] += 1
                await ws.close(1008, "slow consumer")
                return


# ------------------------------------------------------------------ listener side


async def _step(rate: float | None, seconds: float, amqp_url: str, symbols: int) -> StepResult:

    args = [__file__, "--serve-sim", "--symbols", str(symbols)]
    if rate is not None:
        args += ["--rate", str(rate)]
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
    )
    assert sim.stdout is not None
    assert sim.stdin is not None
    hello = json.loads(await sim.stdout.readline())
    topology = Topology(prefix=f"bench.{uuid.uuid4().hex[:8]}.")
    publisher = AmqpPublisher(amqp_url, topology, outbox_messages=2_000)
    await publisher.start()
    settings = load(
        ListenerSettings,
        {},
        api_key=Secret(hello["key"]),
        feed=hello["feed"],
        secure=False,
        always_on=True,
        topics=_TOPICS,
        heartbeat_enabled=False,
    )
    metrics = Metrics("listener")
    listener = MassiveListener(settings, publisher, LiveClock(), metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    events_in = metrics.counter("events_in")
    async with asyncio.timeout(30):
        while events_in.total == 0:  # noqa: ASYNC110 - a benchmark warm-up, not a test
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # warm-up: let the pacing settle
    received0 = events_in.total
    published0 = publisher.stats.total_published_events
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    received = events_in.total - received0
    published = publisher.stats.total_published_events - published0
    stop.set()
    await task
    await asyncio.sleep(0.2)  # let the outbox drain what was flushed at stop
    sim.stdin.close()
    tail = json.loads(await sim.stdout.readline())
    await sim.wait()
    dropped = publisher.stats.total_dropped_events
    await _delete_queues(amqp_url, topology)
    await publisher.close()
    return StepResult(
        offered=rate,
        received=received,
        published=published,
        dropped=dropped,
        reconnects=metrics.counter("reconnects").total,
        kicks=int(tail["slow_consumer_kicks"] + tail["max_connections_kicks"]),
        source_rate=tail["events_sent"] / tail["send_seconds"] if tail["send_seconds"] else 0.0,
        seconds=wall1 - wall0,
        cpu_seconds=cpu1 - cpu0,
    )


async def _delete_queues(amqp_url: str, topology: Topology) -> None:

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for spec in topology.queues:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(spec.name)
            with contextlib.suppress(Exception):
                await channel.close()


async def _bench(options: argparse.Namespace) -> None:

    configure_logging("bench", "WARNING", "console")
    rates = [float(r) for r in options.rates.split(",")] if options.rates else _DEFAULT_RATES
    best: StepResult | None = None
    print(
        f"{'offered':>10} {'fed':>10} {'achieved':>10} {'dropped':>8} {'reconn':>6} "
        f"{'kicks':>5} {'CPU s/100k':>10}  verdict"
    )
    steps: list[float | None] = [*rates, None] if options.unpaced else list(rates)
    for rate in steps:
        result = await _step(rate, options.seconds, options.amqp, options.symbols)
        offered = "max" if rate is None else f"{rate:,.0f}"
        sustained = result.clean and (rate is None or result.achieved >= 0.95 * rate)
        verdict = "ok" if sustained else "NOT sustained"
        if not sustained and result.clean and rate and result.source_rate < 0.95 * rate:
            verdict += " (the feed itself fell short: host busy)"
        print(
            f"{offered:>10} {result.source_rate:>10,.0f} {result.achieved:>10,.0f} "
            f"{result.dropped:>8} {result.reconnects:>6} {result.kicks:>5} "
            f"{result.cpu_per_100k:>10.3f}  {verdict}",
            flush=True,
        )
        if sustained and (best is None or result.achieved > best.achieved):
            best = result
    if best is None:
        print("no step was sustained")
        return
    print(
        f"\nhighest sustained: {best.achieved:,.0f} events/s into RabbitMQ "
        f"(no drops, no upstream disconnect), {best.cpu_per_100k:.3f} CPU s per 100k events"
    )
    print(f"one core at this CPU cost would take about {100_000 / best.cpu_per_100k:,.0f} events/s")


def main() -> None:
    """Parse arguments and run the benchmark (or the simulator half of it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per step")
    parser.add_argument("--rates", default="", help="comma-separated offered events/s")
    parser.add_argument("--symbols", type=int, default=3000, help="simulated universe size")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument(
        "--unpaced", action="store_true", help="finish with a step as fast as the listener reads"
    )
    parser.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    if options.serve_sim:
        asyncio.run(_serve_sim(options.rate, options.symbols))
    else:
        asyncio.run(_bench(options))


if __name__ == "__main__":
    main()
