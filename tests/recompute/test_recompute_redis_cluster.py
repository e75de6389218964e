"""The recomputation check with MDC and WDC on a Redis Cluster (3 masters, 1 replica each).

The same pipeline and oracle as ``test_recompute``, the Redis URL of a loopback cluster instead
of a single server: boards, ranges and alerts must be exactly what the recorded feed recomputes
to, as they are on one Redis. The short run is the partitioned two-replica variant (per-symbol
ownership, exact alerts); the long every-fault variant is marked slow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mdp_testing.redis_cluster import RedisCluster

from . import test_recompute as single_redis
from .pipeline import Variant
from .tape import FrameFaults
from .test_recompute import DAY

CLUSTER_VARIANTS = [
    pytest.param(
        Variant(
            "Redis Cluster: two replicas owning 4 partitions, 09:29-09:33, reordered",
            DAY,
            "09:29",
            replicas=2,
            partitions=4,
            symbols=40,
            sim_seconds=240.0,
            faults=FrameFaults(drop_op=True, reorder_every=5),
            trade_symbols=20,
        ),
        id="cluster-r2-partitioned",
    ),
    pytest.param(
        Variant(
            "Redis Cluster: two replicas owning 4 partitions, every fault, 200 symbols",
            DAY,
            "09:29",
            replicas=2,
            partitions=4,
            symbols=200,
            speed=20.0,
            sim_seconds=360.0,
            faults=FrameFaults(duplicate_every=5, reorder_every=7, drop_op=True),
            trade_symbols=20,
        ),
        id="cluster-r2-long-every-fault",
        marks=pytest.mark.slow,
    ),
]


@pytest.fixture
async def cluster_url() -> AsyncIterator[str]:
    """A Redis Cluster of the run's own (pub/sub is cluster-wide, as on one server)."""
    cluster = RedisCluster()
    await cluster.start()
    try:
        yield cluster.url()
    finally:
        await cluster.close()


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("variant", CLUSTER_VARIANTS)
async def test_a_redis_cluster_serves_what_the_recorded_feed_recomputes_to(
    variant: Variant, amqp_url: str, mdq_prefix: str, cluster_url: str
) -> None:
    await single_redis.test_wdc_serves_what_the_recorded_feed_recomputes_to(
        variant, amqp_url, mdq_prefix, cluster_url
    )
