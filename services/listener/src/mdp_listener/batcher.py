"""Groups events of one type across frames into queue messages.

One AMQP message per event would cap the listener near 16k events/s; one message per batch of
hundreds moves more than a million. A batch is emitted when it holds ``batch_events`` events or
when the periodic flush finds it waiting (so a quiet type is never held back for long). Events
stay in the bytes the provider sent: the envelope wraps them without decoding or re-encoding.

With a partitioned topology, batches are kept per queue (type and partition): only the ``sym``
of each event is read to find its partition, so every event of a symbol reaches the one
processor that owns it, in the order the provider sent it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from mdp_core.envelope import encode_envelope
from mdp_core.telemetry import producer_span
from mdp_queues import OutgoingBatch, Publisher, QueueSpec, Topology

__all__ = ["Batcher", "FlushedBatch"]

_NS_TIMESTAMP_KINDS: Final = frozenset({"FMV", "LV"})
"""Event types whose ``t`` is in nanoseconds (the rest use milliseconds)."""


class _EventTime(msgspec.Struct):
    t: int = 0


_TIME_DECODER: Final = msgspec.json.Decoder(_EventTime)


class _EventSymbol(msgspec.Struct):
    sym: str = ""


_SYMBOL_DECODER: Final = msgspec.json.Decoder(_EventSymbol)


def _symbol(raw: msgspec.Raw) -> str:
    """The event's symbol, "" when it has none (the processor counts such events as bad)."""
    try:
        return _SYMBOL_DECODER.decode(raw).sym
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return ""


@dataclass(slots=True)
class _Pending:
    queue: QueueSpec
    first_received_ns: int
    raws: list[msgspec.Raw] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FlushedBatch:
    """What the batcher reports about each batch it emitted (for metrics)."""

    kind: str
    events: int
    body_bytes: int
    event_time_ns: int | None
    """Event time of the batch's newest event (Unix ns), when it could be read (lag metric)."""


class Batcher:
    """Accumulates undecoded events per type and publishes them as envelopes.

    Args:
        topology: maps each event type to its queue; types without one are refused by
            :meth:`add` (the caller counts and drops them).
        publisher: where batches go (never blocks).
        source: the envelope ``source`` (``massive`` or ``sim``).
        instance: this listener's id; batch ids are ``<instance>:<sequence>``.
        batch_events: events per batch that trigger an immediate emit.
        on_flush: called for every emitted batch (metrics).
    """

    def __init__(
        self,
        topology: Topology,
        publisher: Publisher,
        *,
        source: str,
        instance: str,
        batch_events: int,
        on_flush: Callable[[FlushedBatch], None] | None = None,
    ) -> None:
        self._topology = topology
        self._publisher = publisher
        self._source = source
        self._instance = instance
        self._batch_events = batch_events
        self._on_flush = on_flush
        self._pending: dict[str, _Pending] = {}
        self._sequence = itertools.count(1)

    @property
    def pending_events(self) -> int:
        """Events waiting to be emitted."""
        return sum(len(p.raws) for p in self._pending.values())

    def add(self, kind: str, raws: list[msgspec.Raw], received_ns: int) -> bool:
        """Add events of type ``kind``; emit each batch that is full.

        Returns:
            False when ``kind`` has no queue (nothing was added).
        """
        topology = self._topology
        if not topology.partitioned:
            queue = topology.for_kind(kind)
            if queue is None:
                return False
            self._add(queue, raws, received_ns)
            return True
        queues = topology.partitions_of(kind)
        if not queues:
            return False
        parts: dict[int, list[msgspec.Raw]] = {}
        partition = topology.partition
        for raw in raws:
            parts.setdefault(partition(_symbol(raw)), []).append(raw)
        for number, part in parts.items():
            self._add(queues[number], part, received_ns)
        return True

    def _add(self, queue: QueueSpec, raws: list[msgspec.Raw], received_ns: int) -> None:
        pending = self._pending.get(queue.name)
        if pending is None:
            pending = self._pending[queue.name] = _Pending(queue, received_ns)
        pending.raws.extend(raws)
        if len(pending.raws) >= self._batch_events:
            self._emit(pending)

    def flush(self) -> int:
        """Emit every waiting batch; returns how many were emitted."""
        emitted = 0
        for pending in list(self._pending.values()):
            if pending.raws:
                self._emit(pending)
                emitted += 1
        return emitted

    def _emit(self, pending: _Pending) -> None:
        del self._pending[pending.queue.name]
        kind = pending.queue.kind
        raws = pending.raws
        batch_id = f"{self._instance}:{next(self._sequence)}"
        # One span per batch: its context travels in the message headers, so the processor's
        # span for this batch joins the same trace.
        with producer_span(
            "listener.batch", component="listener", kind=kind, events=len(raws), batch=batch_id
        ) as headers:
            body = encode_envelope(
                kind=kind,
                source=self._source,
                batch=batch_id,
                received_ns=pending.first_received_ns,
                events=raws,
            )
            self._publisher.publish(
                OutgoingBatch(
                    queue=pending.queue,
                    body=body,
                    batch_id=batch_id,
                    received_ns=pending.first_received_ns,
                    events=len(raws),
                    headers=headers,
                )
            )
        if self._on_flush is not None:
            self._on_flush(FlushedBatch(kind, len(raws), len(body), _event_time_ns(kind, raws[-1])))


def _event_time_ns(kind: str, raw: msgspec.Raw) -> int | None:
    try:
        t = _TIME_DECODER.decode(raw).t
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if t <= 0:
        return None
    return t if kind in _NS_TIMESTAMP_KINDS else t * 1_000_000
