"""The gate every consumed message passes: poison and stale messages stop here.

RabbitMQ expires messages only while they sit in the queue; once prefetched into a consumer
they are delivered however old they become. So consumers check freshness themselves, against
the envelope's ``received_ns`` (when the listener received the data), and drop what is older
than the limit. An envelope that cannot be read is poison: it is acked and counted, never
requeued, because it would fail again and loop forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from mdp_core.clock import NS_PER_SECOND, Clock
from mdp_core.envelope import decode_header
from mdp_core.errors import EnvelopeError
from mdp_core.logging import get_logger
from mdp_queues._messages import ConsumerStats, DropReason, Received
from mdp_queues.topology import QueueSpec

__all__ = ["Admission"]

_log = get_logger("mdp_queues.consumer")


class Admission:
    """Decides, per message, whether the application gets it.

    Args:
        clock: source of "now" for the age check.
        stats: counters to update.
        max_age_seconds: freshness limit; None uses each queue's TTL.
    """

    __slots__ = ("_clock", "_max_age_seconds", "stats")

    def __init__(self, clock: Clock, stats: ConsumerStats, max_age_seconds: float | None) -> None:
        self._clock = clock
        self.stats = stats
        self._max_age_seconds = max_age_seconds

    def limit_for(self, queue: QueueSpec) -> float:
        """The freshness limit in seconds applied to ``queue``."""
        return self._max_age_seconds if self._max_age_seconds is not None else queue.ttl_seconds

    def admit(
        self,
        queue: QueueSpec,
        body: bytes,
        *,
        redelivered: bool,
        headers: Mapping[str, object] | None = None,
    ) -> Received | None:
        """Return the message for the application, or None when it must be acked and dropped."""
        try:
            envelope = decode_header(body)
        except EnvelopeError as exc:
            self.stats.count_dropped(DropReason.POISON, 0)
            _log.warning(
                "poison_message_dropped",
                queue=queue.name,
                kind=exc.kind,
                detail=exc.detail,
                first_bytes=repr(body[:80]),
            )
            return None
        age = (self._clock.now_ns() - envelope.received_ns) / NS_PER_SECOND
        if age > self.limit_for(queue):
            self.stats.count_dropped(DropReason.STALE, len(envelope.events))
            return None
        self.stats.delivered_messages += 1
        self.stats.delivered_events += len(envelope.events)
        self.stats.max_age_seconds_seen = max(self.stats.max_age_seconds_seen, age)
        return Received(
            queue=queue,
            envelope=envelope,
            body=body,
            redelivered=redelivered,
            age_seconds=age,
            headers=_text_headers(headers),
        )


def _text_headers(headers: Mapping[str, object] | None) -> dict[str, str]:
    """The headers whose values are text (AMQP may carry numbers, tables, bytes)."""
    if not headers:
        return {}
    text: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, str):
            text[name] = value
        elif isinstance(value, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                text[name] = value.decode()
    return text
