"""RedisState against the real Redis: the Lua merge equals MemoryState, scripts reload, leases."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from mdp_analyzers.state import MemoryState
from mdp_cache.client import close_redis, create_redis
from mdp_cache.ops import PutNewer, SetValue, TopRead
from mdp_cache.state import RedisState


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_db_url)
    yield client
    await close_redis(client)


def random_ops(rng: random.Random, count: int) -> list[PutNewer]:
    ops = []
    for _ in range(count):
        member = rng.choice("ABCDEFG")
        version = rng.randint(0, 6)
        extra = rng.randint(0, 2)
        payload = f'{{"m":"{member}","v":{version},"x":{extra}}}'.encode()
        # Like real rows, the score is a function of the payload.
        score = None if extra == 0 else float(version * 10 + extra)
        ops.append(
            PutNewer(
                rows_key="mdp:t:rows",
                versions_key="mdp:t:versions",
                member=member,
                version=version,
                payload=payload,
                score_keys=("mdp:t:board", "mdp:t:vol"),
                scores=(score, 1.0),
                ttl=60,
            )
        )
    return ops


@pytest.mark.parametrize("seed", range(5))
async def test_lua_merge_equals_the_memory_backend(redis: Redis, seed: int) -> None:
    rng = random.Random(seed)
    ops = random_ops(rng, 300)
    memory = MemoryState()
    memory.apply_now(ops)
    state = RedisState(redis)
    shuffled = ops + rng.sample(ops, 100)
    rng.shuffle(shuffled)
    for start in range(0, len(shuffled), 37):  # several flushes, any order, duplicates
        await state.apply(shuffled[start : start + 37])
    assert await redis.hgetall("mdp:t:rows") == {
        k.encode(): v for k, v in memory.rows["mdp:t:rows"].items()
    }
    read = TopRead("mdp:t:board", "mdp:t:rows", 5)
    assert await state.top([read]) == [memory.top_now(read)]
    assert 0 < await redis.ttl("mdp:t:board") <= 60


async def test_marks_and_values_land_with_the_state(redis: Redis) -> None:
    state = RedisState(redis)
    await state.apply([SetValue("mdp:t:value", b"v", 30)], marks=["mdp:seen:t:1"])
    assert await redis.get("mdp:t:value") == b"v"
    assert await state.seen(["mdp:seen:t:1", "mdp:seen:t:2"]) == {"mdp:seen:t:1"}
    assert await redis.ttl("mdp:seen:t:1") > 0


async def test_an_unknown_script_is_reloaded(redis: Redis) -> None:
    state = RedisState(redis)
    await state.load_scripts()
    state._sha = "0" * 40  # as if the server had forgotten the script
    await state.apply(random_ops(random.Random(1), 3))
    assert await redis.hlen("mdp:t:rows") > 0


async def test_one_replica_holds_the_publishing_lease(redis: Redis) -> None:
    first, second = RedisState(redis), RedisState(redis)
    assert await first.hold_lease("mdp:t:lease", "one", 60_000)
    assert not await second.hold_lease("mdp:t:lease", "two", 60_000)
    assert await first.hold_lease("mdp:t:lease", "one", 60_000)  # renewal
    await redis.delete("mdp:t:lease")  # the holder died and the lease expired
    assert await second.hold_lease("mdp:t:lease", "two", 60_000)
