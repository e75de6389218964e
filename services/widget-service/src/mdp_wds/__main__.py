"""``mdp-wds``: run the widget data service until SIGTERM/SIGINT (clients then get 1001).

Health, readiness and metrics are served on the websocket port itself (``/livez``,
``/readyz``, ``/metrics``, ``/status``), so ``MDP_HEALTH_PORT`` is not used by this service.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

from mdp_cache.client import close_redis, create_redis
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load
from mdp_core.telemetry import configure_telemetry
from mdp_core.token import secret_problem
from mdp_runtime import (
    ConfigError,
    ExitCode,
    RuntimeControl,
    TrustedProxies,
    component_heartbeat,
    instance_name,
    parse_service_arguments,
    run_service,
    settle_heap,
)
from mdp_wds.server import WidgetServer
from mdp_wds.settings import WdsSettings

__all__ = ["main", "serve"]

_log = get_logger("mdp_wds.main")


async def serve(stop: asyncio.Event) -> int:
    """The service body: serve until ``stop`` is set, then stop gracefully."""
    try:
        settings = load(WdsSettings, service_name="wds")
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    try:
        TrustedProxies(settings.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"MDP_WDS_TRUSTED_PROXIES: {exc}") from None
    secret = settings.token_secret
    weak = None if secret is None else secret_problem(secret.reveal())
    if weak is not None:
        raise ConfigError(weak)
    configure_logging("wds", settings.log_level, settings.log_format)
    configure_telemetry("mdp-wds", version("mdp-wds"))
    if settings.token_secret is None and settings.dev_key is None:
        msg = (
            "refusing to start without authentication: set MDP_WDS_TOKEN_SECRET "
            "(or MDP_WDS_DEV_KEY for development)"
        )
        raise ConfigError(msg)
    server = WidgetServer(settings)
    mdc = create_redis(settings.mdc_redis_url, client_name="mdp-wds-heartbeat")
    instance = instance_name()
    heartbeat = component_heartbeat(
        mdc,
        "widget-service",
        payload=server.stats.as_dict,
        clock=LiveClock(),
        version=version("mdp-wds"),
        instance=instance,
        status=lambda: "draining" if server.draining else "running",
    )
    control = RuntimeControl(mdc, "widget-service", instance, server.set_runtime_state)
    try:
        async with server:
            settle_heap(settings.gc_young_threshold)
            heartbeat.start()
            control.start()
            _log.info("wds_serving", url=server.url, origins=list(settings.allowed_origins))
            await stop.wait()
            await control.close()
            await heartbeat.stop()
    finally:
        await close_redis(mdc)
    return ExitCode.OK


def main() -> None:
    """Console entry point."""
    parse_service_arguments("mdp-wds", doc=__doc__, settings=(WdsSettings,))
    raise SystemExit(run_service(serve, name="mdp-wds"))


if __name__ == "__main__":
    main()
