"""``mdp-processor``: the market data processor (MDP) service.

The parent process serves ``/livez``, ``/readyz`` and ``/metrics`` and supervises
``MDP_WORKERS`` worker processes (:mod:`mdp_processor.worker`), each a competing consumer of the
market data queues running the configured analyzers. ``/readyz`` is unready while any worker is
dead or reports its broker or Redis connection down.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from importlib.metadata import version
from typing import Final

from mdp_analyzers.registry import UnknownAnalyzer
from mdp_cache.client import close_redis, create_redis
from mdp_core.cleartext import cleartext_problem
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load
from mdp_core.telemetry import configure_telemetry
from mdp_processor.metrics import FAMILIES
from mdp_processor.settings import ProcessorSettings
from mdp_processor.worker import build_analyzers, worker
from mdp_queues import QueueSettings
from mdp_runtime import (
    ConfigError,
    ExitCode,
    HealthServer,
    component_heartbeat,
    parse_service_arguments,
    run_service,
)
from mdp_runtime.process import ProcessManager, WorkerStatus

__all__ = ["is_cumulative", "main", "metrics_of", "readiness_of", "status_of"]

_SERVICE = "processor"
_log = get_logger("mdp_processor.main")


def metrics_of(statuses: list[WorkerStatus]) -> dict[str, object]:
    """Sum the workers' numeric figures (counters, histogram buckets); count the workers.

    ``*_seconds`` figures are percentiles, not sums: the worst worker's is kept.
    """
    totals: dict[str, float] = {}
    for status in statuses:
        for name, value in status.counters.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                if name.endswith("_seconds"):
                    totals[name] = max(totals.get(name, 0.0), float(value))
                else:
                    totals[name] = totals.get(name, 0.0) + value
    return {
        **totals,
        "workers": len(statuses),
        "workers_alive": sum(1 for status in statuses if status.alive),
        "workers_ready": sum(
            1 for status in statuses if status.alive and status.counters.get("ready") is True
        ),
        "worker_restarts": sum(status.restarts for status in statuses),
    }


#: Integer figures a worker reports that are levels, not counts: never carried over a restart.
_GAUGES: Final = frozenset({"last_flush_events", "reference_pending", "paused"})


def is_cumulative(name: str, value: object) -> bool:
    """Whether a reported figure is a count that a worker restart must not reset."""
    return isinstance(value, int) and not isinstance(value, bool) and name not in _GAUGES


def readiness_of(statuses: list[WorkerStatus]) -> tuple[bool, str]:
    """Ready when every worker is alive and reports itself ready (connections up)."""
    for status in statuses:
        if not status.alive:
            return False, f"{status.name} is not running"
        if status.counters.get("ready") is not True:
            counters: Mapping[str, object] = status.counters
            return False, (
                f"{status.name} not ready (broker {counters.get('broker_connected')}, "
                f"redis writable {counters.get('redis_writable')})"
            )
    return True, f"{len(statuses)} workers ready"


def status_of(statuses: list[WorkerStatus]) -> str:
    """The heartbeat's status word: ``paused`` once every live worker paused, as ordered."""
    alive = [status for status in statuses if status.alive]
    if alive and all(status.counters.get("paused") == 1 for status in alive):
        return "paused"
    if any(status.counters.get("paused") == 1 for status in alive):
        return "pausing"
    return "running" if readiness_of(statuses)[0] else "degraded"


async def serve(stop: asyncio.Event) -> int:
    """The service body: supervise the workers until ``stop`` is set."""
    try:
        settings = load(ProcessorSettings, service_name=_SERVICE)
        load(QueueSettings)
        build_analyzers(settings)  # fail fast on an unknown analyzer name
    except (SettingsError, UnknownAnalyzer) as exc:
        raise ConfigError(str(exc)) from None
    problem = cleartext_problem(settings.massive_rest_url, "MDP_MASSIVE_REST_URL")
    if problem is not None:
        raise ConfigError(problem)
    service_version = version("mdp-processor")
    configure_logging(_SERVICE, settings.log_level, settings.log_format)
    configure_telemetry("mdp-processor", service_version)
    manager = ProcessManager(
        worker,
        settings.workers,
        name="mdp-worker",
        restart=settings.worker_restart,
        child_logging=(_SERVICE, settings.log_level, settings.log_format),
        carry_over=is_cumulative,
    )
    health = HealthServer(
        settings.health_host,
        settings.health_port,
        service=_SERVICE,
        version=service_version,
        metrics_snapshot=lambda: metrics_of(manager.status()),
        metric_families=FAMILIES,
        readiness={"workers": lambda: readiness_of(manager.status())},
    )
    mdc = create_redis(settings.mdc_redis_url, client_name="mdp-processor-heartbeat")
    heartbeat = component_heartbeat(
        mdc,
        _SERVICE,
        payload=lambda: metrics_of(manager.status()),
        clock=LiveClock(),
        version=service_version,
        interval_seconds=settings.heartbeat_seconds,
        status=lambda: status_of(manager.status()),
    )
    _log.info("processor_starting", workers=settings.workers, analyzers=settings.analyzers)
    try:
        async with health, manager:
            heartbeat.start()
            await stop.wait()
            health.mark_stopping()
            await heartbeat.stop()
    finally:
        await close_redis(mdc)
    return ExitCode.OK


def main() -> None:
    """Console script entry point."""
    parse_service_arguments(
        "mdp-processor", doc=__doc__, settings=(ProcessorSettings, QueueSettings)
    )
    sys.exit(run_service(serve, name="mdp-processor"))


if __name__ == "__main__":
    main()
