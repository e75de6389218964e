"""A periodic heartbeat key in Redis, so the control plane can see which instances are alive.

Each beat writes ``SET <key> <json> EX <ttl>``: the key disappears on its own when the
process dies, and its JSON says who wrote it and what it is doing. The writer never raises
on a Redis failure: a heartbeat that crashed its service would turn a Redis blip into an
outage. Failures are counted, logged on the transition, and retried at the next beat.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog

from mdp_cache.keys import KEY_HEARTBEAT
from mdp_core.cancellation import cancel_until_done

__all__ = ["Heartbeat", "HeartbeatClock", "HeartbeatStore", "component_heartbeat", "instance_name"]

_log = structlog.get_logger("mdp_runtime.heartbeat")
_NS_PER_MS = 1_000_000


class HeartbeatStore(Protocol):
    """**Protocol:** the one Redis command a heartbeat needs (``redis.asyncio.Redis`` fits)."""

    def set(self, name: str, value: str, ex: int | None = None) -> Awaitable[Any]:
        """Set ``name`` to ``value`` expiring after ``ex`` seconds."""
        ...


class HeartbeatClock(Protocol):
    """**Protocol:** the part of ``mdp_core.clock.Clock`` a heartbeat uses."""

    def now_ns(self) -> int:
        """Return the current instant as UTC Unix nanoseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` of this clock's time."""
        ...


class Heartbeat:
    """Writes ``key`` every ``interval_seconds`` with a TTL of ``ttl_seconds``.

    The document written is ``{"service", "instance", "pid", "version", "status", "ts_ms",
    "started_ms", "figures"}``, where ``started_ms`` is when the heartbeat was built (the
    instance's uptime for the control plane) and ``figures`` is whatever ``payload()`` returns
    at that beat.

    Args:
        redis: the async Redis client (``redis.asyncio.Redis``) to write with.
        key: the full key to write; callers take it from the key catalogue in ``mdp_cache``.
        ttl_seconds: the key's time to live; it must exceed the interval so a live
            instance's key never lapses between beats.
        interval_seconds: the time between beats, on ``clock``.
        payload: returns the figures to publish (counters, lag); called once per beat.
        clock: the time source for ``ts_ms`` and the interval (``mdp_core.clock.LiveClock``).
        service: the service name.
        instance: this instance's identifier (host name, pod name).
        version: the service version.
        status: returns the current status word; ``"running"`` when not given.
        write_timeout_seconds: the longest a single write may take before it counts as
            failed; defaults to the interval.
    """

    def __init__(
        self,
        redis: HeartbeatStore,
        key: str,
        *,
        ttl_seconds: int,
        interval_seconds: float,
        payload: Callable[[], Mapping[str, object]],
        clock: HeartbeatClock,
        service: str,
        instance: str,
        version: str,
        status: Callable[[], str] | None = None,
        write_timeout_seconds: float | None = None,
    ) -> None:
        if interval_seconds <= 0:
            msg = f"interval_seconds must be > 0; it was {interval_seconds}"
            raise ValueError(msg)
        if ttl_seconds <= interval_seconds:
            msg = (
                f"ttl_seconds ({ttl_seconds}) must exceed interval_seconds "
                f"({interval_seconds}), or the key lapses between beats"
            )
            raise ValueError(msg)
        self._redis = redis
        self._key = key
        self._ttl = int(ttl_seconds)
        self._interval = interval_seconds
        self._payload = payload
        self._clock = clock
        self._service = service
        self._instance = instance
        self._version = version
        self._status = status
        self._write_timeout = write_timeout_seconds or interval_seconds
        self._pid = os.getpid()
        self._started_ms = clock.now_ns() // _NS_PER_MS
        self._beats_written = 0
        self._write_errors = 0
        self._payload_errors = 0
        self._last_error: str | None = None
        self._last_ok = True
        self._written = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------- figures

    @property
    def key(self) -> str:
        """The Redis key this heartbeat writes."""
        return self._key

    @property
    def beats_written(self) -> int:
        """Beats written successfully since construction."""
        return self._beats_written

    @property
    def write_errors(self) -> int:
        """Beats that failed to reach Redis."""
        return self._write_errors

    @property
    def last_error(self) -> str | None:
        """The most recent write failure, as ``"<ExceptionType>: <message>"``."""
        return self._last_error

    def is_healthy(self) -> bool:
        """Whether the latest write succeeded (usable as a readiness check)."""
        return self._last_ok

    def snapshot(self) -> dict[str, int]:
        """The heartbeat's own figures, for a metrics snapshot."""
        return {
            "beats_written": self._beats_written,
            "write_errors": self._write_errors,
            "payload_errors": self._payload_errors,
        }

    # ---------------------------------------------------------------------------- beats

    def _document(self, status: str | None) -> str:
        try:
            figures: Mapping[str, object] = dict(self._payload())
        except Exception as exc:  # a broken payload must not stop the beat
            self._payload_errors += 1
            figures = {}
            _log.warning("heartbeat_payload_failed", key=self._key, error=repr(exc))
        if status is None:
            status = self._status() if self._status is not None else "running"
        document = {
            "service": self._service,
            "instance": self._instance,
            "pid": self._pid,
            "version": self._version,
            "status": status,
            "ts_ms": self._clock.now_ns() // _NS_PER_MS,
            "started_ms": self._started_ms,
            "figures": figures,
        }
        return json.dumps(document, default=str, separators=(",", ":"))

    async def beat(self, *, status: str | None = None) -> bool:
        """Write one beat now; return whether Redis accepted it. Never raises on failure.

        Args:
            status: overrides the status callable for this beat (e.g. ``"stopped"``).
        """
        document = self._document(status)
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._redis.set(self._key, document, ex=self._ttl)
        except Exception as exc:  # no Redis failure may escape a heartbeat
            self._write_errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            if self._last_ok:
                _log.warning("heartbeat_write_failed", key=self._key, error=self._last_error)
            self._last_ok = False
            return False
        if not self._last_ok:
            _log.info("heartbeat_write_recovered", key=self._key, failures=self._write_errors)
        self._last_ok = True
        async with self._written:
            self._beats_written += 1
            self._written.notify_all()
        return True

    async def wait_beats(self, count: int) -> None:
        """Return once at least ``count`` beats have been written in total.

        Lets a service wait for its first beat before reporting ready, and lets tests
        synchronise on beats without sleeping.
        """
        async with self._written:
            await self._written.wait_for(lambda: self._beats_written >= count)

    async def run(self) -> None:
        """Beat every interval until cancelled."""
        while True:
            await self.beat()
            await self._clock.sleep(self._interval)

    def start(self) -> None:
        """Start beating in a background task (the first beat is immediate).

        Raises:
            RuntimeError: if already started.
        """
        if self._task is not None and not self._task.done():
            msg = "the heartbeat is already running"
            raise RuntimeError(msg)
        self._task = asyncio.create_task(self.run(), name=f"heartbeat:{self._key}")

    async def stop(self, *, final_status: str | None = "stopped") -> None:
        """Stop beating and, unless ``final_status`` is None, write one last beat with it.

        The last beat keeps the normal TTL, so the control plane sees a clean stop for a
        while before the key expires.
        """
        task, self._task = self._task, None
        if task is not None:
            # Until it ends: a beat's write can lose a single cancel on Python 3.11.
            await cancel_until_done(task)
        if final_status is not None:
            await self.beat(status=final_status)


def instance_name() -> str:
    """This process's instance id: host (the pod name on Kubernetes) and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def component_heartbeat(
    redis: HeartbeatStore,
    component: str,
    *,
    payload: Callable[[], Mapping[str, object]],
    clock: HeartbeatClock,
    version: str,
    interval_seconds: float = 5.0,
    instance: str | None = None,
    status: Callable[[], str] | None = None,
) -> Heartbeat:
    """The heartbeat of one component instance, under the catalogue's heartbeat key.

    The TTL covers three missed beats, so the control plane shows an instance as gone only
    after it really stopped beating.
    """
    instance = instance or instance_name()
    return Heartbeat(
        redis,
        KEY_HEARTBEAT.name(component=component, instance=instance),
        ttl_seconds=max(KEY_HEARTBEAT.ttl or 0, int(interval_seconds * 3) + 1),
        interval_seconds=interval_seconds,
        payload=payload,
        clock=clock,
        service=component,
        instance=instance,
        version=version,
        status=status,
    )
