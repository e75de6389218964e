"""Benchmark: WDS fan-out from Redis publish to websocket receipt, with stalled clients.

Starts a real :class:`~mdp_wds.WidgetServer` in its own process against the real Redis, then
``--clients`` loopback websocket clients spread over ``--client-procs`` processes. Every client
follows the three leaderboards and ``--quotes`` quote feeds (drawn from ``--symbols`` symbols);
``--stalled`` of them subscribe and then never read again (tiny receive buffer), like a frozen
browser tab. The main process publishes the boards at ``--board-hz`` (``--board-bytes`` each)
and every symbol's quote at ``--quote-hz``, each payload stamped with its publish time.

Prints, for the healthy clients: messages delivered vs expected, delivery rate, p50/p99/max lag
from ``PUBLISH`` to receipt (the headline: healthy-client p99, the issue's target is < 100 ms
with 1,000 clients of which 100 stalled); for the stalled ones: when the server cut them (close
4009); and the server's peak RSS, with the 1-minute load average at start and end. Without
``--redis-url`` it runs its own ``redis-server`` on a free port: pub/sub channels are
server-wide, so publishing ``quote:*`` on a shared server would reach other users' subscribers.
Not a test: the figures depend on the machine (2 shared cores here, with
the clients and the publisher competing with the server for them).

Usage::

    uv run python bench/wds.py [--clients 1000] [--stalled 100] [--quotes 50] [--duration 20]
    uv run python bench/wds.py --clients 100 --stalled 10 --duration 5   # quick run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mdp_core.settings import Secret, load
from mdp_core.token import issue_token
from mdp_wds import WdsSettings, WidgetServer

SECRET = "bench-secret"  # noqa: S105 - a throwaway key for a loopback run
BOARDS = ("scanner:top_gainers", "scanner:top_gappers", "scanner:top_volume")


class _Stamped(msgspec.Struct):
    published_ms: float | None = None


class _Message(msgspec.Struct):
    op: str
    data: _Stamped = msgspec.field(default_factory=_Stamped)


_DECODER = msgspec.json.Decoder(_Message)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one client process runs."""

    url: str
    healthy: int
    stalled: int
    feeds: list[list[str]]
    end_at: float


def _server_main(args: argparse.Namespace, pipe: Connection) -> None:
    async def run() -> None:
        settings = load(
            WdsSettings,
            environ={},
            host="127.0.0.1",
            port=0,
            wdc_redis_url=args.redis_url,
            token_secret=Secret(SECRET),
            max_connections=args.clients + 100,
            max_connections_per_address=args.clients + 100,
            send_queue_messages=args.queue,
            max_subscriptions=args.quotes + 10,
            log_level="WARNING",
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with WidgetServer(settings) as server:
            await server.hub.wait_connected(10)
            pipe.send(server.port)
            await stop.wait()

    if args.profile:
        import cProfile  # noqa: PLC0415 - only when asked

        cProfile.runctx("asyncio.run(run())", globals(), {"run": run}, args.profile)
    else:
        asyncio.run(run())


async def _client(
    plan: Plan, feeds: list[str], stalled: bool, lags: array[float], counts: list[int]
) -> None:
    token = issue_token(SECRET, "bench", ["*"], 3_600, time.time())
    sock = None
    if stalled:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        port = int(plan.url.rsplit(":", 1)[1].split("/")[0])
        sock.connect(("127.0.0.1", port))
    options: dict[str, Any] = {"compression": None, "open_timeout": 60, "ping_interval": None}
    if sock is not None:
        options.update(sock=sock, max_queue=1)
    ws: ClientConnection = await connect(plan.url, **options)
    try:
        await ws.send(json.dumps({"op": "auth", "token": token}))
        await ws.recv()
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "feeds": feeds, "snapshot": False}))
        await ws.recv()
        counts[2] += 1
        if stalled:
            await asyncio.sleep(max(0.0, plan.end_at - time.time()))
            return

        async def read() -> None:
            async for raw in ws:
                now_ms = time.time() * 1000
                message = _DECODER.decode(raw)
                if message.op == "update" and message.data.published_ms is not None:
                    lags.append(now_ms - message.data.published_ms)
                    counts[0] += 1

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), max(0.0, plan.end_at - time.time()))
    except ConnectionClosed:
        counts[1] += 1
    finally:
        if stalled:
            ws.transport.abort()
        else:
            await ws.close()


def _clients_main(plan: Plan, pipe: Connection) -> None:
    async def run() -> tuple[array[float], list[int]]:
        lags: array[float] = array("d")
        counts = [0, 0, 0]  # received updates, closed by the server, subscribed
        tasks = []
        semaphore = asyncio.Semaphore(50)
        total = plan.healthy + plan.stalled

        async def one(index: int) -> None:
            async with semaphore:
                pass  # stagger handshakes
            await _client(plan, plan.feeds[index], index >= plan.healthy, lags, counts)

        tasks = [asyncio.ensure_future(one(i)) for i in range(total)]
        await asyncio.gather(*tasks, return_exceptions=True)
        return lags, counts

    lags, counts = asyncio.run(run())
    pipe.send((lags.tobytes(), counts))


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=60) as response:
        return dict(json.loads(response.read()))


def _rss_peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _publish(args: argparse.Namespace, symbols: Sequence[str], end_at: float) -> int:
    client = aioredis.Redis.from_url(args.redis_url)
    padding = "x" * max(0, args.board_bytes - 100)
    published = 0
    tick = 0.1
    next_at = time.time()
    try:
        while time.time() < end_at:
            pipe = client.pipeline(transaction=False)
            step = round(next_at / tick)
            if step % max(1, round(1 / (args.board_hz * tick))) == 0:
                for board in BOARDS:
                    doc = {"board": board, "published_ms": time.time() * 1000, "rows": padding}
                    pipe.publish(board, json.dumps(doc))
                    published += 1
            # Spread the quotes over the ticks of one quote period.
            period_ticks = max(1, round(1 / (args.quote_hz * tick)))
            for i, symbol in enumerate(symbols):
                if (i + step) % period_ticks == 0:
                    quote = {"symbol": symbol, "price": 10.0, "published_ms": time.time() * 1000}
                    pipe.publish(f"quote:{symbol}", json.dumps(quote))
                    published += 1
            await pipe.execute()
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.time()))
    finally:
        await client.aclose()
    return published


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--stalled", type=int, default=100)
    parser.add_argument("--quotes", type=int, default=50, help="quote feeds per client")
    parser.add_argument("--symbols", type=int, default=200, help="symbols published")
    parser.add_argument("--quote-hz", type=float, default=1.0, help="updates/s per symbol")
    parser.add_argument("--board-hz", type=float, default=1.0)
    parser.add_argument("--board-bytes", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    parser.add_argument("--queue", type=int, default=256, help="send queue cap (messages)")
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument(
        "--redis-url", default="", help="a Redis to use (default: a private redis-server)"
    )
    parser.add_argument("--profile", default="", help="write a cProfile of the server here")
    args = parser.parse_args()
    private = None if args.redis_url else _private_redis()
    if private is not None:
        args.redis_url = private[1]
    try:
        _run(args)
    finally:
        if private is not None:
            private[0].terminate()
            private[0].wait(10)


def _private_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A ``redis-server`` on a free loopback port, answering PING (its process and URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - a fixed command
        [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
         str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not _pong(port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("bench/wds.py: redis-server did not start (pass --redis-url)")
        time.sleep(0.05)  # noqa: TID251 - a script waiting for a child to bind its port
    return process, f"redis://127.0.0.1:{port}/0"


def _pong(port: int) -> bool:
    """Whether a Redis on ``port`` answers an inline PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _run(args: argparse.Namespace) -> None:  # noqa: PLR0915 - a linear script
    """The benchmark proper, against ``args.redis_url``."""
    load_start = os.getloadavg()[0]
    rng = random.Random(7)
    symbols = [f"B{i:04d}" for i in range(args.symbols)]
    healthy_total = args.clients - args.stalled
    feeds = [
        list(BOARDS) + [f"quote:{s}" for s in rng.sample(symbols, args.quotes)]
        for _ in range(args.clients)
    ]

    server_end, server_pipe = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_server_main, args=(args, server_pipe), daemon=True)
    server.start()
    port = int(server_end.recv())
    url = f"ws://127.0.0.1:{port}/ws"
    print(f"WDS on {url} (pid {server.pid}); {args.clients} clients, {args.stalled} stalled")

    warmup = 10.0 + args.clients / 100
    start_at = time.time() + warmup
    end_at = start_at + args.duration + 2.0
    plans: list[tuple[multiprocessing.Process, Connection]] = []
    procs = max(1, args.client_procs)
    for p in range(procs):
        healthy = range(p, healthy_total, procs)
        stalled = range(healthy_total + p, args.clients, procs)
        plan = Plan(
            url=url,
            healthy=len(healthy),
            stalled=len(stalled),
            feeds=[feeds[i] for i in [*healthy, *stalled]],
            end_at=end_at,
        )
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.Process(target=_clients_main, args=(plan, child), daemon=True)
        process.start()
        plans.append((process, parent))

    while _status(port)["client_subscriptions"] < args.clients * (args.quotes + 3):
        if time.time() > start_at + 30:
            break
        time.sleep(0.2)  # noqa: TID251 - a script, no event loop here
    connected_at = time.time()
    print(f"connected and subscribed: {_status(port)['clients']} clients")

    async def publish_and_watch() -> tuple[int, list[float]]:
        cut_times: list[float] = []
        publisher = asyncio.ensure_future(_publish(args, symbols, connected_at + args.duration))
        while not publisher.done():
            await asyncio.sleep(0.25)
            status = await asyncio.to_thread(_status, port)
            cut = status["disconnects"].get("too_slow", 0)
            while len(cut_times) < cut:
                cut_times.append(time.time() - connected_at)
        return await publisher, cut_times

    published, cut_times = asyncio.run(publish_and_watch())
    status = _status(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        buckets = [
            line.split("le=")[1]
            for line in response.read().decode().splitlines()
            if line.startswith("mdp_wds_delivery_lag_seconds_bucket")
        ]
    lags: array[float] = array("d")
    received = closed = subscribed = 0
    for process, pipe in plans:
        raw, counts = pipe.recv()
        chunk: array[float] = array("d")
        chunk.frombytes(raw)
        lags.extend(chunk)
        received += counts[0]
        closed += counts[1]
        subscribed += counts[2]
        process.join()
    rss = _rss_peak_mb(server.pid or 0)
    os.kill(server.pid or 0, signal.SIGTERM)
    server.join(10)

    per_client = 3 * args.board_hz + args.quotes * args.quote_hz
    expected = int(healthy_total * per_client * args.duration)
    ordered = sorted(lags)

    def pct(p: float) -> float:
        return (
            ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")
        )

    print(f"published {published} messages in {args.duration:.0f} s")
    print(
        f"healthy clients: {healthy_total}, delivered {received} of ~{expected} expected "
        f"({received / max(1, expected):.1%}), {received / args.duration:,.0f} msg/s"
    )
    print(
        f"lag publish->receipt: p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max "
        f"{ordered[-1] if ordered else float('nan'):.1f} ms, mean "
        f"{statistics.fmean(ordered) if ordered else float('nan'):.1f} ms"
    )
    if cut_times:
        print(
            f"stalled clients cut (4009): {len(cut_times)} of {args.stalled}, first at "
            f"{cut_times[0]:.1f} s, last at {cut_times[-1]:.1f} s after publishing began"
        )
    else:
        print(f"stalled clients cut (4009): 0 of {args.stalled}")
    print(f"healthy clients closed by the server: {closed}")
    print("server-side lag histogram (publish -> socket write, cumulative):", ", ".join(buckets))
    drops, disconnects = status["drops"], status["disconnects"]
    print(f"server: peak RSS {rss:.0f} MB, drops {drops}, disconnects {disconnects}")
    print(
        f"healthy-client p99 publish->receipt: {pct(99):.1f} ms ({healthy_total} healthy, "
        f"{args.stalled} stalled clients); load average (1 min) {load_start:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end"
    )


if __name__ == "__main__":
    main()
