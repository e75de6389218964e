"""Component health as the control plane sees it: the heartbeat keys components write.

Every component writes ``KEY_HEARTBEAT`` (``mdp:heartbeat:<component>:<instance>``) every few
seconds with a TTL (see ``mdp_runtime.heartbeat``). A key that has vanished means the instance
is gone; a key that is still there but old means the instance is alive enough to have written
once but is no longer beating (stuck loop, lost Redis for a while) - that is *stale*, and it is
exactly the case a plain "key exists" check would hide. A heartbeat can say how often it beats
(``interval_s``); otherwise the configured staleness limit applies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mdp_cache.keys import KEY_HEARTBEAT

__all__ = ["ComponentHealth", "HeartbeatReader", "HeartbeatSource", "parse_heartbeat"]

_SCAN_BATCH = 1_000  # the MDC holds many reference keys: fewer, larger SCAN pages
_MAX_COMPONENTS = 1_000


class HeartbeatSource(Protocol):
    """**Protocol:** the Redis commands the reader needs (``redis.asyncio.Redis`` fits)."""

    def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[Any]:
        """Iterate over keys matching ``match``."""
        ...

    def mget(self, keys: Sequence[Any], *args: Any) -> Awaitable[list[Any]]:
        """Values of ``keys`` (None for missing)."""
        ...


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One instance's last heartbeat, judged at read time.

    Attributes:
        key: the heartbeat key.
        service: the service that wrote it.
        instance: the instance (pod, host) that wrote it.
        version: the service version.
        status: the status word the instance reported (``running``, ``stopped``...).
        age_seconds: how old the beat is now (None when it carries no time).
        stale: whether the beat is older than its interval allows.
        figures: the key figures the instance published.
        error: why the value could not be read (then the other fields are best effort).
        sent_seconds: when the beat was written (Unix seconds), if it says.
        started_seconds: when the instance started beating (Unix seconds), if it says.
    """

    key: str
    service: str
    instance: str
    version: str
    status: str
    age_seconds: float | None
    stale: bool
    figures: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None
    sent_seconds: float | None = None
    started_seconds: float | None = None

    def as_json(self) -> dict[str, object]:
        """The JSON form served by ``/api/health``."""
        return {
            "key": self.key,
            "service": self.service,
            "instance": self.instance,
            "version": self.version,
            "status": "stale" if self.stale and self.status == "running" else self.status,
            "reported_status": self.status,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "stale": self.stale,
            "figures": dict(self.figures),
            "error": self.error,
        }


def _names_from_key(key: str) -> tuple[str, str]:
    prefix = KEY_HEARTBEAT.pattern.split("*", 1)[0]
    rest = key.removeprefix(prefix)
    component, _, instance = rest.partition(":")
    return component or "?", instance or "?"


def _timestamp_seconds(document: Mapping[str, Any]) -> float | None:
    ts_ms = document.get("ts_ms")
    if isinstance(ts_ms, int | float) and not isinstance(ts_ms, bool):
        return float(ts_ms) / 1000.0
    ts = document.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts) / 1000.0 if ts > 1e11 else float(ts)  # ms or s, as written
    return None


def parse_heartbeat(
    key: str, raw: str | bytes | None, now: float, stale_after: float
) -> ComponentHealth:
    """Judge one heartbeat value read at Unix time ``now``.

    A value that is not a JSON object is reported (stale, with the error), never raised: one
    broken writer must not blank the whole health page.
    """
    component, instance = _names_from_key(key)

    def unreadable(status: str, error: str | None) -> ComponentHealth:
        return ComponentHealth(
            key=key,
            service=component,
            instance=instance,
            version="",
            status=status,
            age_seconds=None,
            stale=True,
            error=error,
        )

    if raw is None:
        return unreadable("gone", None)
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # not UTF-8, or an int past 4,300 digits too
        return unreadable("unreadable", f"not JSON: {exc}")
    if not isinstance(document, dict):
        return unreadable("unreadable", "not a JSON object")
    sent = _timestamp_seconds(document)
    age = None if sent is None else max(0.0, now - sent)
    interval = document.get("interval_s")
    limit = stale_after
    if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
        limit = 2.0 * float(interval)
    figures = document.get("figures")
    started_ms = document.get("started_ms")
    started = (
        float(started_ms) / 1000.0
        if isinstance(started_ms, int | float) and not isinstance(started_ms, bool)
        else None
    )
    return ComponentHealth(
        key=key,
        service=str(document.get("service") or component),
        instance=str(document.get("instance") or instance),
        version=str(document.get("version") or ""),
        status=str(document.get("status") or "unknown"),
        age_seconds=age,
        stale=age is None or age > limit,
        figures=figures if isinstance(figures, dict) else {},
        sent_seconds=sent,
        started_seconds=started,
    )


class HeartbeatReader:
    """Reads every heartbeat key from the market data cache.

    Args:
        redis: an async Redis client on the MDC database.
        stale_after: seconds after which a heartbeat without its own interval is stale.
    """

    def __init__(self, redis: HeartbeatSource, stale_after: float) -> None:
        self._redis = redis
        self._stale_after = stale_after

    async def read(self, now: float) -> list[ComponentHealth]:
        """Every component's health, sorted by service then instance."""
        keys: list[str] = []
        async for key in self._redis.scan_iter(match=KEY_HEARTBEAT.pattern, count=_SCAN_BATCH):
            keys.append(key.decode() if isinstance(key, bytes) else str(key))
            if len(keys) >= _MAX_COMPONENTS:
                break
        if not keys:
            return []
        values = await self._redis.mget(keys)
        found = [
            parse_heartbeat(key, value, now, self._stale_after)
            for key, value in zip(keys, values, strict=True)
        ]
        return sorted(found, key=lambda c: (c.service, c.instance))
