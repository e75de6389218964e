"""The market data queue (MDQ) topology: the only module that spells queue names and arguments.

Listeners and processors both build a :class:`Topology` and declare it; declaring is idempotent,
so whichever side starts first creates the queues and the other finds them as they are. Every
queue carries the same contract:

* one queue per subscription type (``mdq.trades`` holds only ``T`` events, ...), plus
  ``mdq.news``; events of a type without a queue are counted and dropped by the listener;
* ``x-message-ttl``: market data is worthless after a few seconds (5 s), news after 15 minutes;
* ``x-max-length-bytes`` with ``x-overflow: drop-head``: a memory bound that sheds the oldest
  data first when nobody consumes;
* durable queue definitions (they survive a broker restart, so a publisher restarted before
  its consumers still routes) carrying non-persistent messages (data never touches disk).

Messages go through the default exchange with the queue name as routing key, so there are no
exchanges or bindings to agree on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_MAX_LENGTH_BYTES",
    "DEFAULT_NEWS_TTL_MS",
    "DEFAULT_TTL_MS",
    "NEWS_KIND",
    "QueueSpec",
    "Topology",
]

DEFAULT_TTL_MS: Final = 5_000
"""Market data older than this is worthless; the broker expires it in the queue."""

DEFAULT_NEWS_TTL_MS: Final = 15 * 60 * 1_000
"""News stays relevant longer than ticks; a processor restart must not lose the last minutes."""

DEFAULT_MAX_LENGTH_BYTES: Final = 64 * 1024 * 1024
"""Per-queue memory bound; above it the broker drops the oldest messages (``drop-head``)."""

NEWS_KIND: Final = "news"
"""The envelope ``kind`` of news batches."""

#: Queue base name per envelope kind (the Massive ``ev`` code, or ``news``).
_BASE_NAMES: Final[Mapping[str, str]] = {
    "A": "mdq.aggregates",
    "AM": "mdq.minute_aggregates",
    "T": "mdq.trades",
    "Q": "mdq.quotes",
    "LULD": "mdq.halts",
    "NOI": "mdq.imbalances",
    "FMV": "mdq.fair_values",
    "LV": "mdq.launchpad_values",
    NEWS_KIND: "mdq.news",
}


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue of the topology.

    Attributes:
        name: the full queue name (prefix included), also the routing key.
        kind: the envelope kind it carries: an ``ev`` code (``"T"``) or ``"news"``.
        ttl_ms: message time-to-live in the queue.
        max_length_bytes: memory bound; the oldest messages are dropped above it.
    """

    name: str
    kind: str
    ttl_ms: int
    max_length_bytes: int

    @property
    def arguments(self) -> dict[str, int | str]:
        """The AMQP ``x-`` arguments the queue is declared with (identical on every side)."""
        return {
            "x-message-ttl": self.ttl_ms,
            "x-max-length-bytes": self.max_length_bytes,
            "x-overflow": "drop-head",
        }

    @property
    def durable(self) -> bool:
        """Queue definitions are durable; messages are not (see the module docstring)."""
        return True

    @property
    def ttl_seconds(self) -> float:
        """The TTL in seconds, the default freshness limit of a consumer of this queue."""
        return self.ttl_ms / 1_000


@dataclass(frozen=True, slots=True)
class Topology:
    """The set of queues listeners publish to and processors consume from.

    Args:
        prefix: prepended to every queue name, for tests and several tenants on one broker
            (``"tenant-a."`` gives ``tenant-a.mdq.trades``).
        ttl_ms: TTL of the market data queues.
        news_ttl_ms: TTL of the news queue.
        max_length_bytes: per-queue memory bound.
    """

    prefix: str = ""
    ttl_ms: int = DEFAULT_TTL_MS
    news_ttl_ms: int = DEFAULT_NEWS_TTL_MS
    max_length_bytes: int = DEFAULT_MAX_LENGTH_BYTES
    _by_kind: dict[str, QueueSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ttl_ms <= 0 or self.news_ttl_ms <= 0 or self.max_length_bytes <= 0:
            msg = "queue TTLs and the length bound must be positive"
            raise ValueError(msg)
        by_kind = {
            kind: QueueSpec(
                name=self.prefix + base,
                kind=kind,
                ttl_ms=self.news_ttl_ms if kind == NEWS_KIND else self.ttl_ms,
                max_length_bytes=self.max_length_bytes,
            )
            for kind, base in _BASE_NAMES.items()
        }
        object.__setattr__(self, "_by_kind", by_kind)

    @property
    def queues(self) -> tuple[QueueSpec, ...]:
        """Every queue, market data first, news last."""
        return tuple(self._by_kind.values())

    @property
    def market_queues(self) -> tuple[QueueSpec, ...]:
        """The market data queues (everything but news)."""
        return tuple(q for kind, q in self._by_kind.items() if kind != NEWS_KIND)

    @property
    def news(self) -> QueueSpec:
        """The news queue."""
        return self._by_kind[NEWS_KIND]

    @property
    def event_kinds(self) -> frozenset[str]:
        """The Massive ``ev`` codes that have a queue."""
        return frozenset(k for k in self._by_kind if k != NEWS_KIND)

    def for_kind(self, kind: str) -> QueueSpec | None:
        """The queue carrying ``kind`` (an ``ev`` code or ``"news"``), or None if there is none.

        None means the listener must count and drop such events: nobody would consume them.
        """
        return self._by_kind.get(kind)

    def by_name(self, name: str) -> QueueSpec:
        """The queue with this full name.

        Raises:
            KeyError: no queue of this topology has that name.
        """
        for spec in self._by_kind.values():
            if spec.name == name:
                return spec
        msg = f"no queue named {name!r} in this topology (prefix {self.prefix!r})"
        raise KeyError(msg)
