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

**Clusters.** A classic queue lives on one node of a RabbitMQ cluster. With ``cluster`` set,
queues are declared *transient* and placed on the node with the fewest queues
(``x-queue-master-locator: min-masters``), so the partitions spread over the nodes. When a node
dies its transient queues go with it (with at most one TTL of messages), and the next
declaration from any client, on any surviving node, creates them again there; a durable
classic queue would instead refuse every declaration and consumer until its node came back.
Replicated (quorum) queues would keep the messages but write every one to disk, which market
data worth 5 s does not need. Switching an existing broker to or from cluster mode changes the
queues' arguments: delete them, or start one side with ``on_mismatch='recreate'``.

**Partitions.** With ``partitions`` above one, every market data type has that many queues
(``mdq.trades.p0`` ...), and an event goes to the queue of its symbol's partition
(:meth:`Topology.partition`, a CRC-32 of the symbol: the same on every process and machine).
Every event of a symbol, whatever its type, is in the same partition number, so the processor
that owns a partition owns its symbols outright and receives their events in feed order. The
listener computes the partition itself, so no exchange plugin is involved and the routing
cannot disagree with the consumers'. News is never partitioned.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_MAX_LENGTH_BYTES",
    "DEFAULT_NEWS_TTL_MS",
    "DEFAULT_TTL_MS",
    "MAX_PARTITIONS",
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

MAX_PARTITIONS: Final = 256
"""More partitions than this only multiply queues: far more than processors ever run."""

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
        partition: the partition number of a partitioned queue, None when unpartitioned.
        cluster: declared for a RabbitMQ cluster (transient, spread over the nodes).
    """

    name: str
    kind: str
    ttl_ms: int
    max_length_bytes: int
    partition: int | None = None
    cluster: bool = False

    @property
    def arguments(self) -> dict[str, int | str]:
        """The AMQP ``x-`` arguments the queue is declared with (identical on every side)."""
        arguments: dict[str, int | str] = {
            "x-message-ttl": self.ttl_ms,
            "x-max-length-bytes": self.max_length_bytes,
            "x-overflow": "drop-head",
        }
        if self.cluster:
            arguments["x-queue-master-locator"] = "min-masters"
        return arguments

    @property
    def durable(self) -> bool:
        """Durable definitions on one node; transient in a cluster (see the module docstring).

        Messages are never persistent either way.
        """
        return not self.cluster

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
        partitions: queues per market data type (1: one queue per type, unpartitioned).
        cluster: declare the queues for a RabbitMQ cluster (transient, spread over nodes).
    """

    prefix: str = ""
    ttl_ms: int = DEFAULT_TTL_MS
    news_ttl_ms: int = DEFAULT_NEWS_TTL_MS
    max_length_bytes: int = DEFAULT_MAX_LENGTH_BYTES
    partitions: int = 1
    cluster: bool = False
    _by_kind: dict[str, tuple[QueueSpec, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ttl_ms <= 0 or self.news_ttl_ms <= 0 or self.max_length_bytes <= 0:
            msg = "queue TTLs and the length bound must be positive"
            raise ValueError(msg)
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            msg = f"partitions must be within 1..{MAX_PARTITIONS}; it was {self.partitions}"
            raise ValueError(msg)
        by_kind: dict[str, tuple[QueueSpec, ...]] = {}
        for kind, base in _BASE_NAMES.items():
            ttl_ms = self.news_ttl_ms if kind == NEWS_KIND else self.ttl_ms
            name = self.prefix + base
            if kind == NEWS_KIND or self.partitions == 1:
                by_kind[kind] = (
                    QueueSpec(name, kind, ttl_ms, self.max_length_bytes, cluster=self.cluster),
                )
            else:
                by_kind[kind] = tuple(
                    QueueSpec(f"{name}.p{n}", kind, ttl_ms, self.max_length_bytes, n, self.cluster)
                    for n in range(self.partitions)
                )
        object.__setattr__(self, "_by_kind", by_kind)

    @property
    def partitioned(self) -> bool:
        """Whether market data types have one queue per partition."""
        return self.partitions > 1

    def partition(self, symbol: str) -> int:
        """The partition of ``symbol`` (0 when unpartitioned); stable across processes."""
        if self.partitions == 1:
            return 0
        return zlib.crc32(symbol.encode()) % self.partitions

    @property
    def queues(self) -> tuple[QueueSpec, ...]:
        """Every queue (every partition), market data first, news last."""
        return tuple(spec for specs in self._by_kind.values() for spec in specs)

    @property
    def market_queues(self) -> tuple[QueueSpec, ...]:
        """The market data queues (everything but news)."""
        return tuple(
            spec for kind, specs in self._by_kind.items() if kind != NEWS_KIND for spec in specs
        )

    @property
    def news(self) -> QueueSpec:
        """The news queue."""
        return self._by_kind[NEWS_KIND][0]

    @property
    def event_kinds(self) -> frozenset[str]:
        """The Massive ``ev`` codes that have a queue."""
        return frozenset(k for k in self._by_kind if k != NEWS_KIND)

    def for_kind(self, kind: str, symbol: str = "") -> QueueSpec | None:
        """The queue carrying ``kind`` (an ``ev`` code or ``"news"``), or None if there is none.

        When partitioned, the queue of ``symbol``'s partition. None means the listener must
        count and drop such events: nobody would consume them.
        """
        specs = self._by_kind.get(kind)
        if specs is None:
            return None
        if len(specs) == 1:
            return specs[0]
        return specs[self.partition(symbol)]

    def partitions_of(self, kind: str) -> tuple[QueueSpec, ...]:
        """Every queue carrying ``kind``: one per partition (empty when it has none)."""
        return self._by_kind.get(kind, ())

    def by_name(self, name: str) -> QueueSpec:
        """The queue with this full name.

        Raises:
            KeyError: no queue of this topology has that name.
        """
        for spec in self.queues:
            if spec.name == name:
                return spec
        msg = f"no queue named {name!r} in this topology (prefix {self.prefix!r})"
        raise KeyError(msg)
