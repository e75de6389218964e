"""Time-of-day volume profiles in the MDC reference cache, against the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import msgspec
import pytest
from redis.asyncio import Redis

from mdp_cache.client import create_redis
from mdp_cache.keys import KEY_REF_TOD_VOLUME
from mdp_cache.records import DailyBar
from mdp_cache.reference import MemorySlotReferenceSource, ReferenceCache
from mdp_cache.volume_profile import SLOTS, VolumeProfile, day_start_ms, relative_volume

DAY = date(2026, 3, 4)  # a Wednesday
HISTORY = [date(2026, 2, 26), date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 3)]


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_db_url)
    try:
        yield client
    finally:
        await client.aclose()


def source() -> MemorySlotReferenceSource:
    """ACME trades 1,000 shares a minute from 04:00 on each history day; BARE has no minutes."""
    minutes = [
        (day_start_ms(day) + minute * 60_000, 1_000) for day in HISTORY for minute in range(960)
    ]
    daily = {
        symbol: [
            DailyBar(day=day, open=1, high=1, low=1, close=1, volume=960_000) for day in HISTORY
        ]
        for symbol in ("ACME", "BARE")
    }
    return MemorySlotReferenceSource(daily, {"ACME": 5_000_000}, {"ACME": minutes})


async def test_a_profile_is_fetched_once_cached_per_day_and_read_by_other_processes(
    redis: Redis,
) -> None:
    first_source = source()
    cache = ReferenceCache(first_source, redis, profile_days=3)
    assert cache.has_profiles
    assert not ReferenceCache(first_source, redis).has_profiles  # off unless asked for
    data = await cache.get("ACME", DAY)
    assert data.volume_profile is None  # asked for on its own: a previous close never waits
    profile = await cache.volume_profile("ACME", DAY)
    assert profile is not None
    assert (profile.trading_day, profile.days) == (DAY, 3)  # the 3 most recent of 4 days
    assert profile.cumulative[0] == 5_000.0  # 5 minutes x 1,000 shares
    assert profile.cumulative[SLOTS - 1] == 960_000.0
    assert first_source.slot_asked.count("ACME") == 1

    stored = await redis.get(KEY_REF_TOD_VOLUME.name(day=DAY.isoformat(), symbol="ACME"))
    assert stored is not None
    assert msgspec.json.decode(stored, type=VolumeProfile) == profile
    ttl = await redis.ttl(KEY_REF_TOD_VOLUME.name(day=DAY.isoformat(), symbol="ACME"))
    assert 0 < ttl <= (KEY_REF_TOD_VOLUME.ttl or 0)

    # Another process (a new cache over the same MDC) reads it: the source is not asked.
    second_source = source()
    again = await ReferenceCache(second_source, redis, profile_days=3).volume_profile("ACME", DAY)
    assert again == profile
    assert "ACME" not in second_source.slot_asked

    # RVol from the cached profile: 30,000 shares by 04:15 is 2x the usual 15,000.
    assert relative_volume(profile, 30_000, day_start_ms(DAY) + 15 * 60_000) == 2.0

    # A new trading day has its own key and profile.
    nxt = DAY + timedelta(days=1)
    await ReferenceCache(second_source, redis, profile_days=3).volume_profile("ACME", nxt)
    assert second_source.slot_asked.count("ACME") == 1
    assert await redis.exists(KEY_REF_TOD_VOLUME.name(day=nxt.isoformat(), symbol="ACME"))


async def test_a_symbol_without_minute_history_gets_a_negative_entry(redis: Redis) -> None:
    memory = source()
    assert await ReferenceCache(memory, redis, profile_days=20).volume_profile("BARE", DAY) is None
    data = await ReferenceCache(memory, redis, profile_days=20).get("BARE", DAY)
    assert data.prev_day is not None  # the rest of the reference is unaffected
    key = KEY_REF_TOD_VOLUME.name(day=DAY.isoformat(), symbol="BARE")
    assert await redis.get(key) == b"null"
    await ReferenceCache(memory, redis, profile_days=20).volume_profile("BARE", DAY)
    assert memory.slot_asked.count("BARE") == 1  # the negative entry is a hit
