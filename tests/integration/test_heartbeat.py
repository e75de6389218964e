"""Heartbeat against the real Redis: the key, its TTL and its survival of Redis failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mdp_core.clock import ManualClock
from mdp_runtime import Heartbeat

KEY = "mdp:heartbeat:processor:it-1"
START = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_db_url)
    try:
        yield client
    finally:
        await client.aclose()


async def _document(client: Redis) -> dict[str, Any]:
    raw = await client.get(KEY)
    assert raw is not None, f"{KEY} is missing"
    document: dict[str, Any] = json.loads(raw)
    return document


def _heartbeat(client: Redis, clock: ManualClock, processed: dict[str, int]) -> Heartbeat:
    return Heartbeat(
        client,
        KEY,
        ttl_seconds=30,
        interval_seconds=10.0,
        payload=lambda: dict(processed),
        clock=clock,
        service="processor",
        instance="it-1",
        version="0.1.0",
    )


async def test_beats_set_the_key_with_json_and_a_ttl(redis: Redis) -> None:
    clock = ManualClock(START)
    processed = {"processed": 1}
    heartbeat = _heartbeat(redis, clock, processed)
    heartbeat.start()
    await asyncio.wait_for(heartbeat.wait_beats(1), 10)
    first = await _document(redis)
    assert first["figures"] == {"processed": 1}
    assert first["status"] == "running"
    assert 0 < await redis.ttl(KEY) <= 30

    processed["processed"] = 9
    clock.advance(10.0)
    await asyncio.wait_for(heartbeat.wait_beats(2), 10)
    second = await _document(redis)
    assert second["figures"] == {"processed": 9}
    assert second["ts_ms"] - first["ts_ms"] == 10_000

    await heartbeat.stop()
    final = await _document(redis)
    assert final["status"] == "stopped"
    assert 0 < await redis.ttl(KEY) <= 30
    assert heartbeat.write_errors == 0


async def test_an_unreachable_redis_is_counted_never_raised() -> None:
    # Port 1 on loopback: nothing listens, so every connection attempt is refused.
    # No retries: redis-py's default backoff would only make the test slower.
    client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        heartbeat = _heartbeat(client, ManualClock(START), {"processed": 0})
        assert await heartbeat.beat() is False
        assert await heartbeat.beat() is False
        assert heartbeat.write_errors == 2
        assert not heartbeat.is_healthy()
    finally:
        await client.aclose()
