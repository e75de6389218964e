"""The ``mdp-sim`` command: serve the offline market, or record a real Massive session.

``mdp-sim serve --symbols 500 --speed 10 --start 09:25`` starts every simulated provider on
loopback and prints the URLs, the keys and a one-line client example; ``mdp-sim record --out
FILE --key KEY --topics T.*,A.*`` records a real feed for later ``serve --replay FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import signal
import sys
from datetime import date, time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TextIO

from mdp_core.calendar import MarketCalendar
from mdp_core.logging import configure_logging
from mdp_sim.market import not_a_trading_day
from mdp_sim.record import RecordingPathError, record
from mdp_sim.scenario import MAX_SYMBOLS, ScenarioConfig, ScenarioError
from mdp_sim.server import SimConfig, SimServers

__all__ = ["CANNOT_LISTEN", "ListenError", "build_parser", "main", "serve", "sim_config"]

_UNPACED = {"max", "none", "unpaced"}
CANNOT_LISTEN = 71
"""Exit status of ``serve`` when a port it was given is taken (sysexits' EX_OSERR, as the
services' ``ExitCode.OSERR``): a caller that picked the ports itself (a test harness) can tell
a port taken in the meantime from any other failure."""


class ListenError(Exception):
    """A simulated provider could not bind its port: another process holds it."""


def _speed(raw: str) -> float | None:
    if raw.lower() in _UNPACED:
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        msg = f"not a number or 'max': {raw!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not value > 0:
        msg = f"speed must be positive: {raw!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _rate(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        msg = f"not a number: {raw!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not 0 < value < math.inf:
        msg = f"rate must be a positive number of events per second: {raw!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _clock_time(raw: str) -> time:
    try:
        return time.fromisoformat(raw)
    except ValueError as exc:
        msg = f"not an HH:MM[:SS] time: {raw!r}"
        raise argparse.ArgumentTypeError(msg) from exc


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        msg = f"not a YYYY-MM-DD date: {raw!r}"
        raise argparse.ArgumentTypeError(msg) from exc


def _release() -> str:
    try:
        return version("mdp-sim")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mdp-sim`` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="mdp-sim",
        description="An offline market: Massive- and Finlight-compatible servers on loopback.",
    )
    parser.add_argument("--version", action="version", version=f"mdp-sim {_release()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "serve",
        help="serve the synthetic market (or a recording) until interrupted",
        description="Start the Massive websocket and REST servers and the Finlight websocket "
        "and REST servers on loopback, fed by a seeded synthetic market or a recording.",
    )
    run.add_argument("--symbols", type=int, default=300, help=f"universe size, 1..{MAX_SYMBOLS}")
    run.add_argument("--seed", type=int, default=7, help="random seed (same seed, same stream)")
    run.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="simulated seconds per real second, or 'max' to go as fast as clients read",
    )
    run.add_argument("--start", type=_clock_time, default=time(9, 25), help="ET start, HH:MM")
    run.add_argument("--day", type=_day, default=None, help="trading day (default: latest)")
    run.add_argument("--rate", type=_rate, default=None, help="target events per second")
    run.add_argument("--no-quotes", action="store_true", help="leave out Q events")
    run.add_argument("--activity", type=float, default=1.0, help="trade intensity multiplier")
    run.add_argument("--news-per-hour", type=float, default=30.0, help="Finlight article rate")
    run.add_argument("--replay", type=Path, default=None, help="serve a JSONL recording instead")
    run.add_argument("--replay-loop", action="store_true", help="restart the recording at its end")
    run.add_argument("--host", default="127.0.0.1", help="interface to bind (keep loopback)")
    run.add_argument("--port", type=int, default=0, help="Massive websocket port (0: any)")
    run.add_argument("--rest-port", type=int, default=0, help="Massive REST port (0: any)")
    run.add_argument("--finlight-port", type=int, default=0, help="Finlight websocket port")
    run.add_argument("--finlight-rest-port", type=int, default=0, help="Finlight REST port")
    run.add_argument(
        "--control-port",
        type=int,
        default=None,
        help="also serve the fault-control HTTP API on this loopback port (0: any)",
    )
    run.add_argument("--key", default=None, help="Massive API key to accept (default: random)")
    run.add_argument("--finlight-key", default=None, help="Finlight API key (default: random)")

    rec = commands.add_parser(
        "record",
        help="record a real Massive feed to JSONL (with your own key)",
        description="Record every frame of a Massive stocks websocket session, as received, "
        "to a JSONL file outside the repository.",
    )
    rec.add_argument("--out", type=Path, required=True, help="JSONL file to append to")
    rec.add_argument("--key", required=True, help="your Massive API key")
    rec.add_argument("--topics", default="T.*,A.*", help="comma-separated subscriptions")
    rec.add_argument("--feed", default="socket.massive.com", help="feed host[:port]")
    rec.add_argument("--insecure", action="store_true", help="ws:// instead of wss://")
    rec.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    rec.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    return parser


def sim_config(args: argparse.Namespace) -> SimConfig:
    """Turn parsed ``serve`` arguments into a :class:`SimConfig`.

    Raises:
        ScenarioError: if the scenario arguments describe no market (``--day`` not a
            trading day included, so the command says so in one line before starting).
    """
    if args.day is not None:
        problem = not_a_trading_day(args.day, MarketCalendar())
        if problem is not None:
            raise ScenarioError(problem)
    scenario = ScenarioConfig(
        seed=args.seed,
        symbols=args.symbols,
        trading_day=args.day,
        start=args.start,
        quotes=not args.no_quotes,
        news_per_hour=args.news_per_hour,
        activity=args.activity,
    )
    return SimConfig(
        scenario=scenario,
        speed=args.speed,
        rate=args.rate,
        api_key=args.key,
        finlight_api_key=args.finlight_key,
        host=args.host,
        massive_ws_port=args.port,
        rest_port=args.rest_port,
        finlight_ws_port=args.finlight_port,
        finlight_rest_port=args.finlight_rest_port,
        replay=args.replay,
        replay_loop=args.replay_loop,
        control_port=args.control_port,
    )


def describe(sim: SimServers) -> str:
    """What a user needs to connect: URLs, keys and a one-line client example."""
    config = sim.config
    speed = "as fast as clients read" if config.speed is None else f"{config.speed:g}x"
    source = (
        f"replaying {config.replay}"
        if config.replay is not None
        else f"synthetic market: {config.scenario.symbols} symbols, seed {config.scenario.seed}, "
        f"{sim.market.trading_day} from {config.scenario.start:%H:%M} ET"
    )
    example = (
        f"NO_PROXY=127.0.0.1 python -c 'from massive import WebSocketClient as C; "
        f'C(api_key="{sim.api_key}", feed="{sim.massive_feed}", secure=False, '
        f'subscriptions=["T.*"]).run(print)\''
    )
    lines = [
        f"mdp-sim: {source}, {speed}",
        f"  Massive websocket   {sim.massive_ws_url}   (feed={sim.massive_feed}, secure=False)",
        f"  Massive REST        {sim.rest_base}",
        f"  Finlight websocket  {sim.finlight_wss_url}",
        f"  Finlight REST       {sim.finlight_base_url}",
        f"  Massive API key     {sim.api_key}",
        f"  Finlight API key    {sim.finlight_api_key}",
    ]
    if sim.control_url is not None:
        lines.append(f"  Fault control       {sim.control_url}   (GET /metrics, POST /faults)")
    lines += ["Example:", f"  {example}", "Press Ctrl-C to stop."]
    return "\n".join(lines)


async def serve(config: SimConfig, *, stop: asyncio.Event, out: TextIO) -> None:
    """Run the simulator until ``stop`` is set, after printing how to connect."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            sim = await stack.enter_async_context(SimServers(config))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # The servers bound so far are closed again (SimServers.start).
            raise ListenError(f"cannot listen: {exc.strerror or exc}") from exc
        print(describe(sim), file=out, flush=True)
        await stop.wait()


async def _serve_until_signal(config: SimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await serve(config, stop=stop, out=sys.stdout)


def _configure_logging() -> None:
    """Console logging on stderr for the command (events with their ``extra`` context).

    The library modules never configure logging; they log stdlib records (``extra={...}``) so
    that a process which configures nothing, like the bench's simulator child, keeps its
    standard output clean.
    """
    configure_logging("mdp-sim", "WARNING", "console", sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mdp-sim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            config = sim_config(args)
        except ScenarioError as exc:
            print(f"mdp-sim: {exc}", file=sys.stderr)
            return 2
        if config.replay is not None and not config.replay.is_file():
            print(f"mdp-sim: no recording at {config.replay}", file=sys.stderr)
            return 2
        _configure_logging()
        try:
            asyncio.run(_serve_until_signal(config))
        except ListenError as exc:
            print(f"mdp-sim: {exc}", file=sys.stderr)
            return CANNOT_LISTEN
        return 0
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    _configure_logging()
    try:
        result = asyncio.run(
            record(
                args.out,
                api_key=args.key,
                topics=topics,
                feed=args.feed,
                secure=not args.insecure,
                max_frames=args.max_frames,
                duration=args.duration,
            )
        )
    except RecordingPathError as exc:
        print(f"mdp-sim: {exc}", file=sys.stderr)
        return 2
    print(f"recorded {result.frames} frames ({result.bytes_written} bytes) to {result.path}")
    return 0
