"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from mdp_cache.client import close_redis, create_redis
from mdp_testing.redis_server import RedisServer


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    """A client of the test database (``redis_db_url``: empty at the start, flushed after)."""
    client = create_redis(redis_db_url)
    yield client
    await close_redis(client)


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    """A ``redis-server`` of the test's own: one it may kill, restart or flush whole."""
    server = RedisServer()
    await server.start()
    yield server
    await server.close()
