"""The transport interfaces, implemented by the AMQP and the in-memory buses alike.

Listeners depend on :class:`Publisher`, processors on :class:`Consumer`; the embedded demo
swaps in :mod:`mdp_queues.memory` without either side noticing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, runtime_checkable

from mdp_queues._messages import ConsumerStats, OutboxStats, OutgoingBatch, Received, ReceivedBatch
from mdp_queues.topology import QueueSpec, Topology

__all__ = ["Consumer", "Handler", "Publisher"]

Handler = Callable[[Received], Awaitable[None]]
"""Handles one message; the message is acked when it returns, rejected if it raises."""


@runtime_checkable
class Publisher(Protocol):
    """**Protocol:** sends batches to the queues without ever blocking the caller."""

    @property
    def topology(self) -> Topology:
        """The queues this publisher sends to."""
        ...

    @property
    def connected(self) -> bool:
        """Whether batches currently reach the broker (readiness)."""
        ...

    @property
    def stats(self) -> OutboxStats:
        """Published and dropped counters."""
        ...

    def publish(self, batch: OutgoingBatch) -> None:
        """Queue ``batch`` for sending; returns at once, may drop the oldest waiting batch."""
        ...

    async def start(self) -> None:
        """Connect (or begin connecting) and declare the topology."""
        ...

    async def close(self) -> None:
        """Stop sending; what is still waiting is dropped and counted."""
        ...


@runtime_checkable
class Consumer(Protocol):
    """**Protocol:** receives batches from a queue, dropping stale and poison messages."""

    @property
    def topology(self) -> Topology:
        """The queues this consumer reads from."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the consumer is attached to the broker (readiness)."""
        ...

    @property
    def stats(self) -> ConsumerStats:
        """Delivered, dropped and failed counters."""
        ...

    async def start(self) -> None:
        """Connect and declare the topology."""
        ...

    async def close(self) -> None:
        """Stop consuming; unacked messages go back to the broker."""
        ...

    async def consume(self, queue: QueueSpec, handler: Handler) -> None:
        """Hand every admitted message of ``queue`` to ``handler`` until cancelled or closed."""
        ...

    def consume_batches(
        self, queue: QueueSpec, *, max_messages: int = 100, max_wait_seconds: float = 0.05
    ) -> AsyncIterator[ReceivedBatch]:
        """Yield admitted messages of ``queue`` in batches to be settled together.

        A batch is yielded once ``max_messages`` arrived or ``max_wait_seconds`` passed since
        its first message, whichever comes first. Each says whether the consumer had to wait
        for it (:attr:`ReceivedBatch.waited`).
        """
        ...
