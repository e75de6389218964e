"""``mdp-news-listener``: the service shell around the Finlight listener.

It only wires settings, logging, telemetry, health, heartbeat and AMQP. Run one replica per
Finlight key: the provider keeps one stream per key (a second one takes it over).
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version

from mdp_core.cleartext import cleartext_problem
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load, resolve_finlight_key
from mdp_core.telemetry import Metrics, configure_telemetry
from mdp_news_listener.control import mount_control
from mdp_news_listener.listener import FinlightListener
from mdp_news_listener.metrics import FAMILIES
from mdp_news_listener.settings import NewsListenerSettings
from mdp_queues import AmqpPublisher, QueueSettings, TopologyMismatch
from mdp_runtime import (
    ConfigError,
    ExitCode,
    parse_service_arguments,
    run_service,
    serve_stream,
)

__all__ = ["main", "serve"]

_SERVICE = "news-listener"
_log = get_logger("mdp_news_listener.main")


def _load() -> tuple[NewsListenerSettings, QueueSettings]:
    try:
        settings = load(NewsListenerSettings, service_name=_SERVICE, api_key=resolve_finlight_key())
        queues = load(QueueSettings)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    if settings.api_key is None:
        msg = "no Finlight API key: set FINLIGHT_API_KEY (or MDP_FINLIGHT_API_KEY_FILE)"
        raise ConfigError(msg)
    for url, variable in (
        (settings.wss_url, "MDP_FINLIGHT_WSS_URL"),
        (settings.base_url, "MDP_FINLIGHT_BASE_URL"),
    ):
        problem = cleartext_problem(url, variable)
        if problem is not None:
            raise ConfigError(problem)
    return settings, queues


async def serve(stop: asyncio.Event) -> int:
    """The service body: stream until ``stop`` is set, then close."""
    settings, queues = _load()
    service_version = version("mdp-news-listener")
    configure_logging(_SERVICE, settings.log_level, settings.log_format)
    configure_telemetry("mdp-news-listener", service_version)
    clock = LiveClock()
    publisher = AmqpPublisher(
        settings.amqp_url.reveal(),
        queues.topology(),
        clock=clock,
        confirms=queues.publisher_confirms,
        confirm_timeout=queues.confirm_timeout_seconds,
        on_mismatch=queues.on_mismatch,
        app_id="mdp-news-listener",
    )
    try:
        await publisher.start()
    except TopologyMismatch as exc:
        await publisher.close()
        raise ConfigError(str(exc)) from None
    listener = FinlightListener(settings, publisher, clock, Metrics(_SERVICE))
    _log.info("news_listener_starting", url=settings.wss_url, language=settings.language)
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
    parse_service_arguments(
        "mdp-news-listener", doc=__doc__, settings=(NewsListenerSettings, QueueSettings)
    )
    sys.exit(run_service(serve, name="mdp-news-listener"))


if __name__ == "__main__":
    main()
