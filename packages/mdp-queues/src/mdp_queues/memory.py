"""An in-process bus with the AMQP transport's interfaces, for the embedded demo and tests.

It keeps the broker's contract so code behaves the same on both: one bounded queue per topology
queue, messages expire after the queue TTL, the oldest message is dropped when a queue is full
(RabbitMQ's ``drop-head``), and consumers apply the same freshness and poison gate. Several
consumers of one queue compete for its messages, as on RabbitMQ.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from mdp_core.clock import Clock, LiveClock
from mdp_queues._admission import Admission
from mdp_queues._messages import (
    ConsumerStats,
    DropReason,
    OutboxStats,
    OutgoingBatch,
    Received,
    ReceivedBatch,
)
from mdp_queues._protocols import Handler
from mdp_queues.topology import QueueSpec, Topology

__all__ = ["MemoryBus", "MemoryConsumer", "MemoryPublisher"]


@dataclass(frozen=True, slots=True)
class _Stored:
    body: bytes
    events: int
    enqueued_ns: int
    headers: dict[str, str] = field(default_factory=dict)


class _MemoryQueue:
    """One queue: a drop-head deque with TTL expiry on the way out."""

    __slots__ = ("_items", "_max_messages", "_nonempty", "dropped", "expired", "spec")

    def __init__(self, spec: QueueSpec, max_messages: int) -> None:
        self.spec = spec
        self._items: deque[_Stored] = deque()
        self._max_messages = max_messages
        self._nonempty = asyncio.Event()
        self.dropped = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: _Stored) -> None:
        self._items.append(item)
        while len(self._items) > self._max_messages:
            self._items.popleft()
            self.dropped += 1
        self._nonempty.set()

    def pop(self, now_ns: int) -> _Stored | None:
        ttl_ns = self.spec.ttl_ms * 1_000_000
        while self._items:
            item = self._items.popleft()
            if now_ns - item.enqueued_ns > ttl_ns:
                self.expired += 1
                continue
            return item
        self._nonempty.clear()
        return None

    async def wait(self) -> None:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()


class MemoryBus:
    """Queues living in this process; hand out publishers and consumers bound to them.

    Args:
        topology: the queues (the prefix is kept, so names match the AMQP deployment).
        clock: source of "now" for TTL and freshness.
        max_messages: per-queue bound; the oldest message is dropped above it.
    """

    def __init__(
        self, topology: Topology, *, clock: Clock | None = None, max_messages: int = 10_000
    ) -> None:
        self.topology = topology
        self.clock = clock or LiveClock()
        self._queues = {spec.name: _MemoryQueue(spec, max_messages) for spec in topology.queues}

    def publisher(self) -> MemoryPublisher:
        """A publisher writing into this bus."""
        return MemoryPublisher(self)

    def consumer(self, *, max_age_seconds: float | None = None) -> MemoryConsumer:
        """A consumer reading from this bus (freshness limit: the queue TTL unless given)."""
        return MemoryConsumer(self, max_age_seconds=max_age_seconds)

    def depth(self, queue: QueueSpec) -> int:
        """Messages waiting in ``queue`` (expired ones included until someone reads)."""
        return len(self._queues[queue.name])

    def dropped(self, queue: QueueSpec) -> int:
        """Messages ``queue`` shed because it was full."""
        return self._queues[queue.name].dropped

    def expired(self, queue: QueueSpec) -> int:
        """Messages ``queue`` expired (TTL) before anyone read them."""
        return self._queues[queue.name].expired

    def _queue(self, spec: QueueSpec) -> _MemoryQueue:
        try:
            return self._queues[spec.name]
        except KeyError:
            msg = f"queue {spec.name!r} is not part of this bus's topology"
            raise KeyError(msg) from None


class MemoryPublisher:
    """Publishes straight into a :class:`MemoryBus` queue (never blocks, never fails)."""

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._stats = OutboxStats()
        self._open = False

    @property
    def topology(self) -> Topology:
        """The queues this publisher sends to."""
        return self._bus.topology

    @property
    def connected(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._open

    @property
    def stats(self) -> OutboxStats:
        """Published and dropped counters."""
        return self._stats

    def publish(self, batch: OutgoingBatch) -> None:
        """Append ``batch`` to its queue (the queue drops its oldest message when full)."""
        if not self._open:
            self._stats.count_dropped(batch, DropReason.CLOSED)
            return
        stored = _Stored(batch.body, batch.events, self._bus.clock.now_ns(), dict(batch.headers))
        self._bus._queue(batch.queue).put(stored)
        self._stats.count_published(batch)

    async def start(self) -> None:
        """Open the publisher."""
        self._open = True

    async def close(self) -> None:
        """Close the publisher; later batches are dropped and counted."""
        self._open = False


class MemoryConsumer:
    """Consumes from a :class:`MemoryBus`, with the AMQP consumer's gate and batching."""

    def __init__(self, bus: MemoryBus, *, max_age_seconds: float | None = None) -> None:
        self._bus = bus
        self._stats = ConsumerStats()
        self._admission = Admission(bus.clock, self._stats, max_age_seconds)
        self._open = False

    @property
    def topology(self) -> Topology:
        """The queues this consumer reads from."""
        return self._bus.topology

    @property
    def connected(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._open

    @property
    def stats(self) -> ConsumerStats:
        """Delivered, dropped and failed counters."""
        return self._stats

    async def start(self) -> None:
        """Open the consumer."""
        self._open = True

    async def close(self) -> None:
        """Close the consumer."""
        self._open = False

    async def consume(self, queue: QueueSpec, handler: Handler) -> None:
        """Hand each admitted message to ``handler`` until cancelled (errors are counted)."""
        async for batch in self.consume_batches(queue, max_messages=1, max_wait_seconds=0.0):
            try:
                await handler(batch.messages[0])
            except Exception:
                self._stats.handler_errors += 1
                await batch.reject()
            else:
                await batch.ack()

    async def consume_batches(
        self, queue: QueueSpec, *, max_messages: int = 100, max_wait_seconds: float = 0.05
    ) -> AsyncGenerator[ReceivedBatch, None]:
        """Yield admitted messages in batches; see :class:`~mdp_queues.Consumer`."""
        source = self._bus._queue(queue)
        clock = self._bus.clock
        loop = asyncio.get_running_loop()
        waited = False
        while True:
            # Kept until a batch is yielded: messages that all expired leave the wait in force.
            waited = waited or not len(source)
            await source.wait()
            admitted: list[Received] = []
            deadline = loop.time() + max_wait_seconds
            while len(admitted) < max_messages:
                item = source.pop(clock.now_ns())
                if item is None:
                    remaining = deadline - loop.time()
                    if remaining <= 0 or not admitted:
                        break
                    try:
                        async with asyncio.timeout(remaining):
                            await source.wait()
                    except TimeoutError:
                        break
                    continue
                received = self._admission.admit(
                    queue, item.body, redelivered=False, headers=item.headers
                )
                if received is not None:
                    admitted.append(received)
            if admitted:
                yield ReceivedBatch(admitted, (), _settle_nothing, waited=waited)
                waited = False


async def _settle_nothing(tokens: Sequence[object], ok: bool) -> None:
    """Messages left the in-memory queue when they were taken: nothing to settle."""
    del tokens, ok
