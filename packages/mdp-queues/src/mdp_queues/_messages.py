"""What travels through the queues and the counters that say what happened to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from mdp_core.envelope import Envelope
from mdp_queues.topology import QueueSpec

__all__ = [
    "ConsumerStats",
    "DropReason",
    "OutboxStats",
    "OutgoingBatch",
    "Received",
    "ReceivedBatch",
    "ack_all",
]


class DropReason:
    """The reasons a batch is dropped before or after the broker; stable metric labels."""

    OUTBOX_FULL: Final = "outbox_full"
    """The broker is up but slower than the feed; the oldest waiting batch made room."""
    BROKER_DOWN: Final = "broker_down"
    """The broker connection is down; the oldest waiting batch made room."""
    EXPIRED: Final = "expired"
    """The batch waited longer than the queue TTL before it could be sent."""
    PUBLISH_FAILED: Final = "publish_failed"
    """The broker refused the batch (a nack), the connection broke while it was being sent,
    or its confirm did not come within the publisher's ``confirm_timeout``."""
    UNROUTABLE: Final = "unroutable"
    """The broker had no queue for the batch and returned it (a cluster node was lost with
    the queue, not yet re-declared); the publisher re-declares the queue."""
    CLOSED: Final = "closed"
    """The publisher was closed with the batch still waiting."""
    STALE: Final = "stale"
    """A consumer received the batch after its freshness limit."""
    POISON: Final = "poison"
    """A consumer could not read the envelope at all."""


@dataclass(frozen=True, slots=True)
class OutgoingBatch:
    """One queue message to publish: an encoded envelope of one kind.

    Attributes:
        queue: where it goes.
        body: the encoded envelope (:func:`mdp_core.envelope.encode_envelope`).
        batch_id: unique id of the batch, sent as the AMQP ``message_id``.
        received_ns: when the oldest event in it was received (Unix ns), sent as the AMQP
            ``timestamp`` and used for expiry in the outbox.
        events: how many events the body holds (drops are counted in events too).
        headers: extra AMQP headers, e.g. trace context (``traceparent``).
    """

    queue: QueueSpec
    body: bytes
    batch_id: str
    received_ns: int
    events: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OutboxStats:
    """Counters of a publisher, by queue kind and drop reason.

    Plain integers, mutated in place by the publisher; exporters read them.
    """

    published_messages: dict[str, int] = field(default_factory=dict)
    published_events: dict[str, int] = field(default_factory=dict)
    dropped_messages: dict[str, int] = field(default_factory=dict)
    dropped_events: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0

    def count_published(self, batch: OutgoingBatch) -> None:
        """Record one batch handed to the broker."""
        kind = batch.queue.kind
        self.published_messages[kind] = self.published_messages.get(kind, 0) + 1
        self.published_events[kind] = self.published_events.get(kind, 0) + batch.events

    def count_dropped(self, batch: OutgoingBatch, reason: str) -> None:
        """Record one batch lost for ``reason`` (a :class:`DropReason` value)."""
        self.dropped_messages[reason] = self.dropped_messages.get(reason, 0) + 1
        self.dropped_events[reason] = self.dropped_events.get(reason, 0) + batch.events

    @property
    def total_dropped_events(self) -> int:
        """Events lost for any reason."""
        return sum(self.dropped_events.values())

    @property
    def total_published_events(self) -> int:
        """Events handed to the broker."""
        return sum(self.published_events.values())


@dataclass(slots=True)
class ConsumerStats:
    """Counters of a consumer: what it handed on, acked, and dropped (and why)."""

    delivered_messages: int = 0
    delivered_events: int = 0
    dropped_messages: dict[str, int] = field(default_factory=dict)
    dropped_events: dict[str, int] = field(default_factory=dict)
    handler_errors: int = 0
    max_age_seconds_seen: float = 0.0
    consumers_lost: int = 0
    """Consumers the broker stopped delivering to and nothing restored (consumed again)."""

    def count_dropped(self, reason: str, events: int) -> None:
        """Record one message dropped (and acked) for ``reason``."""
        self.dropped_messages[reason] = self.dropped_messages.get(reason, 0) + 1
        self.dropped_events[reason] = self.dropped_events.get(reason, 0) + events


@dataclass(frozen=True, slots=True)
class Received:
    """One message a consumer hands to the application.

    Attributes:
        queue: the queue it came from.
        envelope: the decoded header; ``envelope.events`` are still undecoded slices (decode
            them with :func:`mdp_core.envelope.decode_event_batch` on ``body``, or one by one).
        body: the raw message body.
        redelivered: the broker delivered it before (the batch id lets you skip duplicates).
        age_seconds: how old the batch was when it was received (now - ``received_ns``).
        headers: the message's text headers, e.g. the publisher's trace context
            (``traceparent``); others are left out.
    """

    queue: QueueSpec
    envelope: Envelope
    body: bytes
    redelivered: bool
    age_seconds: float
    headers: Mapping[str, str] = field(default_factory=dict)


Settle = Callable[[Sequence[object], bool], Awaitable[None]]
"""Internal: settles delivery tokens (True = ack, False = reject without requeue)."""


class ReceivedBatch:
    """Messages delivered together; ack them together once their effects are durable.

    A batch must be settled exactly once, with :meth:`ack` (done) or :meth:`reject` (dropped,
    never requeued: a message that failed once would fail again and loop).

    Attributes:
        messages: The admitted messages, in delivery order.
        waited: Whether the consumer had nothing to hand out when asked for this batch and
            waited for its first message: it had caught up with what its queue delivered.
            A consumer that is never kept waiting is not keeping up (its queue always has a
            backlog), which a processor's flush pacing reads as saturation. Over AMQP this
            is the consumer's own inbox: one holding a full prefetch of unacked messages
            gets nothing more until it acks, and waits with the backlog still queued.
    """

    __slots__ = ("_settle", "_settled", "_tokens", "messages", "waited")

    def __init__(
        self,
        messages: list[Received],
        tokens: Sequence[object],
        settle: Settle,
        *,
        waited: bool = False,
    ) -> None:
        self.messages = messages
        self.waited = waited
        self._tokens = tokens
        self._settle = settle
        self._settled = False

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def event_count(self) -> int:
        """Events across every message of the batch."""
        return sum(len(m.envelope.events) for m in self.messages)

    @property
    def settled(self) -> bool:
        """Whether :meth:`ack` or :meth:`reject` was called."""
        return self._settled

    async def ack(self) -> None:
        """Acknowledge every message: the broker forgets them.

        Raises:
            RuntimeError: the batch was already settled.
        """
        await self._finish(ok=True)

    async def reject(self) -> None:
        """Reject every message without requeueing (they are dropped).

        Raises:
            RuntimeError: the batch was already settled.
        """
        await self._finish(ok=False)

    async def _finish(self, *, ok: bool) -> None:
        if self._settled:
            msg = "this batch was already acked or rejected"
            raise RuntimeError(msg)
        self._settled = True
        await self._settle(self._tokens, ok)


async def ack_all(batches: Sequence[ReceivedBatch]) -> None:
    """Ack ``batches`` together, in as few broker frames as their transport allows.

    Batches of one consumer share its settle function, which gets all their tokens at once:
    the AMQP consumer then acks each channel's highest delivery tag with ``multiple`` (one
    frame per queue, however many messages a flush carries). Batches must be given in the
    order they were received.

    Raises:
        RuntimeError: a batch was already settled (none is settled then).
    """
    if any(batch.settled for batch in batches):
        msg = "a batch was already acked or rejected"
        raise RuntimeError(msg)
    grouped: dict[Settle, list[object]] = {}
    for batch in batches:
        batch._settled = True
        grouped.setdefault(batch._settle, []).extend(batch._tokens)
    for settle, tokens in grouped.items():
        await settle(tokens, True)
