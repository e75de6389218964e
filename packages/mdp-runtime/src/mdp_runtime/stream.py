"""The shell every streaming component runs in: health, control, heartbeat, run, tear down.

A listener connects to a vendor and publishes to the broker; around it the service needs the
same pieces in the same order: probes and metrics (ready only when the upstream is as it should
be, which the component says, *and* connected to the broker), the authenticated control
routes, an optional heartbeat in MDC, then the stream until stop, and a teardown that closes
the broker link even when the stream fails.

Inside, both listeners supervise their vendor connection the same way, which
:class:`UpstreamStream` holds once: the connection state machine (idle, waiting for a session,
connecting, streaming, backing off, stopped), pause and resume from the control routes, a
restart on request, the reconnect delay (the :mod:`mdp_core.backoff` policy, with a hook for a
vendor's own fixed delays) and the connection and reconnect counters. A listener keeps only its
protocol: how one connection is made and why it ended.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Generic, Protocol, TypeVar

import structlog

from mdp_cache.client import close_redis, create_redis
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.clock import Clock, sleep_or_wake
from mdp_core.logging import get_logger
from mdp_core.telemetry import Counter
from mdp_runtime.health import HealthServer
from mdp_runtime.heartbeat import Heartbeat, HeartbeatClock, component_heartbeat
from mdp_runtime.metrics import Family
from mdp_runtime.redirects import refuse_websocket_redirects

__all__ = [
    "Broker",
    "Interruption",
    "StreamState",
    "StreamingComponent",
    "UpstreamStream",
    "serve_stream",
]

_log = get_logger(__name__)

MAX_CLOSED_WAIT_SECONDS: Final = 3600.0
"""Re-check the calendar at least hourly while waiting for a session (clock jumps, DST)."""


class StreamState(enum.StrEnum):
    """What a streaming component is doing right now (status, readiness and heartbeats)."""

    IDLE = "idle"
    WAITING_FOR_SESSION = "waiting_for_session"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"


class Interruption(enum.StrEnum):
    """A connection ended by us, not by the vendor: reconnect at once (or not at all)."""

    STOP = "stop"
    RESTART = "restart"


OutcomeT = TypeVar("OutcomeT", bound=enum.Enum)
"""The vendor's reasons for a connection to end (a listener's outcome enum)."""


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


class UpstreamStream(abc.ABC, Generic[OutcomeT]):
    """**Base class:** the supervision both listeners share; each adds its vendor protocol.

    :meth:`run` loops until stopped: idle while disabled (:meth:`stop_streaming`), waiting
    while :meth:`_seconds_until_session` says the market is closed, else one connection
    (:meth:`_connect`, the subclass's) and then a pause of :meth:`_delay_after` its outcome.
    Every wait ends early on a stop, a control change or a restart request.

    Args:
        clock: Time source of the waits and of the connection's age.
        backoff: Reconnect delays after ordinary failures; with ``stable_after_seconds``, a
            connection that lived that long counts as a success and resets them.
        reconnects: Counter of reconnects, by ``reason`` (the outcome).
        enabled: Whether to connect at once (``autostart``).
        rng: Random source of the jitter (seed it in tests).
        log: The component's logger.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        backoff: BackoffPolicy,
        reconnects: Counter,
        enabled: bool,
        rng: random.Random | None = None,
        log: structlog.stdlib.BoundLogger | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff = Backoff(backoff, self._rng, clock)
        self._reconnects = reconnects
        self._enabled = enabled
        self._stream_log = log if log is not None else _log
        self._wake = asyncio.Event()
        self._restart = asyncio.Event()
        self.state = StreamState.IDLE
        self.last_outcome: OutcomeT | Interruption | None = None
        self.connections = 0
        """Connections attempted so far."""

    # ---------------------------------------------------------------- control

    @property
    def enabled(self) -> bool:
        """Whether the component wants to be connected (see :meth:`start_streaming`)."""
        return self._enabled

    def start_streaming(self) -> None:
        """Connect (if not already): undoes :meth:`stop_streaming`; a new start, no backoff."""
        self._enabled = True
        self._backoff.reset()
        self._wake.set()

    def stop_streaming(self) -> None:
        """Disconnect and stay idle until :meth:`start_streaming`."""
        self._enabled = False
        self._request_restart()

    def _request_restart(self) -> None:
        """End the current connection (if any) and connect again at once."""
        self._backoff.reset()
        self._restart.set()
        self._wake.set()

    # ---------------------------------------------------------------- the state machine

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, stream and reconnect until ``stop`` is set (never following a redirect)."""
        refuse_websocket_redirects()  # the vendor's client would carry the key to it
        try:
            while not stop.is_set():
                if not self._enabled:
                    self.state = StreamState.IDLE
                    await self._pause(stop, None)
                    continue
                closed_for = self._seconds_until_session()
                if closed_for > 0:
                    self.state = StreamState.WAITING_FOR_SESSION
                    self._stream_log.info("market_closed_waiting", seconds=closed_for)
                    await self._pause(stop, min(closed_for, MAX_CLOSED_WAIT_SECONDS))
                    continue
                self.connections += 1
                self.state = StreamState.CONNECTING
                self._restart.clear()
                self._backoff.started()
                outcome = await self._connect(stop)
                self.last_outcome = outcome
                delay = self._delay_after(outcome)
                if delay > 0 and not stop.is_set():
                    self.state = StreamState.BACKING_OFF
                    await self._pause(stop, delay)
        finally:
            self.state = StreamState.STOPPED

    async def _pause(self, stop: asyncio.Event, seconds: float | None) -> None:
        """Wait for ``seconds`` (forever if None), a stop, or a control change."""
        self._wake.clear()
        await sleep_or_wake(self._clock, seconds, stop, self._wake)
        self._wake.clear()

    async def _until_interrupted(
        self, stop: asyncio.Event, work: set[asyncio.Task[Any]]
    ) -> tuple[set[asyncio.Task[Any]], Interruption | None]:
        """Wait for the first of ``work`` to finish, a stop or a restart request.

        Returns the finished ``work`` tasks and the interruption, if one came. The caller
        cancels (and tidies) its own tasks; the stop and restart waiters are cancelled here.
        """
        stopping = asyncio.create_task(stop.wait())
        restarting = asyncio.create_task(self._restart.wait())
        try:
            done, _ = await asyncio.wait(
                {*work, stopping, restarting}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in (stopping, restarting):
                waiter.cancel()
            await asyncio.gather(stopping, restarting, return_exceptions=True)
        if stopping in done:
            interruption: Interruption | None = Interruption.STOP
        elif restarting in done:
            interruption = Interruption.RESTART
        else:
            interruption = None
        return done & work, interruption

    def _delay_after(self, outcome: OutcomeT | Interruption) -> float:
        """How long to wait before the next connection, and count the reconnect.

        An interruption reconnects at once. Otherwise a connection that lived long enough
        resets the backoff (and :meth:`_on_stable` runs); the vendor's own delay for this
        outcome (:meth:`_fixed_delay`) wins, else the exponential backoff applies.
        """
        if isinstance(outcome, Interruption):
            return 0.0
        if self._backoff.stable:
            self._backoff.reset()
            self._on_stable()
        self._reconnects.add(1, reason=str(outcome.value))
        fixed = self._fixed_delay(outcome)
        if fixed is not None:
            return self._backoff.policy.jittered(fixed, self._rng)
        delay = self._backoff.wait()
        self._stream_log.warning(
            "reconnecting_upstream", reason=str(outcome.value), seconds=round(delay, 2)
        )
        return delay

    # ---------------------------------------------------------------- what a vendor adds

    @abc.abstractmethod
    async def _connect(self, stop: asyncio.Event) -> OutcomeT | Interruption:
        """Run one connection to its end and say why it ended (the vendor's protocol)."""

    def _seconds_until_session(self) -> float:
        """Seconds until the vendor streams again (0: now); always now by default."""
        return 0.0

    def _fixed_delay(self, outcome: OutcomeT) -> float | None:
        """The vendor's own delay after ``outcome`` (jittered), or None for the backoff."""
        del outcome
        return None

    def _on_stable(self) -> None:
        """A connection lived long enough to count as a success (the backoff was reset)."""
