"""Batch claims in the real MDC: the first claim of a batch id wins, for every consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from mdp_cache.claims import RedisBatchClaims
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import KEY_BATCH_CLAIM


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_db_url, client_name="test-claims")
    try:
        yield client
    finally:
        await close_redis(client)


async def test_the_first_claim_wins_and_is_bounded_by_the_ttl(redis: Redis) -> None:
    first = RedisBatchClaims(redis, "mdp", "worker-a")
    second = RedisBatchClaims(redis, "mdp", "worker-b")
    assert await first.claim(["b1", "b2"]) == {"b1", "b2"}
    assert await second.claim(["b2", "b3"]) == {"b3"}
    key = KEY_BATCH_CLAIM.name(consumer="mdp", batch="b2")
    assert await redis.get(key) == b"worker-a"
    ttl = await redis.ttl(key)
    assert KEY_BATCH_CLAIM.ttl is not None
    assert 0 < ttl <= KEY_BATCH_CLAIM.ttl
    # another consumer group claims independently
    assert await RedisBatchClaims(redis, "news", "w").claim(["b2"]) == {"b2"}
    assert await first.claim([]) == set()
