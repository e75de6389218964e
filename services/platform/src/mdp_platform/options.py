"""Command-line options of ``mdp demo`` and ``mdp bench``."""

from __future__ import annotations

import argparse
import math
import re
from datetime import date, time

__all__ = ["add_bench_options", "add_demo_options", "parse_clock_time"]

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_clock_time(text: str) -> time:
    """``HH:MM`` in Eastern Time, for ``--start``."""
    match = _CLOCK.match(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise argparse.ArgumentTypeError(f"expected HH:MM (Eastern Time), was {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, was {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, was {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, was {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, was {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, was {text!r}")
    return int(text)


def _symbol_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"expected 1..10000 symbols, was {text!r}")
    return int(text)


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``mdp demo``."""
    market = parser.add_argument_group("simulated market")
    market.add_argument(
        "--symbols",
        type=_symbol_count,
        default=300,
        help="number of simulated symbols (%(default)s)",
    )
    market.add_argument(
        "--speed",
        type=_positive_float,
        default=5.0,
        help="simulated seconds per real second (%(default)s)",
    )
    market.add_argument(
        "--start",
        type=parse_clock_time,
        default=time(9, 28),
        help="simulated ET time to start at, e.g. 03:59 to watch the 04:00 "
        "reset or 09:28 to watch the open (default 09:28)",
    )
    market.add_argument(
        "--day",
        type=date.fromisoformat,
        default=None,
        help="simulated trading day YYYY-MM-DD (default: the latest one)",
    )
    market.add_argument("--seed", type=int, default=7, help="market seed (%(default)s)")
    transports = parser.add_argument_group("transports (default: embedded, no servers needed)")
    transports.add_argument(
        "--amqp-url",
        default=None,
        help="use this RabbitMQ instead of the in-process queue (or set MDP_AMQP_URL)",
    )
    transports.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis instead of the embedded store (or set MDP_REDIS_URL); the demo "
        "writes two databases: the URL's database N (default 0) for the internal cache (MDC) "
        "and N+1 for the widget cache (WDC), e.g. redis://host:6379/4 uses 4 and 5",
    )
    transports.add_argument(
        "--fakeredis",
        action="store_true",
        help="embed fakeredis even when redis-server is installed",
    )
    transports.add_argument(
        "--real-feeds",
        action="store_true",
        help="connect to the real Massive and Finlight feeds with the keys "
        "in MASSIVE_API_KEY / FINLIGHT_API_KEY instead of the simulators",
    )
    web = parser.add_argument_group("web")
    web.add_argument(
        "--host", default="127.0.0.1", help="address the dashboard and WDS bind (%(default)s)"
    )
    web.add_argument(
        "--port", type=_port, default=8000, help="dashboard port, 0 for any free one (%(default)s)"
    )
    web.add_argument(
        "--wds-port", type=_port, default=4202, help="WDS port, 0 for any free one (%(default)s)"
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )


def _clock_time(text: str) -> str:
    """``HH:MM`` (24-hour clock), checked; returned as given."""
    hour, _, minute = text.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        msg = f"expected a time of day as HH:MM, was {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return f"{int(hour):02d}:{int(minute):02d}"


def add_bench_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``mdp bench``."""
    parser.add_argument(
        "--symbols",
        type=_symbol_count,
        default=500,
        help="number of simulated symbols (%(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processor worker processes (%(default)s)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="MDQ partitions per event type, each owned by one worker; 1 shares one queue "
        "per type (default: one per worker)",
    )
    parser.add_argument(
        "--seconds",
        type=_positive_float,
        default=20.0,
        help="measuring time per phase (%(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=10_000.0,
        help="offered events/s of the fixed-rate phase (%(default)s)",
    )
    parser.add_argument(
        "--search-seconds",
        type=_non_negative_float,
        default=5.0,
        help="measured seconds per step of the sustained-rate search, which offers rising "
        "fixed rates and keeps the highest the pipeline keeps up with; 0 skips it (%(default)s)",
    )
    parser.add_argument(
        "--saturation",
        choices=("window", "open"),
        default="window",
        help="the saturation phase: 'window' offers at most 2.5 s of the processors' rate "
        "beyond what they have flushed (their capacity with a bounded backlog); 'open' as "
        "fast as the listener reads, overfeeding the shared cores (%(default)s)",
    )
    parser.add_argument(
        "--tape-rate",
        type=_non_negative_float,
        default=200_000.0,
        help="events/s of the saturation phase the simulator generates and encodes before it "
        "(the tape, at most 3 million events, so the load generator does not take the cores it "
        "measures; past it, events are generated live); 0 generates every phase live "
        "(%(default)s)",
    )
    parser.add_argument(
        "--search-start",
        type=_positive_float,
        default=None,
        help="the search's first offered events/s (default: 1.2 times --rate)",
    )
    parser.add_argument(
        "--mix", default="A,T", help="event types to stream, e.g. A,T or A,T,Q (%(default)s)"
    )
    parser.add_argument(
        "--clients", type=int, default=20, help="loopback websocket clients (%(default)s)"
    )
    parser.add_argument(
        "--start",
        type=_clock_time,
        default="10:00",
        help="simulated market time (ET) the run starts at, e.g. 09:28 to cross the open "
        "(%(default)s)",
    )
    parser.add_argument(
        "--component-env",
        action="append",
        metavar="COMPONENT:NAME=VALUE",
        help="a setting for one component (listener, processor, scanner, wds), e.g. "
        "processor:MDP_FLUSH_BUSY_FRACTION=1; repeatable, checked against the component's "
        "settings before the run and recorded in the report",
    )
    parser.add_argument("--amqp-url", default=None, help="RabbitMQ (or MDP_AMQP_URL)")
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a shared Redis, databases 13/14 (or MDP_REDIS_URL); default: a private redis-server",
    )
    parser.add_argument(
        "--report",
        default="bench/results/latest.json",
        help="where the JSON report is written (%(default)s)",
    )
