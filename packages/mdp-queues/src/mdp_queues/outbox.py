"""The bounded buffer between a feed's receive loop and the task that talks to the broker.

A listener must never wait on the broker: if it did, a slow broker would become a slow reader
on the provider's socket and the provider would cut us off (``slow_consumer``). So the receive
loop only calls :meth:`Outbox.put`, which never blocks. When the buffer is full the *oldest*
batches are dropped, because market data loses its value within seconds: the newest data is
the data worth keeping. Every drop is counted by reason.
"""

from __future__ import annotations

import asyncio
from collections import deque

from mdp_core.clock import NS_PER_SECOND, Clock, LiveClock
from mdp_queues._messages import DropReason, OutboxStats, OutgoingBatch

__all__ = ["Outbox"]


class Outbox:
    """A drop-oldest FIFO of outgoing batches, bounded in messages and in bytes.

    Args:
        max_messages: how many batches may wait.
        max_bytes: how many body bytes may wait.
        clock: source of "now" for expiry.
        stats: counters to update (shared with the publisher that owns the outbox).
    """

    def __init__(
        self,
        *,
        max_messages: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Clock | None = None,
        stats: OutboxStats | None = None,
    ) -> None:
        if max_messages < 1 or max_bytes < 1:
            msg = "an outbox needs room for at least one message and one byte"
            raise ValueError(msg)
        self._items: deque[OutgoingBatch] = deque()
        self._bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._clock = clock or LiveClock()
        self._nonempty = asyncio.Event()
        self.stats = stats or OutboxStats()
        self.downstream_up = False
        """Set by the publisher: whether drops for room are blamed on the broker being down."""
        self.high_water_messages = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        """Body bytes waiting."""
        return self._bytes

    def put(self, batch: OutgoingBatch) -> None:
        """Queue a batch; never blocks. Drops the oldest batches when over a bound."""
        self._items.append(batch)
        self._bytes += len(batch.body)
        while len(self._items) > self._max_messages or (
            self._bytes > self._max_bytes and len(self._items) > 1
        ):
            oldest = self._items.popleft()
            self._bytes -= len(oldest.body)
            reason = DropReason.OUTBOX_FULL if self.downstream_up else DropReason.BROKER_DOWN
            self.stats.count_dropped(oldest, reason)
        self.high_water_messages = max(self.high_water_messages, len(self._items))
        self._nonempty.set()

    def pop(self, max_age_seconds: float | None = None) -> OutgoingBatch | None:
        """Take the oldest batch that is still fresh, or None if nothing is waiting.

        Batches older than ``max_age_seconds`` (measured from their ``received_ns``) are
        dropped and counted as expired on the way.
        """
        limit_ns = None if max_age_seconds is None else int(max_age_seconds * NS_PER_SECOND)
        now_ns = self._clock.now_ns() if limit_ns is not None else 0
        while self._items:
            batch = self._items.popleft()
            self._bytes -= len(batch.body)
            if limit_ns is not None and now_ns - batch.received_ns > limit_ns:
                self.stats.count_dropped(batch, DropReason.EXPIRED)
                continue
            return batch
        self._nonempty.clear()
        return None

    async def wait(self) -> None:
        """Return once at least one batch is waiting."""
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()

    def drop_all(self, reason: str) -> int:
        """Drop everything waiting (e.g. at close), counting it; returns how many batches."""
        count = len(self._items)
        while self._items:
            batch = self._items.popleft()
            self.stats.count_dropped(batch, reason)
        self._bytes = 0
        self._nonempty.clear()
        return count
