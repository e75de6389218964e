"""The components of ``mdp bench`` as subprocesses: environments, start, readiness, stop.

Each component runs through its console script with a clean environment built here (nothing
inherited, so stray variables cannot skew a run), is ready when its ``/readyz`` says so, and
reports its counters on ``/status``. The simulator runs as :mod:`mdp_platform.bench.simulator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import signal
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Final

import aiohttp
import msgspec

from mdp_core.ports import free_port
from mdp_core.settings import describe, load
from mdp_platform.bench.config import (
    COMPONENT_SETTINGS,
    MDC_DB,
    WDC_DB,
    BenchConfig,
    BenchError,
    ComponentEnv,
    topics_of,
)
from mdp_platform.bench.processes import ProcessTree, holds_port
from mdp_platform.bench.report import flatten
from mdp_platform.bench.simulator import SimProcessConfig
from mdp_runtime.lifecycle import ExitCode

__all__ = [
    "Service",
    "SimProcess",
    "build_services",
    "child_env",
    "free_port",
    "processor_env",
    "with_component_env",
]

#: The options that set what the benchmark itself puts in a component's environment.
_OPTION_OF: Final[Mapping[str, str]] = {
    "MDP_WORKERS": "--workers",
    "MDP_MDQ_PARTITIONS": "--partitions",
    "MDP_MASSIVE_TOPICS": "--mix",
    "MDP_AMQP_URL": "--amqp-url",
    "MDP_REDIS_URL": "--redis-url",
    "MDP_MDC_REDIS_URL": "--redis-url",
    "MDP_WDC_REDIS_URL": "--redis-url",
}
_READY_TIMEOUT: Final = 40.0
#: How far ahead of the wall clock the processor accepts events in a run (a day: the
#: simulated trading day from ``--start`` ET, whatever the time of day of the run).
SIMULATED_DAY_AHEAD_SECONDS: Final = 86_400
_STOP_TIMEOUT: Final = 15.0
_PORT_RETRIES: Final = 3  # starts again on fresh ports after that, per service
_PORT_VARIABLES: Final = ("MDP_HEALTH_PORT", "MDP_WDS_PORT")  # a component's own ports


@dataclass(slots=True)
class Service:
    """One component run as a subprocess through its console script.

    ``missing`` says why the stage is absent (not installed, exited, never ready): the
    benchmark reports such a stage as missing instead of measuring something else.
    """

    name: str
    script: str
    module: str
    env: dict[str, str]
    port: int
    log: Path
    process: asyncio.subprocess.Process | None = None
    tree: ProcessTree | None = None
    missing: str | None = None
    bindir: Path | None = None
    port_retries: int = _PORT_RETRIES

    @property
    def base_url(self) -> str:
        """Where the service serves ``/status`` and ``/metrics``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, bindir: Path) -> None:
        """Start the console script from ``bindir``, or mark the stage missing."""
        if find_spec(self.module) is None or not (bindir / self.script).exists():
            self.missing = f"{self.script} is not available ({self.module} not importable)"
            return
        self.bindir = bindir
        # A start again (on a fresh port, or after a fault) keeps the earlier starts' log.
        again = self.port_retries < _PORT_RETRIES
        with self.log.open("ab" if again else "wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(bindir / self.script),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.tree = ProcessTree([self.process.pid])

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = _READY_TIMEOUT) -> None:
        """Poll ``/readyz`` until 200 (bounded); an exit or a timeout marks the stage missing."""
        if self.process is None:
            return
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                if await self._start_on_a_fresh_port():
                    deadline = time.monotonic() + within
                    continue
                self.missing = (
                    f"{self.script} exited with {self.process.returncode}; see {self.log}"
                )
                self.process = None
                return
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{self.base_url}/readyz") as response:
                    if response.status == 200 and self._holds_its_port():
                        return
            await asyncio.sleep(0.2)
        self.missing = f"{self.script} not ready within {within:.0f} s; see {self.log}"

    def _holds_its_port(self) -> bool:
        """Whether this component listens on its port (another process may answer there)."""
        if self.tree is None:
            return False
        return holds_port(self.port, self.tree.members())

    async def _start_on_a_fresh_port(self) -> bool:
        """Start again on a fresh port after an exit because the port was taken; else False.

        The port was picked free and bound a moment later: another process can take it in
        between. The variables that held it get the new one (the WDS serves clients on it).
        """
        process, bindir = self.process, self.bindir
        if process is None or bindir is None or self.port_retries <= 0:
            return False
        if process.returncode != ExitCode.OSERR:
            return False
        self.port_retries -= 1
        old, self.port = str(self.port), free_port()
        self.env = {
            name: str(self.port) if name in _PORT_VARIABLES and value == old else value
            for name, value in self.env.items()
        }
        await self.start(bindir)
        return True

    async def status(self, http: aiohttp.ClientSession) -> dict[str, float]:
        """The component's ``/status`` metrics, flattened; empty when unreachable."""
        if self.process is None:
            return {}
        try:
            async with http.get(f"{self.base_url}/status") as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}
        metrics = body.get("metrics", body) if isinstance(body, dict) else {}
        return flatten(metrics)

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a bounded wait; returns the exit code."""
        process = self.process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                return await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()


class SimProcess:
    """The simulator subprocess (:mod:`mdp_platform.bench.simulator`) and its line protocol."""

    def __init__(self, config: SimProcessConfig, env: dict[str, str], log: Path) -> None:
        self.config = config
        self.env = env
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.tree: ProcessTree | None = None
        self.feed = ""
        self.rest = ""
        self.symbols: list[str] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the simulator process and wait for its ``ready`` line (ports, symbols)."""
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mdp_platform.bench.simulator",
                msgspec.json.encode(self.config).decode(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env,
                limit=64 * 1024 * 1024,
                start_new_session=True,
            )
        self.tree = ProcessTree([self.process.pid])
        ready = await self._read(within=_READY_TIMEOUT)
        self.feed, self.rest = str(ready["feed"]), str(ready["rest"])
        self.symbols = [str(symbol) for symbol in ready.get("symbols", [])]

    async def _read(self, *, within: float) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        async with asyncio.timeout(within):
            line = await self.process.stdout.readline()
        if not line:
            msg = f"the simulator process ended; see {self.log}"
            raise BenchError(msg)
        reply = msgspec.json.decode(line)
        if not isinstance(reply, dict) or reply.get("op") == "error":
            msg = f"the simulator process answered {reply!r}"
            raise BenchError(msg)
        return reply

    async def ask(self, command: dict[str, object], *, within: float = 30.0) -> dict[str, Any]:
        """Send one command line and return the reply line (bounded by ``within`` seconds)."""
        async with self._lock:
            assert self.process is not None
            assert self.process.stdin is not None
            self.process.stdin.write(msgspec.json.encode(command) + b"\n")
            await self.process.stdin.drain()
            return await self._read(within=within)

    async def stop(self) -> None:
        """Close its stdin (it exits), kill it after a bounded wait."""
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def child_env(bindir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: nothing inherited, so stray variables cannot skew a run."""
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        "MDP_LOG_LEVEL": "WARNING",
        "MDP_LOG_FORMAT": "json",
        **extra,
    }


def with_component_env(
    component: str,
    env: Mapping[str, str],
    reserved: Collection[str],
    overrides: Sequence[ComponentEnv],
) -> dict[str, str]:
    """``env`` with the settings ``--component-env`` gives ``component``, each checked.

    A variable must be one of the component's documented settings, not a secret (the report
    records every override), not one the benchmark sets itself (``reserved``: its URLs,
    ports, queue prefix, ...), given once, and its value must load as the component would
    load it, so a typo fails here, naming the variable, instead of as a component that never
    becomes ready.

    Raises:
        BenchError: naming the override and what is wrong with it.
    """
    mine = [item for item in overrides if item.component == component]
    result = dict(env)
    if not mine:
        return result
    classes = [
        getattr(importlib.import_module(module), name)
        for module, name in COMPONENT_SETTINGS[component]
    ]
    documented = {doc.env: doc for cls in classes for doc in describe(cls)}
    given_names: set[str] = set()
    for item in mine:
        given = f"--component-env {component}:{item.name}"
        doc = documented.get(item.name)
        if doc is None:
            msg = f"{given}: the {component} has no such setting (docs/reference/configuration.md)"
            raise BenchError(msg)
        if doc.secret:
            msg = f"{given}: a secret cannot be given this way (the report records overrides)"
            raise BenchError(msg)
        if item.name in reserved:
            option = _OPTION_OF.get(item.name)
            msg = f"{given}: the benchmark sets this itself" + (f"; use {option}" if option else "")
            raise BenchError(msg)
        if item.name in given_names:
            msg = f"{given}: given more than once"
            raise BenchError(msg)
        given_names.add(item.name)
        result[item.name] = item.value
    for cls in classes:
        try:
            load(cls, result)
        except ValueError as exc:  # SettingsError, or a check across fields
            msg = f"--component-env for the {component}: {exc}"
            raise BenchError(msg) from None
    return result


def build_services(
    config: BenchConfig, bindir: Path, logs: Path, *, prefix: str, key: str, secret: str
) -> dict[str, Service]:
    """The processor, scanner, WDS and listener of one run, configured by environment."""
    common = {
        "MDP_AMQP_URL": config.amqp_url,
        "MDP_REDIS_URL": config.redis(MDC_DB),
        "MDP_MDC_REDIS_URL": config.redis(MDC_DB),
        "MDP_WDC_REDIS_URL": config.redis(WDC_DB),
        "MDP_MDQ_PREFIX": prefix,
        "MDP_MDQ_PARTITIONS": str(config.partitions),
        "MASSIVE_API_KEY": key,
    }

    def service(
        name: str,
        script: str,
        module: str,
        extra: dict[str, str],
        defaults: Mapping[str, str] | None = None,
    ) -> Service:
        port = free_port()
        own = {**common, "MDP_HEALTH_PORT": str(port), **extra}
        if name == "wds":
            own["MDP_WDS_PORT"] = str(port)
        # ``defaults`` are the run's own choices that ``--component-env`` may still change.
        base = child_env(bindir, {**(defaults or {}), **own})
        env = with_component_env(name, base, own, config.component_env)
        return Service(name, script, module, env, port, logs / f"{name}.log")

    return {
        "processor": service(
            "processor",
            "mdp-processor",
            "mdp_processor.__main__",
            {"MDP_WORKERS": str(config.workers)},
            # The simulator plays its trading day from ``--start`` ET, hours ahead of the wall
            # clock before that time of day; the default (300 s) would drop every event.
            {"MDP_FUTURE_TOLERANCE_SECONDS": str(SIMULATED_DAY_AHEAD_SECONDS)},
        ),
        "scanner": service("scanner", "mdp-scanner", "mdp_scanner.__main__", {}),
        "wds": service(
            "wds",
            "mdp-wds",
            "mdp_wds.__main__",
            {
                "MDP_WDS_TOKEN_SECRET": secret,
                "MDP_WDS_MAX_CONNECTIONS_PER_ADDRESS": str(max(50, config.clients + 10)),
            },
        ),
        "listener": service(
            "listener",
            "mdp-listener",
            "mdp_listener.__main__",
            {
                "MDP_MASSIVE_SECURE": "false",
                "MDP_MASSIVE_TOPICS": ",".join(topics_of(config.mix)),
                "MDP_LISTENER_ALWAYS_ON": "true",
            },
        ),
    }


def processor_env(workers: int, rest_base: str) -> dict[str, str]:
    """Worker count and Massive REST base for the processor, named as its settings name them.

    The names are looked up in the processor's settings classes (through the settings
    machinery's own documentation), so a rename there does not silently misconfigure the run;
    ``MDP_WORKERS`` and ``MDP_MASSIVE_REST_BASE`` are used when nothing matches.
    """
    env = {"MDP_WORKERS": str(workers), "MDP_MASSIVE_REST_BASE": rest_base}
    try:
        module = importlib.import_module("mdp_processor.settings")
    except ImportError:
        return env
    for value in vars(module).values():
        if not isinstance(value, type) or not dataclasses.is_dataclass(value):
            continue
        with contextlib.suppress(TypeError):
            for doc in describe(value):
                name = doc.env.upper()
                if "WORKERS" in name:
                    env[doc.env] = str(workers)
                elif "REST" in name and ("BASE" in name or "URL" in name):
                    env[doc.env] = rest_base
    return env
