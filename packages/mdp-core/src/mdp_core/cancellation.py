"""Cancelling a task until it has ended, not just once.

On Python 3.11 a cancellation can be lost: ``asyncio.wait_for`` returns the inner result when
the inner awaitable completes in the same loop turn as the cancel (CPython gh-86296, fixed in
3.12). The project's own code never calls it (ruff bans it; ``asyncio.timeout`` has no such
race), but redis-py bounds its socket writes with it and aiormq its broker calls. A stop that
cancels a task doing such I/O once then waits until that task next ends on its own: 10 s in
the demo's scanner, stopped just after its start, where the cancel met a connection's first
write. Stops therefore cancel such tasks with :func:`cancel_until_done`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

__all__ = ["RECANCEL_SECONDS", "cancel_until_done"]

RECANCEL_SECONDS: Final = 0.5
"""How long a cancelled task may run on before it is cancelled again: its own clean-up (a
``finally`` that closes a connection) has this long before a second cancel interrupts it."""


async def cancel_until_done(task: asyncio.Future[Any], every: float = RECANCEL_SECONDS) -> None:
    """Cancel ``task`` and return once it is done, cancelling it again every ``every`` s.

    The task's outcome is left in it (a result, an error or its cancellation) for the caller;
    an error is marked retrieved, as ``gather(..., return_exceptions=True)`` does, so an
    ending that nobody reads is not reported as "never retrieved".
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled():
        task.exception()
