"""``mdp-news-processor``: the service shell around the news processor (FDP).

It wires settings, logging, telemetry, health, heartbeat, the AMQP consumer and WDC.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from importlib.metadata import version

from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_cache.client import create_redis
from mdp_cache.widgets import WidgetWriter
from mdp_core.clock import LiveClock
from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load
from mdp_core.telemetry import Metrics, configure_telemetry
from mdp_news_processor.metrics import FAMILIES
from mdp_news_processor.processor import NewsProcessor
from mdp_news_processor.settings import NewsProcessorSettings
from mdp_queues import AmqpConsumer, QueueSettings, TopologyMismatch
from mdp_runtime import (
    ConfigError,
    ExitCode,
    HealthServer,
    component_heartbeat,
    parse_service_arguments,
    run_service,
)

__all__ = ["main"]

_SERVICE = "news-processor"
_log = get_logger("mdp_news_processor.main")


def _load() -> tuple[NewsProcessorSettings, QueueSettings]:
    try:
        return load(NewsProcessorSettings, service_name=_SERVICE), load(QueueSettings)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


async def serve(stop: asyncio.Event) -> int:
    """The service body: process news until ``stop`` is set."""
    settings, queues = _load()
    service_version = version("mdp-news-processor")
    configure_logging(_SERVICE, settings.log_level, settings.log_format)
    configure_telemetry("mdp-news-processor", service_version)
    clock = LiveClock()
    metrics = Metrics(_SERVICE)
    topology = queues.topology()
    consumer = AmqpConsumer(
        settings.amqp_url.reveal(),
        topology,
        clock=clock,
        prefetch=settings.prefetch,
        on_mismatch=queues.on_mismatch,
    )
    try:
        await consumer.start()
    except TopologyMismatch as exc:
        await consumer.close()
        raise ConfigError(str(exc)) from None
    wdc = create_redis(settings.wdc_redis_url, client_name="mdp-news-processor")
    mdc = create_redis(settings.mdc_redis_url, client_name="mdp-news-processor")
    analyzer = FinlightDataAnalyzer(
        latest_max_len=settings.latest_max_len,
        ticker_max_len=settings.ticker_max_len,
        latest_ttl=settings.latest_ttl_seconds,
        ticker_ttl=settings.ticker_ttl_seconds,
    )
    processor = NewsProcessor(
        consumer,
        topology.news,
        WidgetWriter(wdc),
        analyzer,
        clock=clock,
        metrics=metrics,
        batch_size=settings.prefetch,
        batch_wait_seconds=settings.batch_wait_seconds,
        retry=settings.retry_backoff,
    )
    health = HealthServer(
        settings.health_host,
        settings.health_port,
        service=_SERVICE,
        version=service_version,
        metrics_snapshot=metrics.snapshot,
        metric_families=FAMILIES,
        readiness={
            "broker": lambda: (consumer.connected, "connected" if consumer.connected else "down"),
            "wdc": lambda: (processor.redis_ok, "ok" if processor.redis_ok else "write failing"),
        },
    )
    heartbeat = component_heartbeat(
        mdc,
        _SERVICE,
        payload=processor.status,
        clock=clock,
        version=service_version,
        interval_seconds=settings.heartbeat_seconds,
    )
    _log.info("news_processor_starting", queue=topology.news.name)
    try:
        async with health:
            heartbeat.start()
            try:
                await processor.run(stop)
            finally:
                health.mark_stopping()
                await heartbeat.stop()
    finally:
        await consumer.close()
        for client in (wdc, mdc):
            with contextlib.suppress(Exception):
                await client.aclose()
    return ExitCode.OK


def main() -> None:
    """Console script entry point."""
    parse_service_arguments(
        "mdp-news-processor", doc=__doc__, settings=(NewsProcessorSettings, QueueSettings)
    )
    sys.exit(run_service(serve, name="mdp-news-processor"))


if __name__ == "__main__":
    main()
