"""The runtime state the control plane asks of a component: running, paused or draining.

The control plane writes one hash per component (:data:`~mdp_cache.keys.KEY_CONTROL`); each
instance polls it and applies what it finds, then reports the state it is in through its
heartbeat. A desired state, not a message: an instance that was restarted, or that missed a
poll while Redis was away, still ends up in the state last asked for, and every replica of a
component reads the same answer. The same pattern as the WDS's revoked-session set.

Field ``*`` addresses every instance of the component, a field named after an instance (its
heartbeat id) that instance alone; of the two, the newer order wins, so "pause all" overrides an
earlier per-instance "resume" and a later per-instance "resume" overrides "pause all".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from mdp_cache.keys import KEY_CONTROL

__all__ = [
    "ALL_INSTANCES",
    "COMMANDS",
    "RUNNING",
    "ControlStore",
    "Desired",
    "RuntimeState",
    "desired_state",
    "read_desired",
    "write_desired",
]

RuntimeState = Literal["running", "paused", "draining"]
RUNNING: Final[RuntimeState] = "running"
ALL_INSTANCES: Final = "*"

COMMANDS: Final[Mapping[str, Mapping[str, RuntimeState]]] = {
    "processor": {"pause": "paused", "resume": "running"},
    "scanner": {"pause": "paused", "resume": "running"},
    "widget-service": {"drain": "draining", "resume": "running"},
}
"""Per component (its heartbeat name), each command and the state it asks for.

The processor's pause is also its drain: it stops taking deliveries, finishes and acks the
batches in hand, and leaves the rest queued for its peers or its resumption.
"""

_STATES: Final = frozenset({"running", "paused", "draining"})


class ControlStore(Protocol):
    """**Protocol:** the Redis hash commands used (``redis.asyncio.Redis`` fits)."""

    def hset(self, name: str, key: str, value: str) -> Awaitable[Any]:
        """Set one field."""
        ...

    def hmget(self, name: str, keys: list[str], *args: Any) -> Awaitable[list[Any]]:
        """Values of some fields (None for missing)."""
        ...

    def hgetall(self, name: str) -> Awaitable[Any]:
        """Every field and value."""
        ...

    def hdel(self, name: str, *keys: str) -> Awaitable[Any]:
        """Delete fields."""
        ...


@dataclass(frozen=True, slots=True)
class Desired:
    """One order of the control plane.

    Attributes:
        state: the state asked for.
        by: who asked (the user name, for the admin page).
        ts_ms: when (Unix ms): the newer of two orders that both apply wins.
    """

    state: RuntimeState
    by: str
    ts_ms: int

    def encode(self) -> str:
        """The stored JSON."""
        return json.dumps({"state": self.state, "by": self.by, "ts_ms": self.ts_ms})

    @staticmethod
    def decode(raw: str | bytes | None) -> Desired | None:
        """The order stored in ``raw``; None when missing or not one (never raises)."""
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
        state, by, ts_ms = document.get("state"), document.get("by"), document.get("ts_ms")
        if state not in _STATES or not isinstance(ts_ms, int) or isinstance(ts_ms, bool):
            return None
        return Desired(state, str(by or ""), ts_ms)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def write_desired(
    redis: ControlStore, component: str, order: Desired, instance: str = ALL_INSTANCES
) -> None:
    """Ask ``instance`` (or every instance) of ``component`` for ``order.state``.

    An order for every instance makes older per-instance orders moot, so those fields are
    removed (a reader ignores them anyway: the newer order wins).
    """
    key = KEY_CONTROL.name(component=component)
    await redis.hset(key, instance, order.encode())
    if instance == ALL_INSTANCES:
        stored = await read_desired(redis, component)
        older = [name for name, found in stored.items() if found.ts_ms < order.ts_ms]
        if older:
            await redis.hdel(key, *older)


async def read_desired(redis: ControlStore, component: str) -> dict[str, Desired]:
    """Every readable order of ``component``, by field (``*`` or an instance id)."""
    raw = await redis.hgetall(KEY_CONTROL.name(component=component))
    orders = {_text(field): Desired.decode(value) for field, value in dict(raw).items()}
    return {field: order for field, order in orders.items() if order is not None}


async def desired_state(redis: ControlStore, component: str, instance: str) -> RuntimeState:
    """The state ``instance`` of ``component`` should be in (``running`` when never asked).

    Raises:
        RedisError: when the hash cannot be read (the caller keeps its current state).
    """
    own, every = await redis.hmget(KEY_CONTROL.name(component=component), [instance, ALL_INSTANCES])
    orders = [order for order in (Desired.decode(own), Desired.decode(every)) if order is not None]
    if not orders:
        return RUNNING
    return max(orders, key=lambda order: order.ts_ms).state
