"""``mdp-listener``: the service shell around :class:`~mdp_listener.listener.MassiveListener`.

It only wires settings, logging, telemetry, health, heartbeat and AMQP.

Run exactly one replica per Massive API key: the provider allows one websocket per key and
cluster, and a second copy would get both kicked (``max_connections``).
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version

from mdp_core.cleartext import cleartext_problem
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load, resolve_massive_key
from mdp_core.telemetry import Metrics, configure_telemetry
from mdp_listener.control import mount_control
from mdp_listener.listener import MassiveListener, describe
from mdp_listener.metrics import FAMILIES
from mdp_listener.settings import ListenerSettings
from mdp_queues import AmqpPublisher, QueueSettings, TopologyMismatch
from mdp_runtime import (
    ConfigError,
    ExitCode,
    parse_service_arguments,
    run_service,
    serve_stream,
)

__all__ = ["main"]

_SERVICE = "listener"
_log = get_logger("mdp_listener.main")


def _load() -> tuple[ListenerSettings, QueueSettings]:
    try:
        settings = load(ListenerSettings, service_name=_SERVICE, api_key=resolve_massive_key())
        queues = load(QueueSettings)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    if settings.api_key is None:
        msg = "no Massive API key: set MASSIVE_API_KEY (or MDP_MASSIVE_API_KEY_FILE)"
        raise ConfigError(msg)
    feed_url = f"{'wss' if settings.secure else 'ws'}://{settings.feed.strip()}"
    problem = cleartext_problem(feed_url, "MDP_MASSIVE_FEED with MDP_MASSIVE_SECURE=false")
    if problem is not None:
        raise ConfigError(problem)
    return settings, queues


async def serve(stop: asyncio.Event) -> int:
    """The service body: stream until ``stop`` is set, then drain and close."""
    settings, queues = _load()
    service_version = version("mdp-listener")
    configure_logging(_SERVICE, settings.log_level, settings.log_format)
    configure_telemetry("mdp-listener", service_version)
    clock = LiveClock()
    metrics = Metrics(_SERVICE)
    publisher = AmqpPublisher(
        settings.amqp_url.reveal(),
        queues.topology(),
        clock=clock,
        confirms=queues.publisher_confirms,
        confirm_timeout=queues.confirm_timeout_seconds,
        outbox_messages=settings.outbox_messages,
        outbox_bytes=settings.outbox_bytes,
        on_mismatch=queues.on_mismatch,
        app_id="mdp-listener",
    )
    try:
        await publisher.start()
    except TopologyMismatch as exc:
        await publisher.close()
        raise ConfigError(str(exc)) from None
    listener = MassiveListener(settings, publisher, clock, metrics)
    _log.info("listener_starting", **describe(settings))
    await serve_stream(
        listener,
        publisher,
        stop,
        service=_SERVICE,
        version=service_version,
        health_host=settings.health_host,
        health_port=settings.health_port,
        control_token=settings.control_token.reveal() if settings.control_token else None,
        mount_control=lambda health: mount_control(health, listener),
        heartbeat_redis_url=settings.mdc_redis_url if settings.heartbeat_enabled else None,
        heartbeat_seconds=settings.heartbeat_seconds,
        clock=clock,
        metric_families=FAMILIES,
    )
    return ExitCode.OK


def main() -> None:
    """Console script entry point."""
    parse_service_arguments("mdp-listener", doc=__doc__, settings=(ListenerSettings, QueueSettings))
    sys.exit(run_service(serve, name="mdp-listener"))


if __name__ == "__main__":
    main()
