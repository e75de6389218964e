"""The tests' private Redis Cluster: a port taken between its pick and the node's bind.

A port found free can be taken by any outgoing connection's ephemeral port before the node
binds it; the node then exits at once. That failed a clean-clone CI run (a node "exited" at
start-up, and the half-started cluster's files leaked into the next test as a warning). A
port can also be taken by a server that answers, another node of the same cluster included
(two picks of a free port can return the same one): a trial run once formed a five-node
cluster that way and leaked the node whose handle was overwritten.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mdp_testing import redis_cluster
from mdp_testing.redis_cluster import RedisCluster
from mdp_testing.redis_server import RedisServer, RedisServerUnavailable


@pytest.fixture
def taken() -> Iterator[int]:
    """A port on 127.0.0.1 held by a bound socket, as an outgoing connection holds its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


async def test_a_node_whose_port_was_taken_starts_on_another(taken: int) -> None:
    cluster = RedisCluster()
    cluster.ports[0] = taken
    await cluster.start()
    try:
        assert cluster.ports[0] != taken
        assert len(set(cluster.ports)) == 6
        await cluster.wait_ok()
        assert len(await cluster.masters()) == 3
    finally:
        await cluster.close()


async def test_a_cluster_that_cannot_start_says_why_and_leaves_nothing_behind(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_cluster, "free_port", lambda: taken)
    cluster = RedisCluster()
    folder = Path(cluster._tmp.name)
    why = rf"(?s)node {taken} exited: .*Address already in use"
    with pytest.raises(RedisServerUnavailable, match=why):
        await cluster.start()
    assert cluster._processes == {}
    assert not await asyncio.to_thread(folder.exists)


async def test_a_port_another_server_answers_on_is_not_taken_for_the_node() -> None:
    other = RedisServer()
    await other.start()
    try:
        cluster = RedisCluster()
        cluster.ports[0] = other.port
        await cluster.start()
        try:
            assert other.port not in cluster.ports
            assert len(set(cluster.ports)) == 6
            assert len(await cluster.masters()) == 3
        finally:
            await cluster.close()
        client = aioredis.Redis(host="127.0.0.1", port=other.port)
        try:
            assert await client.ping()  # untouched
        finally:
            await client.aclose()
    finally:
        await other.close()


def test_the_ports_of_one_cluster_are_distinct_even_when_picks_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    picks = iter([7001, 7001, 7002, 7002, 7003, 7001, 7004, 7005, 7006])
    monkeypatch.setattr(redis_cluster, "free_port", lambda: next(picks))
    cluster = RedisCluster(masters=3, replicas=1)
    try:
        assert cluster.ports == [7001, 7002, 7003, 7004, 7005, 7006]
    finally:
        cluster._tmp.cleanup()


async def test_a_port_another_cluster_node_answers_on_is_not_taken_for_the_node() -> None:
    """A cluster node there answers the start-up check like the new node would: the check
    asks which process answered."""
    first = RedisCluster(masters=3, replicas=0)
    await first.start()
    try:
        second = RedisCluster(masters=3, replicas=0)
        second.ports[0] = first.ports[0]
        await second.start()
        try:
            assert not set(first.ports) & set(second.ports)
            assert len(await second.masters()) == 3
        finally:
            await second.close()
        assert sorted(await first.masters()) == sorted(first.ports)
    finally:
        await first.close()
