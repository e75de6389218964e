"""Following the control plane's runtime orders (pause, resume, drain) in a component.

A :class:`RuntimeControl` polls the component's control hash (:mod:`mdp_cache.control`) and,
when the state asked for differs from the state the instance is in, awaits the component's own
``apply(state)`` coroutine, then counts and logs the change. Polling a desired state rather
than listening to a channel means an order given while the instance was restarting or cut
off from Redis still reaches it. A failed read keeps the current state (counted), so a Redis
blip never pauses or resumes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable

import structlog

from mdp_cache.control import COMMANDS, RUNNING, ControlStore, RuntimeState, desired_state

__all__ = ["RuntimeControl"]

_log = structlog.get_logger("mdp_runtime.runtime_control")


class RuntimeControl:
    """Applies the control plane's orders to one instance.

    Args:
        redis: the market data cache client the control hash is read from.
        component: the component's heartbeat name (``processor``, ``scanner``...).
        instance: this instance's heartbeat id (orders may address it alone).
        apply: moves the component to the given state; returns once it is there. Only the
            states of the component's commands (:data:`mdp_cache.control.COMMANDS`) are
            applied; an order for another is ignored (counted in ``ignored``).
        poll_seconds: time between two reads of the hash.
    """

    def __init__(
        self,
        redis: ControlStore,
        component: str,
        instance: str,
        apply: Callable[[RuntimeState], Awaitable[None]],
        *,
        poll_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._component = component
        self._instance = instance
        self._apply = apply
        self._states = frozenset(COMMANDS.get(component, {}).values()) | {RUNNING}
        self._poll = poll_seconds
        self.state: RuntimeState = RUNNING
        self.changes: Counter[str] = Counter()
        self.read_errors = 0
        self.ignored = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> RuntimeState:
        """Read the order once and apply it if it changes the state; return the state now."""
        try:
            wanted = await desired_state(self._redis, self._component, self._instance)
        except Exception as exc:  # like a heartbeat's: no Redis failure may escape
            self.read_errors += 1
            _log.warning(
                "runtime_control_read_failed", component=self._component, error=type(exc).__name__
            )
            return self.state
        if wanted == self.state:
            return self.state
        if wanted not in self._states:
            self.ignored += 1
            return self.state
        previous = self.state
        await self._apply(wanted)
        self.state = wanted
        self.changes[wanted] += 1
        _log.info(
            "runtime_state_changed",
            component=self._component,
            instance=self._instance,
            previous=previous,
            state=wanted,
        )
        return wanted

    async def run(self) -> None:
        """Check every ``poll_seconds`` until :meth:`close`."""
        while not self._stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._stop.wait()

    def start(self) -> None:
        """Run in a background task (the first check is immediate)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"runtime-control:{self._component}"
            )

    async def close(self) -> None:
        """Stop polling (a stop event: redis-py may swallow a cancellation mid-command)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    def snapshot(self) -> dict[str, object]:
        """Figures for the component's metrics and heartbeat."""
        return {
            "runtime_state": self.state,
            "runtime_changes": dict(self.changes),
            "runtime_control_errors": self.read_errors,
        }
