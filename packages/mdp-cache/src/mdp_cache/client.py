"""Creating and closing the asyncio Redis clients of MDC and WDC.

One small pool per process and store: every hot path batches its commands into pipelines, so a
handful of connections carries the whole load (the earlier implementation opened pools of up
to 1,000 connections per worker and store).
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from mdp_core.backoff import BackoffPolicy

__all__ = ["DEFAULT_MAX_CONNECTIONS", "PUBSUB_RECONNECT", "close_redis", "create_redis"]

DEFAULT_MAX_CONNECTIONS: Final = 16
"""Pool size per store and process: pipelines need few connections."""

PUBSUB_RECONNECT: Final = BackoffPolicy(initial_seconds=0.2, max_seconds=10.0, jitter=0.5)
"""Default reconnect delays of a pub/sub subscriber (services pass their own settings)."""


def create_redis(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    client_name: str | None = None,
    socket_timeout: float = 5.0,
) -> Redis:
    """A bytes-in/bytes-out asyncio client for ``url`` (no connection is made yet).

    Responses are not decoded: payloads are JSON bytes that go out to clients unchanged.
    A command retries a couple of times with backoff on a dropped connection; longer outages
    surface as ``redis.exceptions.ConnectionError`` for the caller's own retry loop. When every
    pooled connection is busy a caller waits for one (up to ``socket_timeout``) instead of
    failing: bursts of concurrent lookups queue, they do not error.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        client_name=client_name,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        health_check_interval=30,
        decode_responses=False,
    )
    return Redis.from_pool(pool)


async def close_redis(client: Redis) -> None:
    """Close ``client`` and its connection pool."""
    await client.aclose()
