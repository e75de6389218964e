"""MDC and WDC on a real Redis Cluster (3 masters, 1 replica each) started by the test.

The same operations applied to the cluster and to a single Redis give the same state and the
same reads: the catalogue's hash tags keep every script and transaction inside one slot, and the
cluster client spreads the rest. Widget pub/sub reaches exact subscribers through sharded
pub/sub (``SSUBSCRIBE``) and pattern subscribers through ``PUBLISH``. Losing a master mid-stream
costs the flushes sent while its slots had no master: they fail (counted), the replica is
promoted and writing resumes; the writes lost are at most those counted plus the few the
master acknowledged before its replica had them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import cast

import pytest
import pytest_asyncio
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from mdp_analyzers.typing import WidgetWrite
from mdp_cache.client import close_redis, create_redis, is_cluster, mget, slot_of
from mdp_cache.cluster_pool import WaitingCluster
from mdp_cache.keys import (
    FEED_ALERTS_HOD,
    FEED_QUOTE,
    FEED_SCANNER_TOP_VOLUME,
    KEY_LB_BOARD,
    KEY_LB_ROWS,
    KEY_LB_VERSIONS,
    KEY_TT_BUCKET,
    KEY_WIDGET_VERSION,
)
from mdp_cache.ops import (
    AppendTrades,
    KeepTop,
    PutNewer,
    Read,
    RowsRead,
    StateOp,
    TopRead,
    UnionTopRead,
    WindowStatsRead,
    WindowTrade,
)
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_testing.redis_cluster import RedisCluster as LoopbackCluster

# One cluster for the module (six processes take a second or two to form one), so its tests
# share the module's event loop.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SYMBOLS = [f"S{n:03d}" for n in range(60)]
DAY = "2026-03-02"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[LoopbackCluster]:
    nodes = LoopbackCluster()
    try:
        await nodes.start()
        yield nodes
    finally:
        await nodes.close()


@pytest_asyncio.fixture(loop_scope="module")
async def on_cluster(cluster: LoopbackCluster) -> AsyncIterator[Redis]:
    client = create_redis(cluster.url())
    await client.flushall()  # the module's private cluster
    yield client
    await close_redis(client)


@pytest_asyncio.fixture(loop_scope="module")
async def single(redis_db_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_db_url)
    yield client
    await close_redis(client)


def state_ops(rng: random.Random, flush: int) -> list[StateOp]:
    """One flush: leaderboard rows, trade windows and top-trade buckets of many symbols."""
    boards = tuple(KEY_LB_BOARD.name(day=DAY, board=b) for b in ("volume", "gap"))
    ops: list[StateOp] = []
    for symbol in rng.sample(SYMBOLS, 25):
        version = flush * 10 + rng.randint(0, 9)
        payload = json.dumps({"s": symbol, "v": version, "x": rng.randint(0, 3)}).encode()
        ops.append(
            PutNewer(
                rows_key=KEY_LB_ROWS.name(day=DAY),
                versions_key=KEY_LB_VERSIONS.name(day=DAY),
                member=symbol,
                version=version,
                payload=payload,
                score_keys=boards,
                scores=(float(version), None if version % 3 == 0 else float(-version)),
                ttl=600,
            )
        )
        trades = tuple(
            WindowTrade(f"{symbol}:{flush}:{n}", rng.randint(1, 500), 1_000 * flush + n, 10.5, 4)
            for n in range(rng.randint(1, 4))
        )
        ops.append(AppendTrades(symbol, trades, 5, 600))
        ops.append(
            KeepTop(KEY_TT_BUCKET.name(second=flush % 4), ((payload, float(version)),), 5, 600)
        )
    return ops


READS: list[Read] = [
    TopRead(KEY_LB_BOARD.name(day=DAY, board="volume"), KEY_LB_ROWS.name(day=DAY), 10),
    TopRead(KEY_LB_BOARD.name(day=DAY, board="gap"), KEY_LB_ROWS.name(day=DAY), 10),
    RowsRead(KEY_LB_ROWS.name(day=DAY), KEY_LB_VERSIONS.name(day=DAY)),
    UnionTopRead(tuple(KEY_TT_BUCKET.name(second=s) for s in range(4)), 7),
    WindowStatsRead(1_000),
]


async def test_the_cluster_client_is_chosen_by_the_url(on_cluster: Redis, single: Redis) -> None:
    # Typed as Redis, a cluster client whose callers wait for a connection.
    assert type(cast("object", on_cluster)) is WaitingCluster
    assert isinstance(cast("object", on_cluster), RedisCluster)
    assert is_cluster(on_cluster)
    assert not is_cluster(single)


async def test_keys_of_one_script_share_a_slot() -> None:
    assert slot_of(KEY_LB_ROWS.name(day=DAY)) == slot_of(KEY_LB_BOARD.name(day=DAY, board="gap"))
    name = FEED_QUOTE.name(symbol="AAPL")
    assert slot_of(KEY_WIDGET_VERSION.name(feed=name)) == slot_of(name)
    # and the per-symbol keys spread: the 60 test symbols' windows use many slots
    from mdp_cache.keys import KEY_TT_WINDOW

    assert len({slot_of(KEY_TT_WINDOW.name(symbol=s)) for s in SYMBOLS}) > 50


@pytest.mark.parametrize("seed", range(2))
async def test_state_on_the_cluster_equals_state_on_one_redis(
    on_cluster: Redis, single: Redis, seed: int
) -> None:
    rng = random.Random(seed)
    flushes = [state_ops(rng, flush) for flush in range(8)]
    clustered, alone = RedisState(on_cluster), RedisState(single)
    for number, ops in enumerate(flushes):
        marks = [f"mdp:seen:test:{seed}:{number}"]
        await clustered.apply(ops, marks=marks)
        await alone.apply(ops, marks=marks)
        # redelivery of the previous flush changes nothing on either
        if number:
            await clustered.apply(flushes[number - 1])
            await alone.apply(flushes[number - 1])
    expected = await alone.top(READS)
    assert await clustered.top(READS) == expected
    assert all(expected[n] for n in (0, 2, 3, 4))  # nothing vacuous
    marks = [f"mdp:seen:test:{seed}:{n}" for n in range(9)]
    assert await clustered.seen(marks) == await alone.seen(marks) == set(marks[:8])


def quote(symbol: str, version: int) -> WidgetWrite:
    payload = json.dumps({"symbol": symbol, "v": version}).encode()
    return WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol=symbol), payload, version=version)


async def test_a_burst_of_commands_and_pipelines_waits_for_connections(
    cluster: LoopbackCluster,
) -> None:
    """Thousands of concurrent commands on a pool of 4 per node: they queue, none fails.

    redis-py's cluster client alone raises ``MaxConnectionsError`` (and breaks commands in
    flight) when a node's pool runs out; a processor looking up thousands of symbols at the
    open does exactly this.
    """
    client = create_redis(cluster.url(), max_connections=4)
    try:

        async def command(n: int) -> object:
            return await client.eval("return redis.call('INCR', KEYS[1])", 1, f"burst:{{{n % 97}}}")

        async def pipeline(n: int) -> object:
            pipe = client.pipeline(transaction=False)
            for k in range(5):
                pipe.incr(f"burst:{{{(n + k) % 97}}}")
            return await pipe.execute()

        results = await asyncio.gather(
            *(command(n) for n in range(2_000)),
            *(pipeline(n) for n in range(200)),
            return_exceptions=True,
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        counts = await mget(client, [f"burst:{{{n}}}" for n in range(97)])
        assert sum(int(c or 0) for c in counts) == 2_000 + 200 * 5
    finally:
        await close_redis(client)


async def test_widget_writes_on_the_cluster_keep_the_newest(on_cluster: Redis) -> None:
    writer = WidgetWriter(on_cluster)
    rng = random.Random(7)
    writes = [quote(s, rng.randint(1, 50)) for s in SYMBOLS for _ in range(3)]
    rng.shuffle(writes)
    for start in range(0, len(writes), 40):
        await writer.write(writes[start : start + 40])
    newest: dict[str, tuple[int, bytes]] = {}
    for write in writes:
        if write.version is not None and write.version >= newest.get(write.name, (0, b""))[0]:
            newest[write.name] = (write.version, write.payload)
    names = sorted(newest)
    stored = await mget(on_cluster, names)
    versions = await mget(on_cluster, [KEY_WIDGET_VERSION.name(feed=n) for n in names])
    for name, payload, version in zip(names, stored, versions, strict=True):
        assert payload is not None
        assert version is not None
        assert int(version) == newest[name][0], name
        assert json.loads(payload)["v"] == newest[name][0]


async def test_sharded_and_pattern_subscribers_receive_the_writes(on_cluster: Redis) -> None:
    assert is_cluster(on_cluster)
    cluster_client = cast("RedisCluster", on_cluster)
    exact_names = [FEED_QUOTE.name(symbol=s) for s in SYMBOLS[:12]]
    sharded = cluster_client.pubsub()
    await sharded.ssubscribe(*exact_names)
    patterns = cluster_client.pubsub()
    await patterns.psubscribe(FEED_QUOTE.pattern)
    board = cluster_client.pubsub()
    await board.ssubscribe(FEED_SCANNER_TOP_VOLUME.name(), FEED_ALERTS_HOD.name())
    try:
        await _drain_confirmations(sharded, patterns, board)
        writer = WidgetWriter(on_cluster)
        writes = [quote(s, 10**6) for s in SYMBOLS]  # newer than any other test's
        doc = WidgetWrite(FEED_SCANNER_TOP_VOLUME, FEED_SCANNER_TOP_VOLUME.name(), b'{"rows":[]}')
        alert = WidgetWrite(FEED_ALERTS_HOD, FEED_ALERTS_HOD.name(), b'{"as_of_ms":5}')
        await writer.write([*writes, doc, alert])  # a value, a versioned value, a list feed
        ours = {w.payload for w in (*writes, doc, alert)}  # no span: sent as they are
        got_sharded = await _collect(sharded.get_sharded_message, len(exact_names), ours)
        got_patterns = await _collect(patterns.get_message, len(SYMBOLS), ours)
        got_board = await _collect(board.get_sharded_message, 2, ours)
    finally:
        for pubsub in (sharded, patterns, board):
            await pubsub.aclose()
    assert sorted(got_sharded) == sorted(exact_names)
    assert sorted(got_patterns) == sorted(w.name for w in writes)
    assert sorted(got_board) == sorted([FEED_SCANNER_TOP_VOLUME.name(), FEED_ALERTS_HOD.name()])
    assert await on_cluster.lrange(FEED_ALERTS_HOD.name(), 0, -1) == [alert.payload]


async def _drain_confirmations(*pubsubs: object) -> None:
    """Nothing to drain with the redis-py cluster pub/sub: subscribing awaits the reply."""
    del pubsubs


async def _collect(get: object, count: int, payloads: set[bytes]) -> list[str]:
    """Channel names of the next ``count`` data messages carrying one of ``payloads``.

    Others are skipped: the cluster bus carries a ``PUBLISH`` to the other nodes
    asynchronously, so an earlier test's writes can still reach a subscriber made after them.
    """
    names: list[str] = []
    async with asyncio.timeout(20):
        while len(names) < count:
            message = await get(ignore_subscribe_messages=True, timeout=0.1)  # type: ignore[operator]
            if (
                message
                and message["type"] in {"message", "pmessage", "smessage"}
                and message["data"] in payloads
            ):
                names.append(message["channel"].decode())
    return names


def open_connections(client: WaitingCluster) -> int:
    manager = client.nodes_manager
    nodes = [*manager.nodes_cache.values(), *manager.startup_nodes.values()]
    return sum(1 for node in nodes for connection in node._connections if connection.is_connected)


async def test_closing_a_client_a_lost_node_marked_closes_every_connection(
    cluster: LoopbackCluster,
) -> None:
    """A command that met a dropped connection (a master lost) leaves redis-py's client marked
    to read the slot map again until its next command, and redis-py 8.1's ``aclose`` then
    closed nothing: the sockets stayed open until the garbage collector warned."""
    client = cast("object", create_redis(cluster.url()))  # typed as Redis
    assert isinstance(client, WaitingCluster)
    try:
        for n in range(12):  # keys of every master: connections to each
            await client.get(f"close:{n}")
        assert open_connections(client) >= 3
        client._initialize = True  # as a ConnectionError leaves it (redis-py 8.1)
    finally:
        await client.aclose()  # what close_redis calls
    assert open_connections(client) == 0


@pytest.mark.slow
@pytest.mark.restart
@pytest.mark.timeout(300)
async def test_losing_a_master_mid_stream_is_counted_and_recovered() -> None:
    """A master is killed while a writer streams quotes; its replica takes over.

    Every flush that fails is counted; after the failover every flush succeeds again and
    the stored documents are the newest written, except at most the symbols of the failed
    flushes and of the flushes the master acknowledged just before it died.
    """
    cluster = LoopbackCluster()  # its own: this test kills a node
    await cluster.start()
    on_cluster = create_redis(cluster.url())
    try:
        await _stream_through_a_failover(cluster, on_cluster)
    finally:
        await close_redis(on_cluster)
        await cluster.close()


async def _stream_through_a_failover(cluster: LoopbackCluster, on_cluster: Redis) -> None:
    writer = WidgetWriter(on_cluster)
    failed: list[int] = []
    acknowledged: dict[str, int] = {}
    victim = (await cluster.masters())[0]
    rounds = 120
    kill_at = 20
    for version in range(1, rounds + 1):
        if version == kill_at:
            await cluster.kill(victim)
        batch = [quote(s, version) for s in SYMBOLS]
        try:
            async with asyncio.timeout(3):  # a flush stuck on the dead master counts as failed
                await writer.write(batch)
        except (RedisError, OSError, TimeoutError):
            failed.append(version)
            await asyncio.sleep(0.1)  # a writer's retry pause; the failover runs meanwhile
            continue
        acknowledged.update({w.name: version for w in batch})
    await cluster.wait_ok([p for p in cluster.ports if p != victim])
    assert failed, "the kill did not interrupt the stream"
    assert failed[-1] < rounds - 10, "writing did not resume after the failover"
    assert all(kill_at <= v for v in failed)
    names = sorted(acknowledged)
    stored = await mget(on_cluster, names)
    stale = [
        n for n, p in zip(names, stored, strict=True) if json.loads(p or b"{}").get("v") != rounds
    ]
    assert stale == []  # the last flushes landed everywhere once the replica was promoted
