"""What one ``mdp bench`` run is: its settings, the mix, the Redis databases it may use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from mdp_platform.bench.simulator import mix_kinds

__all__ = [
    "BENCH_COMPONENTS",
    "COMPONENT_SETTINGS",
    "DEFAULT_AMQP",
    "MDC_DB",
    "WDC_DB",
    "BenchConfig",
    "BenchError",
    "ComponentEnv",
    "check_loopback",
    "parse_component_env",
    "parse_mix",
    "topics_of",
    "with_database",
]

MDC_DB: Final = 13
WDC_DB: Final = 14
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_AMQP: Final = "amqp://guest:guest@127.0.0.1:5672/"
#: The components a run starts as subprocesses, by the names reports and options use, with
#: their settings classes (module, class): what ``--component-env`` may set for each.
COMPONENT_SETTINGS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "listener": (
        ("mdp_listener.settings", "ListenerSettings"),
        ("mdp_queues.settings", "QueueSettings"),
    ),
    "processor": (
        ("mdp_processor.settings", "ProcessorSettings"),
        ("mdp_queues.settings", "QueueSettings"),
    ),
    "scanner": (("mdp_scanner.settings", "ScannerSettings"),),
    "wds": (("mdp_wds.settings", "WdsSettings"),),
}
BENCH_COMPONENTS: Final = tuple(COMPONENT_SETTINGS)


class BenchError(RuntimeError):
    """The benchmark cannot run (a server is unreachable, a URL is not loopback, ...)."""


@dataclass(frozen=True, slots=True)
class ComponentEnv:
    """One environment variable a run gives one component (``--component-env``).

    The components start with a clean environment, so that stray variables cannot skew a
    run; a setting compared A/B is named on the command line instead, and the report records
    it beside the figures it produced.
    """

    component: str
    name: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """One benchmark run.

    Attributes:
        symbols: simulated symbols.
        workers: processor worker processes.
        partitions: MDQ partitions per event type (1: unpartitioned, competing consumers).
        seconds: measured seconds per phase.
        rate: offered events/s of the fixed-rate phase.
        mix: event types streamed (``A`` aggregates, ``T`` trades, ``Q`` quotes).
        clients: loopback websocket clients.
        amqp_url: RabbitMQ (loopback only).
        redis_url: a shared Redis (loopback only; databases 13 and 14 are used and flushed);
            None starts a private ``redis-server``, because pub/sub channels are server-wide
            and other users of a shared server would publish into the measured feeds.
        report: where the JSON report goes.
        warmup_seconds: unmeasured streaming before the first phase.
        quotes_each: quote feeds each client follows.
        seed: market seed.
        start: simulated market time (ET, ``HH:MM``) the run starts at.
        search_seconds: measured seconds per step of the sustained-rate search
            (:mod:`mdp_platform.bench.sustained`); 0 skips the search.
        search_start: the search's first rate (None: ``rate`` times ``search_factor``, the
            step above the fixed phase).
        search_factor: each next step offers the last rate times this.
        search_steps: the most steps the search takes.
        search_lag_ms: a step whose event -> Redis p99 is above this was not sustained.
        search_settle_seconds: unmeasured streaming at each step's rate before its window.
        saturation: ``window`` keeps the saturation phase's backlog bounded (a closed loop on
            the processors' progress); ``open`` offers as fast as the listener reads.
        tape_rate: events/s of the saturation phase generated and encoded before it (the
            fixed phase's events are too, at ``rate``); 0 generates every phase live. The
            load generator shares the cores it measures: live, it costs more CPU per event
            at saturation than the processor.
        component_env: settings given to single components, checked against their settings
            classes when the run builds their environments.
    """

    symbols: int = 500
    workers: int = 1
    partitions: int = 1
    seconds: float = 20.0
    rate: float = 10_000.0
    mix: tuple[str, ...] = ("A", "T")
    clients: int = 20
    amqp_url: str = DEFAULT_AMQP
    redis_url: str | None = None
    report: Path = Path("bench/results/latest.json")
    warmup_seconds: float = 3.0
    quotes_each: int = 10
    seed: int = 7
    start: str = "10:00"
    search_seconds: float = 5.0
    search_start: float | None = None
    search_factor: float = 1.2
    search_steps: int = 12
    search_lag_ms: float = 1_000.0
    search_settle_seconds: float = 1.0
    saturation: str = "window"
    tape_rate: float = 200_000.0
    component_env: tuple[ComponentEnv, ...] = ()

    def redis(self, database: int) -> str:
        """The URL of ``database`` on the benchmark's Redis.

        Raises:
            BenchError: before a Redis was chosen.
        """
        if self.redis_url is None:
            msg = "no Redis chosen yet"
            raise BenchError(msg)
        return with_database(self.redis_url, database)


def parse_mix(text: str) -> tuple[str, ...]:
    """``A,T,Q`` -> ``("A", "T", "Q")``.

    Raises:
        BenchError: on an unknown or empty mix.
    """
    items = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    unknown = [item for item in items if item not in {"A", "T", "Q"}]
    if not items or unknown:
        msg = f"--mix takes A (aggregates), T (trades) and Q (quotes), e.g. A,T; was {text!r}"
        raise BenchError(msg)
    return items


def parse_component_env(text: str) -> ComponentEnv:
    """``processor:MDP_FLUSH_BUSY_FRACTION=1`` -> its component, variable and value.

    Only the shape is checked here; whether the component has such a setting, and whether the
    value is one it accepts, is checked against its settings class before the run starts.

    Raises:
        BenchError: on another shape or an unknown component.
    """
    component, colon, assignment = text.partition(":")
    name, equals, value = assignment.partition("=")
    component, name = component.strip(), name.strip()
    if not (colon and equals and component and name):
        msg = (
            "--component-env takes COMPONENT:NAME=VALUE, e.g. "
            f"processor:MDP_LOG_LEVEL=INFO; was {text!r}"
        )
        raise BenchError(msg)
    if component not in BENCH_COMPONENTS:
        known = ", ".join(BENCH_COMPONENTS)
        msg = f"--component-env names a component the benchmark runs ({known}); was {component!r}"
        raise BenchError(msg)
    return ComponentEnv(component, name, value)


def topics_of(mix: Sequence[str]) -> tuple[str, ...]:
    """Listener subscriptions for a mix (aggregates bring minute bars and LULD along)."""
    return tuple(f"{kind}.*" for kind in sorted(mix_kinds(tuple(mix))))


def with_database(url: str, database: int) -> str:
    """``url`` with its Redis database replaced."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def check_loopback(url: str, what: str) -> None:
    """Refuse any URL that is not on loopback.

    Raises:
        BenchError: naming the offending host.
    """
    host = urlsplit(url).hostname or ""
    if host not in _LOOPBACK:
        msg = f"the benchmark only talks to loopback; the {what} URL points at {host!r}"
        raise BenchError(msg)
