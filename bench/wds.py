"""Benchmark: WDS fan-out from Redis publish to websocket receipt, with stalled clients.

Starts a real :class:`~mdp_wds.WidgetServer` in its own process against the real Redis, then
``--clients`` loopback websocket clients spread over ``--client-procs`` processes. Every client
follows the three leaderboards and ``--quotes`` quote feeds (drawn from ``--symbols`` symbols);
``--stalled`` of them subscribe and then never read again (tiny receive buffer), like a frozen
browser tab. The main process publishes the boards at ``--board-hz`` (``--board-bytes`` each)
and every symbol's quote at ``--quote-hz``, each payload stamped with its publish time.

Prints, for the healthy clients: messages delivered vs expected (exactly what they follow of
what was published), delivery rate, p50/p99/max lag from ``PUBLISH`` to receipt, for boards and
quotes apart and each second's p99 (the headline: healthy-client p99, the issue's target is
< 100 ms with 1,000 clients of which 100 stalled); for the stalled ones: when the server cut
them (close 4009); the CPU seconds of the server and of the clients while publishing, the
server's garbage-collector pauses meanwhile (it applies the service's collector policy,
``settle_heap``) and its peak RSS, with the 1-minute load average at start and end. The healthy
clients run websockets' sans-I/O protocol in a callback and do not collect garbage: the
instrument must cost less than what it measures. Without
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
import gc
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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from mdp_core.settings import Secret, load
from mdp_core.token import issue_token
from mdp_runtime import settle_heap
from mdp_wds import WdsSettings, WidgetServer

SECRET = "bench-secret"  # noqa: S105 - a throwaway key for a loopback run
BOARDS = ("scanner:top_gainers", "scanner:top_gappers", "scanner:top_volume")


class _Stamped(msgspec.Struct):
    published_ms: float | None = None


class _Message(msgspec.Struct):
    op: str
    feed: str = ""
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


class _CollectorPauses:
    """The server's garbage-collector pauses: (wall time, generation, pause ms) each."""

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses: list[tuple[float, int, float]] = []

    def observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self.started) * 1000
        self.pauses.append((time.time(), info["generation"], pause_ms))

    def summary(self, since: float) -> str:
        """Count, total and longest pause by generation after ``since`` (wall time)."""
        by_generation: dict[int, list[float]] = {}
        for at, generation, pause_ms in self.pauses:
            if at >= since:
                by_generation.setdefault(generation, []).append(pause_ms)
        return (
            ", ".join(
                f"gen {g}: {len(p)} ({sum(p):.0f} ms, longest {max(p):.1f} ms)"
                for g, p in sorted(by_generation.items())
            )
            or "none"
        )


def _server_main(args: argparse.Namespace, pipe: Connection) -> None:
    pauses = _CollectorPauses()
    gc.callbacks.append(pauses.observe)

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
            settle_heap(settings.gc_young_threshold)  # as the service's entry point does
            await server.hub.wait_connected(10)
            pipe.send(server.port)
            await stop.wait()

    if args.profile:
        import cProfile  # noqa: PLC0415 - only when asked

        cProfile.runctx("asyncio.run(run())", globals(), {"run": run}, args.profile)
    else:
        asyncio.run(run())
    pipe.send(pauses.summary(since=pipe.recv()))


@dataclass(slots=True)
class _Lags:
    """Publish -> receipt lags (ms) of one client process, boards and quotes apart."""

    boards: array[float] = field(default_factory=lambda: array("d"))
    quotes: array[float] = field(default_factory=lambda: array("d"))
    published: array[float] = field(default_factory=lambda: array("d"))  # per lag, in order
    lags: array[float] = field(default_factory=lambda: array("d"))


class _Reader(asyncio.Protocol):
    """A healthy client on websockets' sans-I/O protocol: frames are handled in the callback.

    The asyncio client (a reader task, an assembler and a future per message) costs several
    times more CPU per message; with 900 clients reading ~48,000 messages/s on the server's
    own two cores, that cost, not the server, made most of the measured lag.
    """

    def __init__(self, url: str, lags: _Lags, counts: list[int]) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.lags = lags
        self.counts = counts
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()
        self.opened = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.subscribed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if not self.opened.done():
                    self.opened.set_result(event.status_code)
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                if not self.subscribed:
                    self.replies.put_nowait(bytes(event.data))
                    continue
                now_ms = time.time() * 1000
                message = _DECODER.decode(event.data)
                if message.op == "update" and message.data.published_ms is not None:
                    lag = now_ms - message.data.published_ms
                    self.lags.published.append(message.data.published_ms)
                    self.lags.lags.append(lag)
                    if message.feed.startswith("scanner:"):
                        self.lags.boards.append(lag)
                    else:
                        self.lags.quotes.append(lag)
                    self.counts[0] += 1
            elif (
                isinstance(event, Frame)
                and event.opcode is Opcode.CLOSE
                and Close.parse(event.data).code != CloseCode.GOING_AWAY  # not our shutdown
            ):
                self.counts[1] += 1
        self._flush()

    def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None  # set on connection
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def _healthy_client(
    plan: Plan, feeds: list[str], token: str, lags: _Lags, counts: list[int]
) -> None:
    port = int(plan.url.rsplit(":", 1)[1].split("/")[0])
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(
        lambda: _Reader(plan.url, lags, counts), "127.0.0.1", port
    )
    try:
        async with asyncio.timeout(60):
            await reader.opened
        reader.send(json.dumps({"op": "auth", "token": token}))
        await reader.replies.get()
        reader.send(json.dumps({"op": "subscribe", "id": 1, "feeds": feeds, "snapshot": False}))
        reader.subscribed = True  # replies now interleave with updates; decode them all
        counts[2] += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, plan.end_at - time.time())):
                await asyncio.shield(reader.closed)
    finally:
        if reader.transport is not None:
            reader.transport.abort()


async def _stalled_client(plan: Plan, feeds: list[str], token: str, counts: list[int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    port = int(plan.url.rsplit(":", 1)[1].split("/")[0])
    sock.connect(("127.0.0.1", port))
    options: dict[str, Any] = {"compression": None, "open_timeout": 60, "ping_interval": None}
    ws: ClientConnection = await connect(plan.url, sock=sock, max_queue=1, **options)
    try:
        await ws.send(json.dumps({"op": "auth", "token": token}))
        await ws.recv()
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "feeds": feeds, "snapshot": False}))
        await ws.recv()
        counts[2] += 1
        await asyncio.sleep(max(0.0, plan.end_at - time.time()))
    except ConnectionClosed:
        counts[1] += 1
    finally:
        ws.transport.abort()


async def _client(
    plan: Plan, feeds: list[str], stalled: bool, lags: _Lags, counts: list[int]
) -> None:
    token = issue_token(SECRET, "bench", ["*"], 3_600, time.time())
    if stalled:
        await _stalled_client(plan, feeds, token, counts)
    else:
        await _healthy_client(plan, feeds, token, lags, counts)


def _clients_main(plan: Plan, pipe: Connection) -> None:
    # The instrument must not pause: no cyclic collection in the client processes (what
    # they allocate per message is freed by reference counting; the run is bounded).
    gc.disable()

    async def run() -> tuple[_Lags, list[int]]:
        lags = _Lags()
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
    pipe.send(
        (
            lags.boards.tobytes(),
            lags.quotes.tobytes(),
            lags.published.tobytes(),
            lags.lags.tobytes(),
            counts,
        )
    )


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=60) as response:
        return dict(json.loads(response.read()))


def _wait_until_written(port: int) -> None:
    """Return once the server's count of messages written stops moving (the last ticks)."""
    settled = _status(port)["messages_out"]
    while True:
        time.sleep(0.2)  # noqa: TID251 - a script polling a counter, no event loop here
        now_out = _status(port)["messages_out"]
        if now_out == settled:
            return
        settled = now_out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _publish(args: argparse.Namespace, symbols: Sequence[str], end_at: float) -> Counter[str]:
    client = aioredis.Redis.from_url(args.redis_url)
    padding = "x" * max(0, args.board_bytes - 100)
    published: Counter[str] = Counter()  # publications by channel
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
                    published[board] += 1
            # Spread the quotes over the ticks of one quote period.
            period_ticks = max(1, round(1 / (args.quote_hz * tick)))
            for i, symbol in enumerate(symbols):
                if (i + step) % period_ticks == 0:
                    quote = {"symbol": symbol, "price": 10.0, "published_ms": time.time() * 1000}
                    pipe.publish(f"quote:{symbol}", json.dumps(quote))
                    published[f"quote:{symbol}"] += 1
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
    # The server's shutdown (close 1001) ends the clients; this is only a backstop.
    end_at = start_at + 30 + args.duration + 60
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
    client_pids = [process.pid or 0 for process, _ in plans]
    cpu_start = (_cpu_seconds(server.pid or 0), sum(map(_cpu_seconds, client_pids)))

    async def publish_and_watch() -> tuple[Counter[str], list[float]]:
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
    _wait_until_written(port)
    server_cpu = _cpu_seconds(server.pid or 0) - cpu_start[0]
    clients_cpu = sum(map(_cpu_seconds, client_pids)) - cpu_start[1]
    status = _status(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        buckets = [
            line.split("le=")[1]
            for line in response.read().decode().splitlines()
            if line.startswith("mdp_wds_delivery_lag_seconds_bucket")
        ]
    boards: array[float] = array("d")
    quotes: array[float] = array("d")
    published_at: array[float] = array("d")
    all_lags: array[float] = array("d")
    rss = _rss_peak_mb(server.pid or 0)
    os.kill(server.pid or 0, signal.SIGTERM)  # its close (1001) ends the clients
    server_end.send(connected_at)
    collector = server_end.recv()
    server.join(10)
    received = closed = subscribed = 0
    for process, pipe in plans:
        raw_boards, raw_quotes, raw_published, raw_lags, counts = pipe.recv()
        boards.frombytes(raw_boards)
        quotes.frombytes(raw_quotes)
        published_at.frombytes(raw_published)
        all_lags.frombytes(raw_lags)
        received += counts[0]
        closed += counts[1]
        subscribed += counts[2]
        process.join()

    # Exactly what the healthy clients follow of what was published.
    expected = sum(published[feed] for client in feeds[:healthy_total] for feed in client)
    ordered = sorted(boards + quotes)

    def pct(p: float, values: Sequence[float] = ordered) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")

    print(f"published {sum(published.values())} messages in {args.duration:.0f} s")
    print(
        f"healthy clients: {healthy_total}, delivered {received} of {expected} expected "
        f"({received / max(1, expected):.1%}), {received / args.duration:,.0f} msg/s"
    )
    print(
        f"lag publish->receipt: p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max "
        f"{ordered[-1] if ordered else float('nan'):.1f} ms, mean "
        f"{statistics.fmean(ordered) if ordered else float('nan'):.1f} ms"
    )
    for kind, values in (("boards", sorted(boards)), ("quotes", sorted(quotes))):
        print(f"  {kind}: {len(values)} updates, p50 {pct(50, values):.1f} ms, p99 "
              f"{pct(99, values):.1f} ms")  # fmt: skip
    by_second: dict[int, list[float]] = {}
    for at_ms, lag in zip(published_at, all_lags, strict=True):
        by_second.setdefault(int(at_ms / 1000 - connected_at), []).append(lag)
    print(
        "p99 ms by second of publishing: "
        + " ".join(f"{pct(99, sorted(by_second[s])):.0f}" for s in sorted(by_second))
    )
    print(
        f"CPU seconds while publishing: server {server_cpu:.2f}, clients {clients_cpu:.2f} "
        f"({server_cpu / max(1, received) * 1e6:.1f} us of server CPU per delivered message)"
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
    print(f"server garbage-collector pauses while publishing: {collector}")
    print(
        f"healthy-client p99 publish->receipt: {pct(99):.1f} ms ({healthy_total} healthy, "
        f"{args.stalled} stalled clients); load average (1 min) {load_start:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end"
    )


if __name__ == "__main__":
    main()
