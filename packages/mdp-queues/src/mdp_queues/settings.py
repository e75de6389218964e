"""The queue settings every publisher and consumer of the MDQ shares.

Listeners and processors load the same :class:`QueueSettings`, so a deployment sets each
variable once and both sides declare identical queues. Loading goes through
:func:`mdp_core.settings.load` (the only reader of the environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mdp_core.settings import setting
from mdp_queues.topology import (
    DEFAULT_MAX_LENGTH_BYTES,
    DEFAULT_NEWS_TTL_MS,
    DEFAULT_TTL_MS,
    MAX_PARTITIONS,
    Topology,
)

__all__ = ["QueueSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """How the market data queues are named, bounded and declared."""

    prefix: str = setting(
        env="MDP_MDQ_PREFIX",
        default="",
        doc="Prefix of every queue name, to share one broker between tenants or test runs.",
    )
    ttl_ms: int = setting(
        env="MDP_MDQ_TTL_MS",
        default=DEFAULT_TTL_MS,
        min=1,
        doc="Message TTL of the market data queues; ticks are worthless after a few seconds.",
    )
    news_ttl_ms: int = setting(
        env="MDP_MDQ_NEWS_TTL_MS",
        default=DEFAULT_NEWS_TTL_MS,
        min=1,
        doc="Message TTL of the news queue; news stays relevant for minutes.",
    )
    max_length_bytes: int = setting(
        env="MDP_MDQ_MAX_LENGTH_BYTES",
        default=DEFAULT_MAX_LENGTH_BYTES,
        min=1,
        doc="Per-queue memory bound; the broker drops the oldest messages above it.",
    )
    partitions: int = setting(
        env="MDP_MDQ_PARTITIONS",
        default=1,
        min=1,
        max=MAX_PARTITIONS,
        doc="Queues per market data type; each symbol's events go to one partition, owned by "
        "one processor worker at a time (the manifests use 16). 1 keeps one shared queue per "
        "type (competing consumers, merged in MDC). Listeners and processors must agree.",
    )
    cluster: bool = setting(
        env="MDP_MDQ_CLUSTER",
        default=False,
        doc="Declare the queues for a RabbitMQ cluster: transient and spread over the nodes "
        "(min-masters), so a partition whose node dies is re-declared on a surviving one and "
        "at most one TTL of its messages is lost. Set it with several MDP_AMQP_URL nodes; "
        "switching needs the queues deleted or MDP_MDQ_ON_MISMATCH=recreate.",
    )
    on_mismatch: Literal["fail", "recreate"] = setting(
        env="MDP_MDQ_ON_MISMATCH",
        default="fail",
        doc="When a queue exists with other arguments: fail, or delete and re-declare it.",
    )
    publisher_confirms: bool = setting(
        env="MDP_MDQ_PUBLISHER_CONFIRMS",
        default=False,
        doc="Wait for broker confirms on publish (slower; market data is at-most-once).",
    )
    confirm_timeout_seconds: float = setting(
        env="MDP_MDQ_CONFIRM_TIMEOUT_SECONDS",
        default=5.0,
        min=0.1,
        doc="With confirms on: how long a publish waits for its confirm before the batch is "
        "counted publish_failed and the next goes out (a confirm that never comes, e.g. from "
        "a stalled node, must not hold every later batch back).",
    )

    def topology(self) -> Topology:
        """The topology these settings describe."""
        return Topology(
            prefix=self.prefix,
            ttl_ms=self.ttl_ms,
            news_ttl_ms=self.news_ttl_ms,
            max_length_bytes=self.max_length_bytes,
            partitions=self.partitions,
            cluster=self.cluster,
        )
