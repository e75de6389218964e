"""Cancelling a task until it has ended, not just once.

On Python 3.11 a cancellation can be lost: ``asyncio.wait_for`` returns the inner result when
the inner awaitable completes in the same loop turn as the cancel (CPython gh-86296, fixed in
3.12), and redis-py awaits its socket writes that way. A stop that cancels a task once then
waits until that task next ends on its own: 10 s in the demo's scanner, stopped just after its
start, where the cancel met a connection's first write.
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

    The task's outcome is left in it (a result, an error or its cancellation) for the caller.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
