"""A flush to MDC cut off midway, on the real Redis: no transaction, marks last, retries converge.

``RedisState.apply`` sends a flush as one plain pipeline, not ``MULTI``/``EXEC``: a
transaction runs the whole flush (tens to hundreds of milliseconds at saturation) while every
other client waits. What the transaction gave has to hold without it:

* a batch is never marked applied before its state is written (the marks are the pipeline's
  last commands, and Redis runs one connection's commands in order);
* a connection lost midway leaves a prefix applied and nothing marked; applying the whole
  flush again (the client's own retry, or the broker's redelivery) ends exactly where one
  application ends, and reports the same rows to publish (those the lost attempt stored too).

The connection is cut by a proxy (``TcpProxy.cut_after``) at nine points through the flush and
at two among its marks.
"""

from __future__ import annotations

import asyncio
import random
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Monitor
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from mdp_cache import lattice
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import KEY_SEEN_BATCH
from mdp_cache.ops import (
    AppendTrades,
    Applied,
    KeepTop,
    PutMerged,
    PutNewer,
    SetValue,
    StateOp,
    WindowTrade,
)
from mdp_cache.state import RedisState
from mdp_core.clock import ManualClock
from mdp_testing.proxy import TcpProxy

pytestmark = pytest.mark.integration

MARKS = ["mdp:seen:t:cut:1", "mdp:seen:t:cut:2"]


def a_flush(rng: random.Random, round_: int) -> list[StateOp]:
    """Every kind of operation, one merged row per member (as an analyzer's flush has)."""
    ops: list[StateOp] = []
    for n, member in enumerate(("AAA", "BBB", "CCC", "DDD")):
        high = repr(float(100 * round_ + rng.randint(1, 50)))  # a new high every flush
        figures = lattice.render({"h": (lattice.MAX, high, str(round_))})
        ops.append(
            PutMerged(
                "mdp:t:rows", "mdp:t:versions", "mdp:t:figures", member, 10 * round_ + n,
                f'{{"m":"{member}","r":{round_},"f":"{figures}"}}'.encode(), figures,
                ("mdp:t:board",), (float(rng.randint(0, 9)),), 60, f"quote:{member}", 3,
            )
        )  # fmt: skip
    for _ in range(30):
        member = rng.choice("EFGHIJ")
        version = rng.randint(0, 9)
        ops.append(
            PutNewer(
                "mdp:t:nrows", "mdp:t:nversions", member, version,
                f'{{"m":"{member}","v":{version}}}'.encode(), ("mdp:t:nboard",),
                (float(version),), 60,
            )
        )  # fmt: skip
    for symbol in ("AAA", "KKK", "LLL"):
        trades = tuple(
            WindowTrade(f"4:{round_}-{i}:{1_000 * round_ + i}", rng.randint(1, 900),
                        1_000 * round_ + i, 10.0 + i / 100, 4)
            for i in range(rng.randint(1, 40))
        )  # fmt: skip
        ops.append(AppendTrades(symbol, trades, 50, 600))
    offers = tuple((f"m{rng.randint(0, 30)}".encode(), float(rng.randint(0, 99))) for _ in range(8))
    ops.append(KeepTop("mdp:t:top", tuple(dict(offers).items()), 5, 60))
    ops.append(SetValue(f"mdp:t:value:{round_ % 2}", f"v{round_}".encode(), 60))
    return ops


async def snapshot(redis: Redis) -> dict[bytes, object]:
    """Every key of the test database with its value (TTLs only as set or not)."""
    found: dict[bytes, object] = {}
    async for key in redis.scan_iter(count=1000):
        kind = cast("bytes", await redis.type(key)).decode()
        value: object
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        else:
            assert kind == "set", kind
            value = await redis.smembers(key)
        found[key] = (kind, value, await redis.ttl(key) > 0)
    return found


async def _record(monitor: Monitor, db: int, seen: list[str]) -> None:
    """The test database's commands from clients (not from scripts), up to the sentinel."""
    while True:
        info = await monitor.next_command()
        if info["client_type"] == "lua" or info["db"] != db:
            continue
        if info["command"] == "ECHO flush-done":
            return
        seen.append(info["command"])


async def test_a_flush_is_no_transaction_and_marks_come_last(redis: Redis) -> None:
    state = RedisState(redis, clock=ManualClock(1_700_000_000 * 10**9))
    await state.load_scripts()
    seen: list[str] = []
    async with redis.monitor() as monitor:
        db = int(redis.connection_pool.connection_kwargs.get("db", 0))
        listening = asyncio.create_task(_record(monitor, db, seen))
        await state.apply(a_flush(random.Random(1), 1), marks=MARKS)
        await redis.echo("flush-done")
        await asyncio.wait_for(listening, 10)
    names = [command.split(" ", 1)[0].upper() for command in seen]
    assert "MULTI" not in names
    assert "EXEC" not in names
    assert names.count("EVALSHA") >= 3  # rows, merged rows, trade windows
    # The marks, and nothing after them.
    assert [command.split(" ")[:2] for command in seen[-len(MARKS) :]] == [
        ["SET", mark] for mark in MARKS
    ]
    assert sum(name == "SET" and "mdp:seen:" in c for name, c in zip(names, seen, strict=True)) == 2


async def test_a_flush_cut_midway_marks_nothing_and_applying_it_again_converges(
    redis: Redis, redis_db_url: str
) -> None:
    clock = ManualClock(1_700_000_000 * 10**9)
    rng = random.Random(7)
    first, second = a_flush(rng, 1), a_flush(rng, 2)

    async def apply_first() -> dict[bytes, object]:
        await redis.flushdb()
        await RedisState(redis, clock=clock).apply(first, marks=["mdp:seen:t:cut:0"])
        return await snapshot(redis)

    async def through(budget: int) -> tuple[int, int, Applied | None]:
        """Load the scripts, then apply ``second`` through a proxy cut ``budget`` bytes into it.

        Returns the bytes forwarded before the flush and in all, and what the flush reported
        (None: it raised).
        """
        async with TcpProxy.for_url(redis_db_url) as proxy:
            client = create_redis(proxy.proxied(redis_db_url))
            try:
                state = RedisState(client, clock=clock)
                await state.load_scripts()
                before = proxy.forwarded
                proxy.cut_after(budget)
                try:
                    applied = await state.apply(second, marks=MARKS)
                except RedisConnectionError:
                    return before, proxy.forwarded, None
                return before, proxy.forwarded, applied
            finally:
                await close_redis(client)

    def published(applied: Applied) -> list[tuple[str, int, bytes]]:
        return sorted((row.name, row.version, row.payload) for row in applied.accepted)

    await apply_first()
    before_flush, total, whole = await through(10**9)
    assert whole is not None
    flush_bytes = total - before_flush
    once = await snapshot(redis)
    assert len(published(whole)) == 4  # every merged row of the flush

    def state_of(snap: dict[bytes, object]) -> dict[bytes, object]:
        return {key: value for key, value in snap.items() if not key.startswith(b"mdp:seen:")}

    # Nine cuts through the flush, and two among the marks at its end: the state all written
    # and no mark, then the first mark and not the second.
    ttl = KEY_SEEN_BATCH.ttl or 600
    mark_bytes = [
        sum(map(len, Connection().pack_command("SET", mark, b"1", "EX", ttl))) for mark in MARKS
    ]
    budgets = [flush_bytes * tenth // 10 for tenth in range(1, 10)]
    budgets += [flush_bytes - sum(mark_bytes), flush_bytes - mark_bytes[-1]]
    midway = 0
    for budget in budgets:
        initial = await apply_first()
        _, _, cut = await through(budget)
        assert cut is None, f"a cut {budget} bytes into the flush went unnoticed"
        partial = await snapshot(redis)
        marked = [mark for mark in MARKS if mark.encode() in partial]
        if marked:
            assert state_of(partial) == state_of(once), f"marked without its state ({budget})"
        midway += partial not in (initial, once)
        # The retry (or the redelivery) applies the whole flush again, and publishes every
        # row as one application would, those the cut attempt stored unheard included.
        again = await RedisState(redis, clock=clock).apply(second, marks=MARKS)
        assert await snapshot(redis) == once, f"cut {budget} bytes in"
        assert published(again) == published(whole), f"cut {budget} bytes in"
        if budget == budgets[-2]:  # every state command ran, no mark
            assert (state_of(partial), marked) == (state_of(once), [])
        if budget == budgets[-1]:
            assert marked == MARKS[:1]
    assert midway >= 5  # the cuts did land inside the flush, with part of it applied
