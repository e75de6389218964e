"""Fault switches of the simulated providers, flipped at runtime by tests and the demo harness.

Each server reads its section of a shared :class:`Faults` object on every operation, so a test can
turn a fault on, watch the client react, and turn it off again without restarting anything.
One-shot actions (close every connection, kick, send an oversized frame) are methods of the
servers themselves; this module only holds the standing conditions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "DEFAULT_SLOW_CONSUMER_BYTES",
    "DEFAULT_SLOW_CONSUMER_SECONDS",
    "Faults",
    "FinlightFaults",
    "MalformedKind",
    "MassiveFaults",
    "RestFaults",
]

DEFAULT_SLOW_CONSUMER_BYTES = 16 * 1024 * 1024
"""Outbound bytes a Massive connection may have queued before it is dropped as a slow consumer."""

DEFAULT_SLOW_CONSUMER_SECONDS = 10.0
"""How long one frame may wait for the client to read before the connection is dropped."""


class MalformedKind(StrEnum):
    """The shapes of bad Massive frames the server can mix into a good stream.

    ``OBJECT``, ``MISSING_EV`` and ``BAD_JSON`` make the official client's ``connect()`` raise;
    ``WRONG_TYPES`` and ``NAN_STRINGS`` pass through it untouched (its models do not coerce types)
    and reach the application, whose decoder must reject them. ``NESTED`` (a good event beside
    ``[[[[...`` thousands deep: valid JSON past every decoder's recursion limit) reaches the
    application in raw mode, which must refuse it without losing the session.
    """

    OBJECT = "object"
    MISSING_EV = "missing_ev"
    BAD_JSON = "bad_json"
    WRONG_TYPES = "wrong_types"
    NAN_STRINGS = "nan_strings"
    NESTED = "nested"


@dataclass(slots=True)
class MassiveFaults:
    """Standing fault conditions of the Massive websocket server.

    Attributes:
        stall: every connection stops receiving anything (data and replies) while its socket
            stays open and still answers protocol pings; events meant for it are discarded.
        stalled_keys: like ``stall`` but only for connections authenticated with these keys.
        malformed_ratio: probability (0..1) that a malformed frame is sent before a good one.
        malformed_kinds: which malformed shapes to draw from.
        slow_consumer_bytes: outbound bytes (our queue plus the transport buffer) above which a
            connection gets a ``slow_consumer`` status and is closed with 1008.
        slow_consumer_seconds: a frame that cannot be written for this long has the same effect
            (this is what catches a stuck reader when the market is paced by backpressure).
        refuse_until: monotonic instant (seconds, server clock) before which upgrades get 503.
    """

    stall: bool = False
    stalled_keys: set[str] = field(default_factory=set)
    malformed_ratio: float = 0.0
    malformed_kinds: tuple[MalformedKind, ...] = tuple(MalformedKind)
    slow_consumer_bytes: int = DEFAULT_SLOW_CONSUMER_BYTES
    slow_consumer_seconds: float = DEFAULT_SLOW_CONSUMER_SECONDS
    refuse_until: float = 0.0

    def is_stalled(self, key: str | None) -> bool:
        """Tell whether a connection authenticated with ``key`` must stay silent."""
        return self.stall or (key is not None and key in self.stalled_keys)


@dataclass(slots=True)
class RestFaults:
    """Standing fault conditions of the Massive REST stub.

    Attributes:
        rate_limited: the next N requests are answered 429 with ``Retry-After``.
        retry_after: seconds announced in ``Retry-After``.
        server_errors: the next N requests are answered 500.
        delay: seconds every response waits before being sent (slow-response mode).
    """

    rate_limited: int = 0
    retry_after: int = 1
    server_errors: int = 0
    delay: float = 0.0


@dataclass(slots=True)
class FinlightFaults:
    """Standing fault conditions of the Finlight websocket server.

    Attributes:
        no_pong: JSON ``ping`` messages are left unanswered (the client's watchdog then closes).
        invalid_articles: articles are sent without their required ``title`` (the client drops
            them with an error log and carries on).
    """

    no_pong: bool = False
    invalid_articles: bool = False


@dataclass(slots=True)
class Faults:
    """All fault switches of one simulator run, one section per server."""

    massive: MassiveFaults = field(default_factory=MassiveFaults)
    rest: RestFaults = field(default_factory=RestFaults)
    finlight: FinlightFaults = field(default_factory=FinlightFaults)

    def clear(self) -> None:
        """Turn every fault off (limits go back to their defaults)."""
        self.massive = MassiveFaults()
        self.rest = RestFaults()
        self.finlight = FinlightFaults()
