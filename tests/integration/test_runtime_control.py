""":class:`~mdp_runtime.RuntimeControl` on the real Redis: what it applies and what it refuses."""

from __future__ import annotations

import redis.asyncio as aioredis

from mdp_cache.control import Desired, RuntimeState, write_desired
from mdp_runtime import RuntimeControl


async def test_orders_outside_the_components_commands_and_failed_reads_change_nothing(
    redis_db_url: str,
) -> None:
    redis = aioredis.Redis.from_url(redis_db_url)
    down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    applied: list[RuntimeState] = []

    async def apply(state: RuntimeState) -> None:
        applied.append(state)

    scanner = RuntimeControl(redis, "scanner", "s-1", apply)
    try:
        await write_desired(redis, "scanner", Desired("draining", "eve", 1))  # not a scanner's
        assert await scanner.check() == "running"
        assert scanner.ignored == 1
        await write_desired(redis, "scanner", Desired("paused", "eve", 2))
        assert await scanner.check() == "paused"
        assert await scanner.check() == "paused"  # applied once
        assert applied == ["paused"]
        assert scanner.snapshot() == {
            "runtime_state": "paused",
            "runtime_changes": {"paused": 1},
            "runtime_control_errors": 0,
        }
        unreachable = RuntimeControl(down, "scanner", "s-1", apply)
        assert await unreachable.check() == "running"  # kept, not guessed
        assert unreachable.read_errors == 1
        assert applied == ["paused"]
    finally:
        await redis.aclose()
        await down.aclose()
