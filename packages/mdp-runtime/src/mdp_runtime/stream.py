"""The shell every streaming component runs in: health, control, heartbeat, run, tear down.

A listener connects to a vendor and publishes to the broker; around it the service needs the
same pieces in the same order: probes and metrics (ready only when the upstream is as it should
be, which the component says, *and* connected to the broker), the authenticated control
routes, an optional heartbeat in MDC, then the stream until stop, and a teardown that closes
the broker link even when the stream fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from mdp_cache.client import close_redis, create_redis
from mdp_runtime.health import HealthServer
from mdp_runtime.heartbeat import Heartbeat, HeartbeatClock, component_heartbeat
from mdp_runtime.metrics import Family

__all__ = ["Broker", "StreamingComponent", "serve_stream"]


class StreamingComponent(Protocol):
    """**Protocol:** a component that streams from a vendor until stopped (the listeners)."""

    instance: str

    @property
    def streaming(self) -> bool:
        """Whether the upstream connection is live."""
        ...

    @property
    def state(self) -> object:
        """A word for what it is doing (shown in readiness and heartbeats)."""
        ...

    def upstream_readiness(self) -> tuple[bool, str]:
        """Whether the upstream side is as it should be now, and a word saying why."""
        ...

    def status(self) -> Mapping[str, object]:
        """Key figures for heartbeats."""
        ...

    def metrics_snapshot(self) -> Mapping[str, object]:
        """Figures for ``/metrics`` and ``/status``."""
        ...

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set."""
        ...


class Broker(Protocol):
    """**Protocol:** the component's link to the queues (an MDQ publisher)."""

    @property
    def connected(self) -> bool:
        """Whether batches reach the broker now."""
        ...

    async def close(self) -> None:
        """Stop sending."""
        ...


async def serve_stream(
    component: StreamingComponent,
    broker: Broker,
    stop: asyncio.Event,
    *,
    service: str,
    version: str,
    health_host: str,
    health_port: int,
    control_token: str | None,
    mount_control: Callable[[HealthServer], None],
    heartbeat_redis_url: str | None,
    heartbeat_seconds: float,
    clock: HeartbeatClock,
    metric_families: Iterable[Family] = (),
) -> None:
    """Serve ``component`` until ``stop``; the broker is closed on the way out, always.

    Args:
        component: The streaming component (a listener).
        broker: Its publisher; readiness needs it connected, teardown closes it.
        stop: Set by the service lifecycle on SIGTERM/SIGINT.
        service: Component name (metrics prefix, heartbeat key).
        version: Version reported by ``/status`` and the heartbeat.
        health_host: Address of the health server.
        health_port: Port of the health server (0: any).
        control_token: Bearer token of the control routes; None disables them.
        mount_control: Adds the component's control routes to the health server.
        heartbeat_redis_url: MDC URL for the heartbeat; None writes no heartbeat.
        heartbeat_seconds: Interval of the heartbeat.
        clock: Time source of the heartbeat.
        metric_families: The component's catalogue of metric families for ``/metrics``.
    """
    health = HealthServer(
        health_host,
        health_port,
        service=service,
        version=version,
        metrics_snapshot=component.metrics_snapshot,
        readiness={
            "upstream": component.upstream_readiness,
            "broker": lambda: (broker.connected, "connected" if broker.connected else "down"),
        },
        control_token=control_token,
        metric_families=metric_families,
    )
    mount_control(health)
    redis = create_redis(heartbeat_redis_url) if heartbeat_redis_url else None
    heartbeat: Heartbeat | None = None
    if redis is not None:
        heartbeat = component_heartbeat(
            redis,
            service,
            payload=component.status,
            clock=clock,
            version=version,
            interval_seconds=heartbeat_seconds,
            instance=component.instance,
            # the readiness word (a listener's feed state: streaming, stale, closed...), which
            # the control plane's health page shows
            status=lambda: component.upstream_readiness()[1],
        )
    try:
        async with health:
            if heartbeat is not None:
                heartbeat.start()
            try:
                await component.run(stop)
            finally:
                health.mark_stopping()
                if heartbeat is not None:
                    await heartbeat.stop()
    finally:
        await broker.close()
        if redis is not None:
            with contextlib.suppress(Exception):
                await close_redis(redis)
