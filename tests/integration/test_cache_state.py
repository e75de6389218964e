"""RedisState against the real Redis: the Lua merge equals MemoryState, scripts reload, leases.

Trade windows and capped rankings too: whatever the batching and redelivery, the Lua window
equals the in-memory one and a plain recomputation, and the union of capped rankings is the
global top of everything offered.
"""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

from mdp_analyzers.state import MemoryState
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_cache.keys import KEY_TT_IDS, KEY_TT_STATS, KEY_TT_UNION, KEY_TT_WINDOW
from mdp_cache.ops import (
    AppendTrades,
    KeepTop,
    PutNewer,
    RowsRead,
    SetValue,
    TopRead,
    UnionTopRead,
    UnknownStateOp,
    WindowStatsRead,
    WindowTrade,
    decode_window_stats,
)
from mdp_cache.state import RedisState
from mdp_core.clock import ManualClock
from mdp_core.events import Trade


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


async def test_a_board_read_is_its_ranks_with_their_rows_and_exact_scores(redis: Redis) -> None:
    # Scores that differ in the sixth decimal, an exact tie, a member whose row is gone.
    await redis.zadd(
        "mdp:t:board",
        {"A": 0.257308, "B": 0.257271, "C": 0.1, "D": 0.1, "GONE": 0.3, "E": -2.5},
    )
    await redis.hset(
        "mdp:t:rows", mapping={m: f"row {m}" for m in ("A", "B", "C", "D", "E", "OTHER")}
    )
    await redis.zadd("mdp:t:empty-board", {"X": 1.0})  # its rows hash does not exist
    state = RedisState(redis)
    reads = [
        TopRead("mdp:t:board", "mdp:t:rows", 4),
        TopRead("mdp:t:board", "mdp:t:rows", 100),
        TopRead("mdp:t:board", "mdp:t:rows", 0),
        TopRead("mdp:t:missing", "mdp:t:rows", 5),
        TopRead("mdp:t:empty-board", "mdp:t:nothing", 5),
    ]
    top4, everything, none, missing, rowless = await state.top(reads)
    # The top four ranks, minus the member without a row; ties by member, descending.
    assert [(m.member, m.score, m.payload) for m in top4] == [
        ("A", 0.257308, b"row A"),
        ("B", 0.257271, b"row B"),
        ("D", 0.1, b"row D"),
    ]
    assert [m.member for m in everything] == ["A", "B", "D", "C", "E"]
    assert everything[-1].score == -2.5
    assert none == missing == rowless == []


async def test_marks_and_values_land_with_the_state(redis: Redis) -> None:
    state = RedisState(redis)
    await state.apply([SetValue("mdp:t:value", b"v", 30)], marks=["mdp:seen:t:1"])
    assert await redis.get("mdp:t:value") == b"v"
    assert await state.seen(["mdp:seen:t:1", "mdp:seen:t:2"]) == {"mdp:seen:t:1"}
    assert await redis.ttl("mdp:seen:t:1") > 0


class NotAnOp:
    """Shaped like a SetValue, and none: what a backend would once have taken for one."""

    key = "mdp:t:stray"
    payload = b"v"
    ttl = 30


async def test_an_unknown_op_raises_before_the_transaction_and_nothing_lands(redis: Redis) -> None:
    state = RedisState(redis)
    ops = [SetValue("mdp:t:value", b"v", 30), NotAnOp(), *random_ops(random.Random(2), 3)]
    with pytest.raises(UnknownStateOp, match="NotAnOp"):
        await state.apply(ops, marks=["mdp:seen:t:3"])  # type: ignore[arg-type]  # what the types forbid
    assert await redis.exists("mdp:t:value", "mdp:t:stray", "mdp:t:rows", "mdp:seen:t:3") == 0


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


def naive_window(applied: list[list[WindowTrade]], capacity: int) -> tuple[list[WindowTrade], int]:
    """The window recomputed the plain way: append what is not inside, then keep the last.

    Returns the window and how many trades were counted in all.
    """
    window: list[WindowTrade] = []
    counted = 0
    for batch in applied:
        for trade in batch:
            if trade.identity and trade.identity in {t.identity for t in window}:
                continue
            window.append(trade)
            counted += 1
        window = window[-capacity:]
    return window, counted


def random_trades(rng: random.Random, count: int) -> list[WindowTrade]:
    return [
        WindowTrade(
            identity=f"4:{n}:{1_000 + n}" if rng.random() < 0.9 else "",
            size=rng.choice([1, 5, 100, 100, 250, 10_000]),
            timestamp_ms=1_772_000_000_000 + n * rng.randint(0, 3),
            price=round(rng.uniform(1, 500), 4),
            exchange=rng.randint(1, 20),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("seed", range(4))
async def test_trade_windows_equal_the_memory_backend_and_a_recomputation(
    redis: Redis, seed: int
) -> None:
    rng = random.Random(seed)
    capacity = rng.choice([1, 7, 50])
    trades = random_trades(rng, 300)
    deliveries = trades + rng.sample(trades, 60)  # redeliveries, to any replica, any time
    rng.shuffle(deliveries)
    batches: list[list[WindowTrade]] = []
    while deliveries:
        size = rng.randint(1, 40)
        batches.append(deliveries[:size])
        deliveries = deliveries[size:]
    memory = MemoryState()
    state = RedisState(redis)
    for batch in batches:
        op = AppendTrades("AAA", tuple(batch), capacity, 60)
        memory.apply_now([op])
        await state.apply([op, AppendTrades("BBB", (), capacity, 60)])
    [[redis_row]] = await state.top([WindowStatsRead(10)])
    [memory_row] = memory.answer_now(WindowStatsRead(10))
    assert redis_row == memory_row
    figures = decode_window_stats(redis_row.payload)
    window, counted = naive_window(batches, capacity)
    assert figures.count == len(window)
    assert figures.total_volume == sum(t.size for t in window)
    assert figures.max_size == max(t.size for t in window)
    assert figures.first_timestamp_ms == window[0].timestamp_ms
    assert figures.last_timestamp_ms == window[-1].timestamp_ms
    assert figures.seq == max(t.timestamp_ms for t in batches[0]) * 1000 + counted
    assert figures.latest_timestamp_ms == max(t.timestamp_ms for b in batches for t in b)
    # The changed-set was consumed: nothing to report until the next append.
    assert await state.top([WindowStatsRead(10)]) == [[]]
    assert await redis.ttl(KEY_TT_WINDOW.name(symbol="AAA")) > 0
    assert await redis.scard(KEY_TT_IDS.name(symbol="AAA")) == len(
        {t.identity for t in window if t.identity}
    )


async def test_a_retried_flush_counts_a_trade_without_an_id_once_by_its_sequence(
    redis: Redis,
) -> None:
    # The wire requires `i` but not that it be non-empty: the analyzer's identity falls back
    # to the sequence number, and the window script treats it as any other identity.
    stamp = 1_764_000_000_000
    analyzer = TopTradesAnalyzer(window_trades=10)
    analyzer.apply(
        [
            Trade(
                symbol="AAA", exchange=4, trade_id="", price=2.0, size=s, timestamp_ms=t, sequence=q
            )
            for s, t, q in ((100, stamp, 1), (200, stamp, 2), (100, stamp, 1))
        ],
        0,
    )
    ops = [op for op in analyzer.collect(stamp * 1_000_000).state if isinstance(op, AppendTrades)]
    state = RedisState(redis)
    await state.apply(ops)
    await state.apply(ops)  # the same flush again: a retry after a lost reply
    [[row]] = await state.top([WindowStatsRead(10)])
    figures = decode_window_stats(row.payload)
    assert (figures.count, figures.total_volume) == (2, 300)
    assert await redis.smembers(KEY_TT_IDS.name(symbol="AAA")) == {
        f"q1:{stamp}".encode(),
        f"q2:{stamp}".encode(),
    }


@pytest.mark.parametrize("seed", range(3))
async def test_capped_rankings_keep_the_global_top_of_every_replicas_offers(
    redis: Redis, seed: int
) -> None:
    rng = random.Random(seed)
    keys = ("mdp:t:top:1", "mdp:t:top:2", "mdp:t:top:3")
    offers = [
        (rng.choice(keys), f"m{rng.randint(0, 80):02d}".encode(), float(rng.randint(0, 30)))
        for _ in range(200)
    ]
    memory = MemoryState()
    state = RedisState(redis)
    for start in range(0, len(offers), 25):
        chunk = offers[start : start + 25]
        ops = [KeepTop(key, tuple((m, s) for k, m, s in chunk if k == key), 5, 60) for key in keys]
        memory.apply_now(ops)
        await state.apply(ops)
    read = UnionTopRead(keys, 8)
    [from_redis] = await state.top([read])
    assert from_redis == memory.answer_now(read)
    # The plain answer: each set's top 5 by (score, member), then the union's top 8.
    best: dict[bytes, float] = {}
    for key in keys:
        final = {member: score for k, member, score in offers if k == key}
        top5 = sorted(final.items(), key=lambda i: (i[1], i[0]), reverse=True)[:5]
        for member, score in top5:
            best[member] = max(score, best.get(member, score))
    expected = sorted(best.items(), key=lambda i: (i[1], i[0]), reverse=True)[:8]
    assert [(r.payload, r.score) for r in from_redis] == expected
    assert await redis.exists(KEY_TT_UNION.name()) == 0


async def test_rows_reads_return_the_merged_rows_with_their_versions(redis: Redis) -> None:
    ops = [
        PutNewer("mdp:t:h:rows", "mdp:t:h:versions", member, version, payload, (), (), 60)
        for member, version, payload in [
            ("BBB", 5, b'{"halted":true}'),
            ("AAA", 9, b'{"halted":false}'),
            ("BBB", 3, b'{"halted":false}'),  # older: loses
        ]
    ]
    memory = MemoryState()
    memory.apply_now(ops)
    state = RedisState(redis)
    await state.apply(ops)
    read = RowsRead("mdp:t:h:rows", "mdp:t:h:versions")
    [answer] = await state.top([read])
    assert answer == memory.answer_now(read)
    assert [(row.member, row.score, row.payload) for row in answer] == [
        ("AAA", 9.0, b'{"halted":false}'),
        ("BBB", 5.0, b'{"halted":true}'),
    ]


async def test_out_of_range_trades_are_skipped_alike_and_nothing_breaks(redis: Redis) -> None:
    good = WindowTrade("4:1:1000", 100, 1_772_000_000_000, 10.0, 4)
    bad = [
        WindowTrade("4:2:1000", 10**17, 1_772_000_000_001, 10.0, 4),  # size beyond the bound
        WindowTrade("4:3:1000", 5, 1_772_000_000_000_000_000, 10.0, 4),  # ns, not ms
        WindowTrade("4:4:1000", -1, 1_772_000_000_002, 10.0, 4),
    ]
    ops = [
        AppendTrades("AAA", (bad[0], good, *bad[1:]), 0, 60),  # capacity 0 counts as 1
        AppendTrades("BBB", (good,), 10, 60),
    ]
    memory = MemoryState()
    memory.apply_now(ops)
    state = RedisState(redis)
    await state.apply(ops)
    [from_redis] = await state.top([WindowStatsRead(10)])
    assert from_redis == memory.answer_now(WindowStatsRead(10))
    figures = {row.member: decode_window_stats(row.payload) for row in from_redis}
    assert figures["AAA"].count == 1
    assert figures["AAA"].total_volume == 100
    assert figures["AAA"].seq == 1_772_000_000_000 * 1000 + 1
    assert figures["BBB"].count == 1


async def test_one_corrupt_window_does_not_hide_the_others(redis: Redis) -> None:
    state = RedisState(redis)
    good = WindowTrade("4:1:1000", 100, 1_772_000_000_000, 10.0, 4)
    await state.apply([AppendTrades(s, (good,), 10, 60) for s in ("AAA", "BBB")])
    await redis.set(KEY_TT_STATS.name(symbol="AAA"), b"\xc1 not msgpack")  # not the script's
    [answer] = await state.top([WindowStatsRead(10)])
    assert [row.member for row in answer] == ["BBB"]


async def test_window_ttls_are_refreshed_once_an_eighth_has_passed(redis: Redis) -> None:
    clock = ManualClock(1_772_000_000 * 10**9)
    state = RedisState(redis, clock=clock)
    keys = [KEY_TT_WINDOW.name(symbol="AAA"), KEY_TT_IDS.name(symbol="AAA")]

    async def append(n: int) -> None:
        trade = WindowTrade(f"4:{n}:1", 100, 1_772_000_000_000 + n, 10.0, 4)
        await state.apply([AppendTrades("AAA", (trade,), 10, 800)])

    async def ttls() -> list[int]:
        return [await redis.ttl(key) for key in keys]

    await append(1)
    assert all(700 < ttl <= 800 for ttl in await ttls())
    for key in keys:
        await redis.expire(key, 50)
    clock.advance(99.0)  # less than 800 / 8: the TTLs are left alone
    await append(2)
    assert all(ttl <= 50 for ttl in await ttls())
    clock.advance(1.0)  # now an eighth has passed
    await append(3)
    assert all(700 < ttl <= 800 for ttl in await ttls())
