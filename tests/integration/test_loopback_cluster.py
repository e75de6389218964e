"""The tests' private Redis Cluster: a port taken between its pick and the node's bind.

A port found free can be taken by any outgoing connection's ephemeral port before the node
binds it; the node then exits at once. That failed a clean-clone CI run (a node "exited" at
start-up, and the half-started cluster's files leaked into the next test as a warning).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdp_testing import redis_cluster
from mdp_testing.redis_cluster import RedisCluster
from mdp_testing.redis_server import RedisServerUnavailable


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
