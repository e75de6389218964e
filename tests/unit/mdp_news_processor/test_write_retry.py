"""The news processor's WDC writes retry through a Redis Cluster's failover.

Between losing a master and promoting its replica a cluster raises ``SlotNotCoveredError``,
which is no ``RedisError``: it used to escape the retry loop and end the processor.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import SlotNotCoveredError

from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import FEED_NEWS_LATEST
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import LiveClock
from mdp_core.telemetry import Metrics
from mdp_news_processor.processor import NewsProcessor
from mdp_queues import Topology


class FlakyWriter:
    """Fails its first ``failures`` writes with ``error``, then stores."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0
        self.written: list[WidgetWrite] = []

    async def write(self, writes: Sequence[WidgetWrite]) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.written.extend(writes)
        return len(writes)


@pytest.mark.parametrize(
    "error",
    [SlotNotCoveredError("Slot 9 is not covered by the cluster."), RedisConnectionError("down")],
    ids=type,
)
async def test_a_write_is_retried_until_the_store_takes_it(error: Exception) -> None:
    writer = FlakyWriter(error, failures=2)
    processor = NewsProcessor(
        None,  # type: ignore[arg-type] # _write alone is exercised
        Topology(prefix="unit").news,
        writer,  # type: ignore[arg-type] # the writer's write() alone is used
        FinlightDataAnalyzer(),
        clock=LiveClock(),
        metrics=Metrics("news-processor-unit"),
        retry=BackoffPolicy(0.001, 0.002),
    )
    write = WidgetWrite(FEED_NEWS_LATEST, FEED_NEWS_LATEST.name(), b'{"title": "x"}')
    assert await processor._write([write], None) is True
    assert writer.calls == 3
    assert writer.written == [write]
    assert processor.redis_ok
    assert processor.status()["redis_errors"] == 2
