"""The control plane's pause and resume of the scanner, on the real Redis.

The order goes through the control hash and :class:`~mdp_runtime.RuntimeControl` as in
production. Pinned: a paused scanner holds no subscription (Redis counts no subscriber, so it
buffers nothing for it), a resume subscribes again and the scanner handles what is published
after it; the heartbeat-facing figures say ``paused`` and count the changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import redis.asyncio as aioredis

from mdp_analyzers.typing import FeedMessage, Output
from mdp_cache.client import create_redis
from mdp_cache.control import Desired, write_desired
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_runtime import RuntimeControl
from mdp_scanner import Scanner

CHANNEL = "halts"


class Recording:
    name: ClassVar[str] = "recording"
    consumes: ClassVar[frozenset[str]] = frozenset({CHANNEL})

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.arrived = asyncio.Event()

    def apply(self, inputs: Sequence[FeedMessage], now_ns: int) -> None:
        self.seen.extend(m.payload for m in inputs)
        self.arrived.set()

    def collect(self, now_ns: int) -> Output:
        return Output()


async def subscribers(redis: aioredis.Redis) -> int:
    ((_, count),) = await redis.pubsub_numsub(CHANNEL)
    return int(count)


async def test_pause_unsubscribes_and_resume_subscribes_again(redis_db_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_db_url)
    client = create_redis(redis_db_url)
    recording = Recording()
    scanner = Scanner(
        client, [recording], clock=ManualClock(0), backoff=BackoffPolicy(0.02, 10.0, jitter=0.5)
    )
    control = RuntimeControl(redis, "scanner", "scan-1", scanner.set_runtime_state, poll_seconds=60)
    stop = asyncio.Event()
    task = asyncio.ensure_future(scanner.run(stop))
    try:
        assert await scanner.wait_ready(10)
        assert await redis.publish(CHANNEL, b"one") == 1
        async with asyncio.timeout(10):
            await recording.arrived.wait()

        await write_desired(redis, "scanner", Desired("paused", "alice", 1_000))
        assert await control.check() == "paused"  # returns once the connection is closed
        assert scanner.paused
        assert not scanner.ready
        assert await subscribers(redis) == 0
        assert await redis.publish(CHANNEL, b"missed") == 0  # nobody listens: nothing buffers
        snapshot = scanner.metrics_snapshot()
        assert snapshot["paused"] is True
        assert snapshot["control_changes_total"] == {"paused": 1}
        assert scanner.stats.reconnects == 0  # a pause is not a lost connection

        recording.arrived.clear()
        await write_desired(redis, "scanner", Desired("running", "alice", 2_000))
        assert await control.check() == "running"
        assert await scanner.wait_ready(10)
        assert await subscribers(redis) == 1
        assert await redis.publish(CHANNEL, b"two") == 1
        async with asyncio.timeout(10):
            await recording.arrived.wait()
        assert recording.seen == [b"one", b"two"]
        assert scanner.metrics_snapshot()["control_changes_total"] == {"paused": 1, "running": 1}
        assert not scanner.metrics_snapshot()["paused"]
    finally:
        await control.close()
        stop.set()
        await task
        await client.aclose()
        await redis.aclose()


async def test_a_pause_while_redis_is_unreachable_returns_and_resume_connects(
    redis_db_url: str,
) -> None:
    client = create_redis("redis://127.0.0.1:1/0")  # nothing listens on port 1
    scanner = Scanner(
        client, [Recording()], clock=ManualClock(0), backoff=BackoffPolicy(0.01, 0.02, jitter=0.5)
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(scanner.run(stop))
    try:
        async with asyncio.timeout(10):
            await scanner.pause()
        assert scanner.paused
        await scanner.resume()
        assert not scanner.paused
    finally:
        stop.set()
        await task
        await client.aclose()
