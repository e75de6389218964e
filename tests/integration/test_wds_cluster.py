"""The WDS on a real Redis Cluster (3 masters, 1 replica each): sharded pub/sub end to end.

Exact-name feeds reach a client through ``SSUBSCRIBE`` on the master owning each name's slot
(seen on the Redis side with ``PUBSUB SHARDNUMSUB``), pattern feeds through ``PSUBSCRIBE`` on
one node, and each write exactly once per subscription. When a master dies, the WDS follows
the promoted replica and delivery resumes. The cluster bus delivers ``PUBLISH`` asynchronously,
so every check filters messages by a payload marker of its own instead of assuming silence.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from mdp_analyzers.typing import WidgetWrite
from mdp_cache.client import close_redis, create_redis, slot_of
from mdp_cache.keys import FEED_ALERTS_HOD, FEED_MINUTE_BARS, FEED_QUOTE
from mdp_cache.widgets import WidgetWriter
from mdp_core.settings import Secret, load
from mdp_core.token import issue_token
from mdp_testing.redis_cluster import RedisCluster as LoopbackCluster
from mdp_wds import WdsSettings, WidgetServer
from mdp_wds.link import Endpoint, request
from mdp_wds.shards import Address, SlotMap, parse_cluster_slots

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SECRET = "cluster-secret"
ORIGIN = Origin("http://dashboard.test")
WAIT = 20.0
SYMBOLS = [f"C{n:03d}" for n in range(40)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[LoopbackCluster]:
    nodes = LoopbackCluster()
    try:
        await nodes.start()
        yield nodes
    finally:
        await nodes.close()


async def start_server(url: str) -> WidgetServer:
    server = WidgetServer(
        load(
            WdsSettings,
            environ={},
            host="127.0.0.1",
            port=0,
            wdc_redis_url=url,
            token_secret=Secret(SECRET),
            allowed_origins=(ORIGIN,),
            close_timeout_seconds=0.5,
            redis_backoff_initial_seconds=0.05,
            redis_backoff_max_seconds=0.5,
        )
    )
    await server.start()
    assert await server.hub.wait_connected(WAIT)
    return server


async def open_client(server: WidgetServer, *feeds: str) -> ClientConnection:
    ws = await connect(server.url, origin=ORIGIN)
    await ws.send(
        json.dumps({"op": "auth", "token": issue_token(SECRET, "t", ["*"], 300, time.time())})
    )
    assert (await recv(ws))["op"] == "auth_ok"
    await ws.send(json.dumps({"op": "subscribe", "id": 1, "feeds": list(feeds)}))
    # An exact feed's snapshot comes once its subscription is made (a pattern's may be many).
    waiting = {feed for feed in feeds if "*" not in feed}
    async with asyncio.timeout(WAIT):
        while waiting:
            message = await recv(ws)
            if message["op"] == "snapshot":
                waiting.discard(message["feed"])
    return ws


async def recv(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), within)
    decoded: dict[str, Any] = json.loads(message)
    return decoded


async def updates_marked(
    ws: ClientConnection, marker: str, count: int, settle: float = 0.5
) -> Counter[str]:
    """Feeds of the updates carrying ``marker``: the first ``count``, then any for ``settle`` s."""
    got: Counter[str] = Counter()
    try:
        async with asyncio.timeout(WAIT):
            while got.total() < count:
                message = await recv(ws)
                if message["op"] == "update" and marker in json.dumps(message["data"]):
                    got[message["feed"]] += 1
    except TimeoutError:  # say which feeds arrived: the ones missing locate the loss
        raise AssertionError(f"{got.total()} of {count} updates in {WAIT} s: {dict(got)}") from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while (left := deadline - loop.time()) > 0:
        try:
            message = await recv(ws, left)
        except TimeoutError:
            break
        if message["op"] == "update" and marker in json.dumps(message["data"]):
            got[message["feed"]] += 1  # a duplicate would show here
    return got


async def snapshots_sent(ws: ClientConnection, request_id: int) -> None:
    """Return once the WDS has sent every snapshot it had queued for ``ws`` (a resync's).

    After a gap the WDS re-sends each subscription's snapshot, one feed at a time, holding the
    feed's updates until its own snapshot is read and dropping those the read supersedes (the
    snapshot carries them). A new subscription's snapshot is read after every one queued before
    it, so its arrival says the resync is over and updates flow again.
    """
    barrier = FEED_QUOTE.name(symbol=f"BARRIER{request_id}")
    await ws.send(json.dumps({"op": "subscribe", "id": request_id, "feeds": [barrier]}))
    async with asyncio.timeout(WAIT):
        while True:
            message = await recv(ws)
            if message["op"] == "snapshot" and message["feed"] == barrier:
                return


async def slot_map(cluster: LoopbackCluster, avoid: int | None = None) -> SlotMap:
    port = next(p for p in cluster.ports if p != avoid)
    return parse_cluster_slots(
        await request(Endpoint("127.0.0.1", port), "CLUSTER", "SLOTS"), "127.0.0.1"
    )


async def shard_subscribers(address: Address, names: list[str]) -> dict[str, int]:
    """``PUBSUB SHARDNUMSUB`` on one node: sharded subscribers of each name there."""
    client = aioredis.Redis(host=address[0], port=address[1])
    try:
        reply = await client.execute_command("PUBSUB", "SHARDNUMSUB", *names)  # type: ignore[no-untyped-call] # redis-py leaves execute_command untyped
    finally:
        await client.aclose()
    if isinstance(reply, dict):  # redis-py may pair the flat reply up
        return {k.decode(): int(v) for k, v in reply.items()}
    flat = cast("list[Any]", reply)
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def names_on_every_master(slots: SlotMap, per_master: int) -> dict[Address, list[str]]:
    chosen: dict[Address, list[str]] = {m: [] for m in set(slots.masters)}
    for symbol in SYMBOLS:
        name = FEED_QUOTE.name(symbol=symbol)
        owner = slots.route(name)
        assert owner is not None
        if len(chosen[owner]) < per_master:
            chosen[owner].append(name)
    assert all(len(names) == per_master for names in chosen.values()), chosen
    return chosen


def quote(symbol: str, marker: str) -> WidgetWrite:
    payload = json.dumps({"symbol": symbol, "marker": marker}).encode()
    return WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol=symbol), payload)


async def test_exact_feeds_of_every_shard_arrive_by_ssubscribe_and_patterns_by_psubscribe(
    cluster: LoopbackCluster,
) -> None:
    slots = await slot_map(cluster)
    exact = [n for names in names_on_every_master(slots, 2).values() for n in names]
    bars = FEED_MINUTE_BARS.name(symbol="C001")  # a series feed: merged by its own script
    alerts = FEED_ALERTS_HOD.name()  # a list feed
    exact += [bars, alerts]
    server = await start_server(cluster.url())
    writer_client = create_redis(cluster.url())
    try:
        exact_ws = await open_client(server, *exact)
        pattern_ws = await open_client(server, FEED_QUOTE.pattern)
        seed = aioredis.Redis(host="127.0.0.1", port=cluster.ports[0])
        try:
            deadline = asyncio.get_running_loop().time() + WAIT
            while await seed.pubsub_numpat() < 1:  # the pattern, on the URL's node
                assert asyncio.get_running_loop().time() < deadline, "no PSUBSCRIBE"
                await asyncio.sleep(0.02)
            plain = await seed.pubsub_numsub(*exact)
            assert all(count == 0 for _, count in plain)  # no plain SUBSCRIBE of exact names
        finally:
            await seed.aclose()
        for name in exact:  # the WDS holds a sharded subscription on the name's master
            owner = slots.route(name)
            assert owner is not None
            assert (await shard_subscribers(owner, [name]))[name] == 1, name

        marker = secrets.token_hex(6)
        writes = [quote(s, marker) for s in SYMBOLS]
        minute = {"t": 60_000, "d": 20260302, "n": time.time_ns() // 1000, "marker": marker}
        element = json.dumps(minute, separators=(",", ":")).encode()  # the merge reads t, d, n
        writes.append(WidgetWrite(FEED_MINUTE_BARS, bars, element))
        alert = {"symbol": "C001", "marker": marker}
        writes.append(WidgetWrite(FEED_ALERTS_HOD, alerts, json.dumps(alert).encode()))
        await WidgetWriter(writer_client).write(writes)

        got_exact = await updates_marked(exact_ws, marker, len(exact))
        got_patterns = await updates_marked(pattern_ws, marker, len(SYMBOLS))
        assert got_exact == Counter(exact)  # every shard's names, each exactly once
        assert got_patterns == Counter(FEED_QUOTE.name(symbol=s) for s in SYMBOLS)
        assert server.stats.redis_reconnects == 0  # no gap, so no snapshots re-sent
        await exact_ws.close()
        await pattern_ws.close()
    finally:
        await close_redis(writer_client)
        await server.stop()


async def test_a_migrated_slot_moves_the_subscription_to_its_new_master(
    cluster: LoopbackCluster,
) -> None:
    """Redis ends the sharded subscription of a slot that moves (``sunsubscribe``); the WDS
    subscribes the feed on the slot's new master and delivery goes on."""
    server = await start_server(cluster.url())
    nodes: dict[Address, aioredis.Redis] = {}
    try:
        slots = await slot_map(cluster)
        for master in set(slots.masters):
            nodes[master] = aioredis.Redis(host=master[0], port=master[1])

        async def on(address: Address, *args: str | int) -> Any:
            return await nodes[address].execute_command(*args)  # type: ignore[no-untyped-call] # redis-py leaves execute_command untyped

        name = ""
        for n in range(200):  # a slot without keys: only an empty slot may simply be handed over
            name = FEED_QUOTE.name(symbol=f"M{n:03d}")
            owner = slots.route(name)
            assert owner is not None
            if await on(owner, "CLUSTER", "COUNTKEYSINSLOT", slot_of(name)) == 0:
                break
        source = slots.route(name)
        assert source is not None
        target = next(m for m in nodes if m != source)
        ws = await open_client(server, name)
        assert (await shard_subscribers(source, [name]))[name] == 1

        slot = slot_of(name)
        target_id = (await on(target, "CLUSTER", "MYID")).decode()
        source_id = (await on(source, "CLUSTER", "MYID")).decode()
        await on(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await on(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        for master in [target, source, *(m for m in nodes if m not in {source, target})]:
            await on(master, "CLUSTER", "SETSLOT", slot, "NODE", target_id)

        deadline = asyncio.get_running_loop().time() + WAIT
        while (await shard_subscribers(target, [name]))[name] != 1:
            assert asyncio.get_running_loop().time() < deadline, "not subscribed on the target"
            await asyncio.sleep(0.05)
        assert (await shard_subscribers(source, [name]))[name] == 0
        marker = secrets.token_hex(6)
        payload = json.dumps({"symbol": name, "marker": marker})
        assert await on(target, "SPUBLISH", name, payload) == 1
        assert await updates_marked(ws, marker, 1) == Counter([name])
        await ws.close()
    finally:
        for node in nodes.values():
            await node.aclose()
        await server.stop()


@pytest.mark.slow
@pytest.mark.restart
@pytest.mark.timeout(300)
@pytest.mark.parametrize("url_node", [False, True], ids=["another-master", "the-urls-node"])
async def test_losing_a_master_moves_the_wds_to_the_promoted_replica(url_node: bool) -> None:
    """A master dies; the WDS re-subscribes its names on the promoted replica and delivers.

    When the master is the node the URL names, the pattern subscriptions were there: they move
    to a live master, and pattern feeds are delivered again too.
    """
    cluster = LoopbackCluster()  # its own: this test kills a node
    await cluster.start()
    server: WidgetServer | None = None
    writer_client = create_redis(cluster.url())
    try:
        slots = await slot_map(cluster)
        chosen = names_on_every_master(slots, 2)
        victim = next(m for m in chosen if (m[1] == cluster.ports[0]) == url_node)
        lost = chosen[victim]
        exact = [n for names in chosen.values() for n in names]
        server = await start_server(cluster.url())
        ws = await open_client(server, *exact)
        pattern_ws = await open_client(server, FEED_QUOTE.pattern)
        writer = WidgetWriter(writer_client)

        marker = secrets.token_hex(6)
        await writer.write([quote(n.split(":")[1], marker) for n in exact])
        assert await updates_marked(ws, marker, len(exact), settle=0.0) == Counter(exact)
        assert await updates_marked(pattern_ws, marker, len(exact), settle=0.0) == Counter(exact)

        await cluster.kill(victim[1])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:  # until the replica is promoted and the WDS subscribed there
            assert loop.time() < deadline, "the WDS did not move to the promoted replica"
            await asyncio.sleep(0.2)
            try:
                now = await slot_map(cluster, avoid=victim[1])
            except (OSError, ValueError):
                continue
            promoted = now.route(lost[0])
            if promoted is None or promoted == victim:
                continue
            with_replica = await shard_subscribers(promoted, lost)
            if (
                all(with_replica[n] == 1 for n in lost)
                and server.hub.connected
                and server.stats.redis_reconnects >= 1  # the gap's resync has begun
            ):
                break
        await cluster.wait_ok([p for p in cluster.ports if p != victim[1]])
        # The marked payloads below are published, never stored: a resync snapshot read after
        # one was dispatched would stand in for it without the marker. Publish after the resync.
        await snapshots_sent(ws, 2)
        await snapshots_sent(pattern_ws, 2)

        # Straight to each name's master: redis-py's cluster pipeline, failing on one node,
        # sends the whole pipeline again (healthy shards would publish twice).
        marker = secrets.token_hex(6)
        for name in exact:
            owner = now.route(name)
            assert owner is not None
            node = aioredis.Redis(host=owner[0], port=owner[1])
            try:
                payload = json.dumps({"symbol": name, "marker": marker})
                assert await node.execute_command("SPUBLISH", name, payload) == 1  # type: ignore[no-untyped-call] # redis-py leaves execute_command untyped
                await node.publish(name, payload)  # for the pattern (the bus copies it)
            finally:
                await node.aclose()
        assert await updates_marked(ws, marker, len(exact)) == Counter(exact)
        assert await updates_marked(pattern_ws, marker, len(exact)) == Counter(exact)
        # Snapshots were re-sent after the gap, once: when the pattern link moved too, it came
        # back before the names did, and a re-send of its own read every snapshot twice.
        assert server.stats.redis_reconnects == 1
        await ws.close()
        await pattern_ws.close()
    finally:
        await close_redis(writer_client)
        if server is not None:
            await server.stop()
        await cluster.close()
