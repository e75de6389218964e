"""One MDP worker process: AMQP consumer, analyzers, Redis, reporting to the supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version

from mdp_analyzers.registry import UnknownAnalyzer, create_market_analyzer
from mdp_analyzers.typing import Analyzer
from mdp_cache.claims import RedisBatchClaims
from mdp_cache.client import close_redis, create_redis
from mdp_cache.control import ControlStore
from mdp_cache.ownership import RedisOwnership
from mdp_cache.reference import ReferenceCache
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.clock import Clock, LiveClock
from mdp_core.events import MarketEvent
from mdp_core.logging import get_logger
from mdp_core.settings import load, resolve_massive_key
from mdp_core.telemetry import configure_telemetry
from mdp_processor.composition import ComposerThread, Composition, CompositionStats
from mdp_processor.massive_reference import MassiveReferenceSource
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.settings import ProcessorSettings
from mdp_processor.stats import ProcessorStats
from mdp_queues import AmqpConsumer, QueueSettings
from mdp_runtime import RuntimeControl
from mdp_runtime.process import WorkerContext

__all__ = ["build_analyzers", "composer_thread", "control_of", "report_of", "worker"]

_log = get_logger(__name__)
_REPORT_SECONDS = 0.5
_JOIN_SECONDS = 5.0


def build_analyzers(settings: ProcessorSettings) -> list[Analyzer[MarketEvent]]:
    """Instantiate the configured analyzers by name.

    Raises:
        UnknownAnalyzer: a name is not registered (the message lists the known names).
    """
    calendar = settings.calendar
    return [
        create_market_analyzer(name, calendar=calendar, board_size=settings.board_size)
        for name in settings.analyzers
    ]


def control_of(
    processor: Processor, mdc: ControlStore, instance: str | None = None
) -> RuntimeControl:
    """The control plane's pause and resume for this worker.

    Orders address the service instance that shows on the health page: the parent process,
    whose heartbeat id is this host and the parent's pid.
    """
    parent = instance or f"{socket.gethostname()}-{os.getppid()}"
    return RuntimeControl(mdc, "processor", parent, processor.set_runtime_state)


def composer_thread(
    settings: ProcessorSettings,
    analyzers: Sequence[Analyzer[MarketEvent]],
    *,
    clock: Clock,
    instance: str,
    stats: CompositionStats,
) -> ComposerThread:
    """The worker's compositions, in a thread with Redis connections of its own."""

    @contextlib.asynccontextmanager
    async def open_composition() -> AsyncIterator[Composition]:
        mdc = create_redis(settings.mdc_redis_url, client_name=f"mdp-compose-{instance}")
        wdc = create_redis(settings.wdc_redis_url, client_name=f"mdp-compose-{instance}")
        try:
            yield Composition(
                analyzers,
                state=RedisState(mdc),
                widgets=WidgetWriter(wdc),
                clock=clock,
                instance=instance,
                counts=stats,
            )
        finally:
            for client in (mdc, wdc):
                with contextlib.suppress(Exception):
                    await close_redis(client)

    return ComposerThread(open_composition, name=f"composer-{instance}")


def report_of(stats: ProcessorStats, composed: CompositionStats) -> dict[str, int | float]:
    """The processor's figures with the composer thread's counted in."""
    report = stats.snapshot()
    report["compositions"] = stats.compositions + composed.compositions
    report["write_failures"] = stats.write_failures + composed.write_failures
    report["bad_writes"] = stats.bad_writes + composed.bad_writes
    return report


async def worker(index: int, ctx: WorkerContext) -> None:
    """Run one processor until the supervisor asks this process to stop."""
    settings = load(ProcessorSettings, service_name="processor")
    queues = load(QueueSettings)
    # A worker is a process of its own: the batch and flush spans happen here, not in the parent.
    configure_telemetry("mdp-processor", version("mdp-processor"))
    clock = LiveClock()
    instance = f"{socket.gethostname()}-{os.getpid()}-{index}"
    try:
        analyzers = build_analyzers(settings)
    except UnknownAnalyzer:
        _log.exception("unknown_analyzer")
        raise
    mdc = create_redis(settings.mdc_redis_url, client_name=f"mdp-{instance}")
    ref = create_redis(settings.mdc_redis_url, client_name=f"mdp-ref-{instance}")
    wdc = create_redis(settings.wdc_redis_url, client_name=f"mdp-{instance}")
    key = resolve_massive_key()
    reference = (
        ReferenceCache(
            MassiveReferenceSource(key.reveal(), settings.massive_rest_url),
            ref,
            profile_days=settings.rvol_days,
        )
        if key is not None
        else None
    )
    consumer = AmqpConsumer(
        settings.amqp_url.reveal(),
        queues.topology(),
        clock=clock,
        prefetch=settings.prefetch,
        max_age_seconds=settings.freshness_seconds,
        on_mismatch=queues.on_mismatch,
    )
    processor = Processor(
        consumer,
        analyzers,
        state=RedisState(mdc),
        widgets=WidgetWriter(wdc),
        claims=RedisBatchClaims(mdc, ProcessorConfig().consumer_group, instance),
        ownership=RedisOwnership(mdc, ProcessorConfig().consumer_group),
        reference=reference,
        clock=clock,
        config=ProcessorConfig(
            flush_interval_seconds=settings.flush_interval_seconds,
            flush_max_interval_seconds=settings.flush_max_interval_seconds,
            flush_busy_fraction=settings.flush_busy_fraction,
            flush_saturated_max_interval_seconds=settings.flush_saturated_max_interval_seconds,
            saturation_seconds=settings.saturation_seconds,
            flush_max_events=settings.flush_max_events,
            batch_messages=settings.batch_messages,
            max_in_flight=settings.max_in_flight,
            instance=instance,
            future_tolerance_seconds=settings.future_tolerance_seconds,
            retry=settings.retry_backoff,
            compose=False,
        ),
    )
    composed = CompositionStats()
    composer = composer_thread(settings, analyzers, clock=clock, instance=instance, stats=composed)
    task: asyncio.Task[None] | None = None
    control: RuntimeControl | None = None
    try:
        composer.start()
        task = asyncio.create_task(processor.run(), name="processor")
        control = control_of(processor, mdc)
        control.start()
        # A worker whose composer thread died ends (and is restarted): its boards would stop.
        while not ctx.stopping.is_set() and not task.done() and composer.is_alive():
            ctx.report(
                **report_of(processor.stats, composed),
                ready=processor.ready,
                paused=int(processor.paused),
                broker_connected=consumer.connected,
                redis_writable=processor.writable,
                stale_dropped=consumer.stats.dropped_events.get("stale", 0),
                poison_dropped=consumer.stats.dropped_messages.get("poison", 0),
                consumers_lost=consumer.stats.consumers_lost,
                reference_pending=processor.reference_pending,
                reference_bulk_errors=0 if reference is None else reference.stats.bulk_errors,
                reference_errors=0 if reference is None else reference.stats.errors,
                reference_fetches=0 if reference is None else reference.stats.fetches,
                reference_bulk_symbols=0 if reference is None else reference.stats.bulk_symbols,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_REPORT_SECONDS):
                    await ctx.stopping.wait()
        if not ctx.stopping.is_set() and not composer.is_alive():
            msg = f"the composer thread ended: {composer.failure!r}"
            raise RuntimeError(msg)
    finally:
        composer.stop()
        if control is not None:
            await control.close()
        processor.stop()
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        if not await composer.join(_JOIN_SECONDS):
            _log.warning("composer_not_stopped", seconds=_JOIN_SECONDS)
        for client in (mdc, ref, wdc):
            with contextlib.suppress(Exception):
                await close_redis(client)
