"""``mdp-scanner``: the service shell around :class:`~mdp_scanner.scanner.Scanner`.

Wires settings, logging, the analyzers (by entry point name), the WDC client and the health
server (``/livez``, ``/readyz``, ``/metrics``, ``/status`` on ``MDP_HEALTH_PORT``).

Replicas: safe to run two (see :mod:`mdp_scanner.scanner`): each sees every message, range
documents are idempotent and alerts are appended once thanks to a ``SET NX`` marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib.metadata import version

from mdp_analyzers.registry import UnknownAnalyzer, create_feed_analyzer
from mdp_analyzers.typing import Analyzer, FeedMessage
from mdp_cache.client import close_redis, create_redis
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load
from mdp_core.telemetry import configure_telemetry
from mdp_runtime import (
    ConfigError,
    ExitCode,
    HealthServer,
    RuntimeControl,
    component_heartbeat,
    instance_name,
    parse_service_arguments,
    run_service,
)
from mdp_scanner.metrics import FAMILIES
from mdp_scanner.scanner import Scanner
from mdp_scanner.settings import ScannerSettings

__all__ = ["main", "serve"]

_SERVICE = "scanner"
_log = get_logger("mdp_scanner.main")


def build_analyzers(
    names: tuple[str, ...], calendar: MarketCalendar, options: Mapping[str, object] | None = None
) -> list[Analyzer[FeedMessage]]:
    """Instantiate the configured analyzers with the settings' options (thresholds...).

    Raises:
        ConfigError: when a name is not registered or an option is out of range.
    """
    chosen = {**(options or {}), "calendar": calendar}
    try:
        return [create_feed_analyzer(name, **chosen) for name in names]
    except (UnknownAnalyzer, ValueError) as exc:
        raise ConfigError(str(exc)) from None


async def serve(stop: asyncio.Event) -> int:
    """The service body: scan until ``stop`` is set."""
    try:
        settings = load(ScannerSettings, service_name=_SERVICE)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    configure_logging(_SERVICE, settings.log_level, settings.log_format)
    configure_telemetry("mdp-scanner", version("mdp-scanner"))
    analyzers = build_analyzers(settings.analyzers, settings.calendar, settings.analyzer_options())
    redis = create_redis(settings.wdc_redis_url, client_name="mdp-scanner")
    scanner = Scanner(
        redis,
        analyzers,
        clock=LiveClock(),
        batch_max=settings.batch_max,
        dedup_alerts=settings.dedup_alerts,
        backoff=settings.reconnect_backoff,
        keepalive=settings.keepalive_seconds,
        unwritten_max=settings.unwritten_max,
    )
    health = HealthServer(
        settings.health_host,
        settings.health_port,
        service=_SERVICE,
        version=version("mdp-scanner"),
        metrics_snapshot=scanner.metrics_snapshot,
        metric_families=FAMILIES,
        readiness={"redis": lambda: (scanner.ready, "subscribed" if scanner.ready else "down")},
    )
    mdc = create_redis(settings.mdc_redis_url, client_name="mdp-scanner-heartbeat")
    instance = instance_name()
    heartbeat = component_heartbeat(
        mdc,
        _SERVICE,
        payload=scanner.metrics_snapshot,
        clock=LiveClock(),
        version=version("mdp-scanner"),
        status=lambda: "paused" if scanner.paused else "running" if scanner.ready else "connecting",
        instance=instance,
    )
    control = RuntimeControl(mdc, _SERVICE, instance, scanner.set_runtime_state)
    _log.info("scanner_starting", analyzers=list(settings.analyzers))
    try:
        async with health:
            heartbeat.start()
            control.start()
            try:
                await scanner.run(stop)
            finally:
                health.mark_stopping()
                await control.close()
                await heartbeat.stop()
    finally:
        await close_redis(redis)
        await close_redis(mdc)
    return ExitCode.OK


def main() -> None:
    """Console entry point."""
    parse_service_arguments("mdp-scanner", doc=__doc__, settings=(ScannerSettings,))
    raise SystemExit(run_service(serve, name="mdp-scanner"))


if __name__ == "__main__":
    main()
