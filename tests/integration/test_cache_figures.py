"""Rows whose figures merge as a lattice, on the real Redis (``MERGE_FIGURES_LUA``).

Two things are pinned here:

* the Lua script and its Python twin (``MemoryState``) take the same decisions, offer by offer:
  stored rows, versions, joined figures, board scores, rows to publish and refusals;
* leaderboard replicas that each see part of a symbol's bars, in any order and with duplicates,
  end with rows in Redis whose session figures equal a plain recomputation from all the bars
  (the recomputation below imports nothing from the analyzers).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from datetime import date
from typing import Any, cast

import msgspec
import pytest
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_cache import lattice
from mdp_cache.keys import KEY_LB_ROWS
from mdp_cache.ops import PutMerged, StateOp, WindowStatsRead
from mdp_cache.state import RedisState
from mdp_core.events import SecondAggregate
from mdp_testing.conformance import at_ms

DAY = date(2026, 3, 4)  # a Wednesday: pre-market from 04:00, regular 09:30-16:00 ET


def random_offer(rng: random.Random, ties: tuple[str, ...] = ()) -> PutMerged:
    member = rng.choice("ABC")
    version = rng.randint(0, 4)
    terms: dict[str, lattice.Term] = {}
    for name in rng.sample(["h", "l", "f"], rng.randint(0, 3)):
        op = lattice.MAX if name == "h" else lattice.MIN
        terms[name] = (op, repr(rng.choice([1.0, 2.5, 3.0])), str(rng.randint(0, 3)))
    figures = lattice.render(terms)
    av = rng.choice(["1", "2", "2.5", '"2"'])  # ties: a number, or a string deciding nothing
    payload = f'{{"m":"{member}","v":{version},"f":"{figures}","av":{av}}}'.encode()
    return PutMerged(
        rows_key="mdp:t:rows",
        versions_key="mdp:t:versions",
        figures_key="mdp:t:figures",
        member=member,
        version=version,
        payload=payload,
        figures=figures,
        score_keys=("mdp:t:board",),
        scores=(float(version) if rng.random() < 0.8 else None,),
        ttl=60,
        publish=f"quote:{member}" if rng.random() < 0.9 else "",
        epoch=7,
        tie_fields=ties,
    )


@pytest.mark.parametrize("seed", range(6))
async def test_the_lua_merge_decides_as_the_memory_twin(redis: Redis, seed: int) -> None:
    rng = random.Random(seed)
    memory, state = MemoryState(), RedisState(redis)
    ties = ("av",) if seed % 2 else ()
    for _ in range(40):
        offers = [random_offer(rng, ties) for _ in range(rng.randint(1, 8))]
        expected = await memory.apply(offers)
        got = await state.apply(offers)
        assert got == expected
    assert await redis.hgetall("mdp:t:rows") == {
        k.encode(): v for k, v in memory.rows["mdp:t:rows"].items()
    }
    stored = cast("dict[bytes, bytes]", await redis.hgetall("mdp:t:figures"))
    twin = memory.figures["mdp:t:figures"]
    assert {k.decode(): v.decode() for k, v in stored.items()} == {
        member: f"{seq}|{int(current)}|{text}" for member, (seq, current, text) in twin.items()
    }
    ranked = cast(
        "list[tuple[bytes, float]]", await redis.zrange("mdp:t:board", 0, -1, withscores=True)
    )
    assert {m.decode(): score for m, score in ranked} == memory.boards.get("mdp:t:board", {})


async def test_a_row_missing_a_known_figure_is_refused_with_what_mdc_holds(redis: Redis) -> None:
    state = RedisState(redis)

    def offer(version: int, figures: str) -> PutMerged:
        return PutMerged(
            "mdp:t:rows", "mdp:t:versions", "mdp:t:figures", "AAA", version,
            f'{{"v":{version},"f":"{figures}"}}'.encode(), figures, (), (), 60, "quote:AAA", 3,
        )  # fmt: skip

    first = await state.apply([offer(5, "h+10.0@1")])
    assert [(a.name, a.version) for a in first.accepted] == [("quote:AAA", (3 << 32) + 1)]
    # Newer, but it never saw the 10.0 high: refused, told the join and the stored row.
    second = await state.apply([offer(6, "h+9.0@2")])
    assert second.accepted == []
    (refusal,) = second.refused
    assert refusal.figures == "h+10.0@1"
    assert refusal.payload == b'{"v":5,"f":"h+10.0@1"}'
    assert refusal.version == 5
    # An older row with a new figure: refused (older), and the stored row now lags the join.
    third = await state.apply([offer(4, "h+11.0@0")])
    assert third.accepted == []
    assert [(r.figures, r.version) for r in third.refused] == [("h+11.0@0", 5)]
    # The writer that folded everything in offers the newest bar with every figure: stored,
    # published with the next sequence, although its version equals the stored one.
    fourth = await state.apply([offer(5, "h+11.0@0")])
    assert [(a.version, a.payload) for a in fourth.accepted] == [
        ((3 << 32) + 2, b'{"v":5,"f":"h+11.0@0"}')
    ]
    assert await redis.hget("mdp:t:figures", "AAA") == b"2|1|h+11.0@0"


@pytest.mark.parametrize("backend", ["lua", "twin"])
async def test_the_stored_row_offered_again_is_published_again_and_nothing_else(
    redis: Redis, backend: str
) -> None:
    # A flush applied again after its connection was lost midway offers what it stored.
    state = RedisState(redis) if backend == "lua" else MemoryState()

    def offer(payload: bytes, figures: str = "h+10.0@1", publish: str = "quote:AAA") -> PutMerged:
        return PutMerged(
            "mdp:t:rows", "mdp:t:versions", "mdp:t:figures", "AAA", 5, payload, figures,
            ("mdp:t:board",), (1.0,), 60, publish, 3,
        )  # fmt: skip

    first = await state.apply([offer(b"row")])
    assert [(a.name, a.version, a.payload) for a in first.accepted] == [
        ("quote:AAA", (3 << 32) + 1, b"row")
    ]
    again = await state.apply([offer(b"row")])
    assert (again.accepted, again.refused) == (first.accepted, [])

    # Another payload of the version loses to the stored one by digest: not published.
    def digest(payload: bytes) -> str:
        return hashlib.sha1(payload, usedforsecurity=False).hexdigest()

    loser = next(p for p in (b"row-a", b"row-b", b"row-c") if digest(p) < digest(b"row"))
    assert (await state.apply([offer(loser)])).accepted == []
    # Nothing to publish under: nothing reported. Other figures: not the stored row.
    assert (await state.apply([offer(b"row", publish="")])).accepted == []
    assert (await state.apply([offer(b"row", figures="h+9.0@1")])).accepted == []
    assert (await state.apply([offer(b"row")])).accepted == first.accepted  # sequence unmoved


TIES = ("av", "v", "c")


def tie_offer(av: object, v: object, c: object, tag: str = "") -> PutMerged:
    """A row of version 5 and no figures whose payload carries the tie fields."""
    payload = msgspec.json.encode({"av": av, "v": v, "c": c, "tag": tag})
    return PutMerged(
        "mdp:t:rows", "mdp:t:versions", "mdp:t:figures", "AAA", 5, payload, "", (), (), 60,
        "quote:AAA", 3, tie_fields=TIES,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        # The greater accumulated volume wins, whichever came first (two bars ending together).
        (tie_offer(100, 5, 1.5), tie_offer(90, 9, 9.5), 0),
        (tie_offer(90, 9, 9.5), tie_offer(100, 5, 1.5), 1),
        # Equal accumulated volume: the window volume, then the close.
        (tie_offer(100, 5, 1.5), tie_offer(100, 6, 1.0), 1),
        (tie_offer(100, 6, 1.25), tie_offer(100, 6, 1.0), 0),
        (tie_offer(100, 6, 1.0), tie_offer(100, 6, 1.25), 1),
        # Fields that are not numbers decide nothing: the next field does.
        (tie_offer("100", 5, 1.0), tie_offer(90, 6, 1.0), 1),
        (tie_offer(True, 6, 1.0), tie_offer(90, 5, 1.0), 0),
    ],
)
async def test_rows_of_one_version_are_ordered_by_their_tie_fields(
    redis: Redis, first: PutMerged, second: PutMerged, kept: int
) -> None:
    memory, state = MemoryState(), RedisState(redis)
    for offers in ([first], [second]):
        assert await state.apply(offers) == await memory.apply(offers)
    assert await redis.hget("mdp:t:rows", "AAA") == (first, second)[kept].payload
    assert memory.rows["mdp:t:rows"]["AAA"] == (first, second)[kept].payload


async def test_rows_undecided_by_their_tie_fields_fall_back_to_the_digest(redis: Redis) -> None:
    """Equal fields, or a payload that is not a JSON object: the greater SHA-1 wins, as before."""
    for offers in (
        [tie_offer(1, 1, 1.0, "x"), tie_offer(1, 1, 1.0, "y")],
        [tie_offer(1, 1, 1.0, "x"), msgspec.structs.replace(tie_offer(2, 1, 1.0), payload=b"[1]")],
    ):
        await redis.delete("mdp:t:rows", "mdp:t:versions", "mdp:t:figures")
        memory, state = MemoryState(), RedisState(redis)
        for offer in offers:
            assert await state.apply([offer]) == await memory.apply([offer])
        digest = max(offers, key=lambda o: hashlib.sha1(o.payload).hexdigest())  # noqa: S324 # the scripts' tie order, not security
        assert await redis.hget("mdp:t:rows", "AAA") == digest.payload


@pytest.mark.parametrize("seed", range(6))
async def test_a_writer_naming_what_mdc_holds_gets_the_decisions_of_a_full_join(
    redis: Redis, seed: int
) -> None:
    """Writers that pass ``base`` as the leaderboard does: the Lua shortcut changes nothing.

    Each writer folds its own observations into figures that only grow; its base is what it
    offered last, reset when it is refused for figures it lacked (and it folds those in). The
    memory twin ignores ``base``, so any decision the shortcut got wrong (a join skipped while
    MDC holds figures this writer never saw) would differ from it.
    """
    rng = random.Random(seed)
    memory, state = MemoryState(), RedisState(redis)
    figures: list[dict[str, str]] = [{}, {}, {}]
    bases: list[dict[str, str]] = [{}, {}, {}]
    version = 0
    for _ in range(80):
        writer = rng.randrange(3)
        member = rng.choice("AB")
        name = rng.choice(["h", "l"])
        op = lattice.MAX if name == "h" else lattice.MIN
        price = repr(rng.choice([1.0, 2.0, 3.0]))
        seen = lattice.render({name: (op, price, str(rng.randint(0, 3)))})
        mine = figures[writer][member] = lattice.join(figures[writer].get(member, ""), seen)
        version += rng.randint(0, 1)
        offer = PutMerged(
            "mdp:t:rows", "mdp:t:versions", "mdp:t:figures", member, version,
            f'{{"v":{version},"f":"{mine}"}}'.encode(), mine, (), (), 60, f"quote:{member}", 1,
            base=bases[writer].get(member, ""),
        )  # fmt: skip
        bases[writer][member] = mine
        expected = await memory.apply([offer])
        got = await state.apply([offer])
        assert got == expected
        for refusal in got.refused:
            figures[writer][member] = lattice.join(mine, refusal.figures)
            bases[writer][member] = ""
    assert await redis.hgetall("mdp:t:figures") == {
        member.encode(): f"{seq}|{int(current)}|{joined}".encode()
        for member, (seq, current, joined) in memory.figures["mdp:t:figures"].items()
    }


# --- replicas of the leaderboard on the real script -----------------------------------------


def bars(rng: random.Random) -> list[SecondAggregate]:
    """A day of random one-second bars for two symbols across pre-market, regular, after-hours."""
    out: list[SecondAggregate] = []
    for symbol in ("AAA", "BBB"):
        for _ in range(rng.randint(1, 25)):
            hour = rng.choice([4, 8, 9, 9, 10, 15, 16, 19])
            start_ms = at_ms(DAY, hour, rng.randint(0, 59), rng.randint(0, 59))
            low = round(rng.uniform(5, 10), 2)
            high = round(low + rng.choice([0.0, 0.01, 0.5, 2.0]), 2)
            out.append(
                SecondAggregate(
                    symbol=symbol, volume=100, accumulated_volume=rng.randint(0, 10**6),
                    vwap=low, open=rng.choice([low, high]), high=high, low=low,
                    close=rng.choice([low, high]), start_ms=start_ms, end_ms=start_ms + 1_000,
                )
            )  # fmt: skip
    return out


def session_of(start_ms: int) -> str | None:
    """The session a bar starting then belongs to (a half-open interval each, ET)."""
    bounds = [
        ("pre_market", at_ms(DAY, 4, 0), at_ms(DAY, 9, 30)),
        ("regular", at_ms(DAY, 9, 30), at_ms(DAY, 16, 0)),
        ("after_hours", at_ms(DAY, 16, 0), at_ms(DAY, 20, 0)),
    ]
    return next((name for name, lo, hi in bounds if lo <= start_ms < hi), None)


def recomputed(events: list[SecondAggregate]) -> dict[str, dict[str, Any]]:
    """Every symbol's session figures from all bars (order-free; times are bar ends)."""
    out: dict[str, dict[str, Any]] = {}
    for bar in events:
        figures = out.setdefault(bar.symbol, {})
        session = session_of(bar.start_ms)
        if session is None:
            continue
        old = figures.get(session)
        if old is None:
            old = figures[session] = {
                "first_ms": bar.end_ms, "high": bar.high, "high_ms": bar.end_ms,
                "low": bar.low, "low_ms": bar.end_ms,
            }  # fmt: skip
        old["first_ms"] = min(old["first_ms"], bar.end_ms)
        # The extreme, and the earliest bar that reached it.
        if (bar.high, -bar.end_ms) > (old["high"], -old["high_ms"]):
            old["high"], old["high_ms"] = bar.high, bar.end_ms
        old["low"], old["low_ms"] = min((old["low"], old["low_ms"]), (bar.low, bar.end_ms))
    return out


@pytest.mark.parametrize("seed", range(4))
async def test_replicas_seeing_parts_of_the_feed_store_every_extreme(
    redis: Redis, seed: int
) -> None:
    rng = random.Random(seed)
    events = bars(rng)
    messages = [[event] for event in events] + [[rng.choice(events)] for _ in range(10)]
    rng.shuffle(messages)
    replicas = [LeaderboardAnalyzer() for _ in range(rng.randint(2, 3))]
    state = RedisState(redis)
    now_ns = at_ms(DAY, 19, 59) * 1_000_000

    async def flush(replica: LeaderboardAnalyzer) -> int:
        output = replica.collect(now_ns)
        applied = await state.apply(cast("list[StateOp]", list(output.state)))
        replica.refused(applied.refused)
        return len(output.state)

    for message in messages:
        replica = rng.choice(replicas)
        replica.apply(message, 0)
        if rng.random() < 0.4:
            await flush(replica)
    for _ in range(10):  # drain: refusals make replicas offer their rows again
        if not sum([await flush(replica) for replica in replicas]):
            break
    else:
        pytest.fail("the replicas did not settle")
    stored = await redis.hgetall(KEY_LB_ROWS.name(day=DAY.isoformat()))
    expected = recomputed(events)
    for symbol, figures in expected.items():
        row = msgspec.json.decode(stored[symbol.encode()])
        for session in ("pre_market", "regular", "after_hours"):
            assert row[session] == figures.get(session), (symbol, session)
        latest = max((e for e in events if e.symbol == symbol), key=lambda e: e.end_ms)
        assert row["end_ms"] == latest.end_ms


async def test_scripts_become_known_all_at_once(redis: Redis) -> None:
    """A flush and a composition share the client: while the scripts load, none is known yet
    (a write that saw one SHA set would assume every script loaded)."""
    state = RedisState(redis)
    real = redis.script_load
    seen: list[tuple[str | None, ...]] = []

    async def script_load(script: str) -> Any:
        seen.append((state._sha, state._figures_sha, state._windows_sha, state._read_windows_sha))
        return await real(script)

    redis.script_load = script_load  # type: ignore[method-assign,assignment]
    await state.load_scripts()
    assert seen == [(None, None, None, None)] * 4
    applied, answers = await asyncio.gather(
        state.apply([random_offer(random.Random(3))]), state.top([WindowStatsRead(10)])
    )
    assert applied.refused == []
    assert answers == [[]]


async def test_friday_boards_are_still_read_on_the_tuesday_after_a_holiday_monday(
    redis: Redis,
) -> None:
    """The keys of a day live until the next trading day begins: the boards never go empty."""
    from mdp_testing.conformance import aggregate

    friday = date(2026, 2, 13)  # Presidents' Day is Monday 2026-02-16
    written_ms = at_ms(friday, 19, 59)
    analyzer = LeaderboardAnalyzer()
    analyzer.apply([aggregate("AAA", written_ms, close=10.0)], written_ms * 1_000_000)
    state = RedisState(redis)
    await state.apply(analyzer.collect(written_ms * 1_000_000).state)
    last_read = at_ms(date(2026, 2, 17), 4, 0) - 1  # Tuesday 03:59:59.999
    reads = analyzer.reads(last_read * 1_000_000)
    answers = await state.top(reads)
    assert [row.member for row in answers[0]] == ["AAA"]
    keys = [cast("Any", read).board_key for read in reads]
    assert all(friday.isoformat() in key for key in keys)
    lives = [await redis.pttl(key) for key in keys]
    assert lives[0] > 0  # the volume board (the others need the previous close)
    assert all(written_ms + ttl > last_read for ttl in lives if ttl != -2)


@pytest.mark.parametrize("quiet_ms", [60_000, 130_000, 3_600_000])
async def test_a_resume_long_after_the_last_bar_clears_the_stored_halt(
    redis: Redis, quiet_ms: int
) -> None:
    """Past 127 s without a bar, the halt's row and its resume's used to tie in MDC."""
    from mdp_testing.conformance import aggregate, luld

    state, analyzer = RedisState(redis), LeaderboardAnalyzer()
    rows_key = KEY_LB_ROWS.name(day=DAY.isoformat())

    async def flush(now_ms: int) -> dict[str, Any]:
        applied = await state.apply(analyzer.collect(now_ms * 1_000_000).state)
        analyzer.refused(applied.refused)
        stored = await redis.hget(rows_key, "QUIET")
        assert isinstance(stored, bytes)
        return cast("dict[str, Any]", msgspec.json.decode(stored))

    end = at_ms(DAY, 11, 0)
    analyzer.apply([aggregate("QUIET", end, close=10.0)], end * 1_000_000)
    assert (await flush(end))["halted"] is False
    halt_at = end + quiet_ms
    analyzer.apply([luld("QUIET", halt_at, 17)], halt_at * 1_000_000)
    assert (await flush(halt_at))["halted"] is True
    analyzer.apply([luld("QUIET", halt_at + 300_000, 18)], (halt_at + 300_000) * 1_000_000)
    assert (await flush(halt_at + 300_000))["halted"] is False
