"""Creating and closing the asyncio Redis clients of MDC and WDC.

One small pool per process and store: every hot path batches its commands into pipelines, so a
handful of connections carries the whole load (the earlier implementation opened pools of up
to 1,000 connections per worker and store).

A URL with the scheme ``redis+cluster://`` (``rediss+cluster://`` with TLS) names a Redis
Cluster: any one node; the client discovers the rest and follows ``MOVED``/``ASK`` redirects
and failovers. ``MDP_REDIS_CLUSTER=true`` turns the URLs of the settings into such URLs
(:mod:`mdp_core.settings`), so the code that creates clients never needs to know.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
from redis.asyncio import BlockingConnectionPool, Connection, Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    ConnectionError,
    DataError,
    MasterDownError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from mdp_cache.cluster_pool import WaitingCluster
from mdp_core.backoff import BackoffPolicy

__all__ = [
    "CLUSTER_SCHEMES",
    "DEFAULT_MAX_CONNECTIONS",
    "PUBSUB_RECONNECT",
    "REDIS_ERRORS",
    "PackingConnection",
    "close_redis",
    "create_redis",
    "discover",
    "is_cluster",
    "is_cluster_url",
    "is_transient",
    "mget",
    "slot_of",
    "subscriber",
]

DEFAULT_MAX_CONNECTIONS: Final = 16
"""Pool size per store and process (per cluster node in cluster mode): pipelines need few."""

REDIS_ERRORS: Final[tuple[type[Exception], ...]] = (RedisError, RedisClusterException, OSError)
"""What a store that cannot be used now raises: redis-py's errors, and a socket's. A Redis
Cluster losing a master raises ``SlotNotCoveredError`` until the replica is promoted, which is
a ``RedisClusterException`` and no ``RedisError``: handlers catching only the latter let it
escape (a news processor's write loop, a WDS revocation poll, the management API)."""

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes naming a Redis Cluster, and the plain scheme of each."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (scheme ``redis+cluster``/``rediss+cluster``)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def is_cluster(client: Redis) -> bool:
    """Whether ``client`` is a cluster client (made by :func:`create_redis` from a cluster URL)."""
    return isinstance(client, RedisCluster)


def slot_of(name: str | bytes) -> int:
    """The cluster hash slot of a key or shard channel (its hash tag when it has one)."""
    return int(key_slot(name.encode() if isinstance(name, str) else name))


class PackingConnection(Connection):
    """A TCP connection whose commands are packed by hiredis, in C.

    redis-py's asyncio connection packs every argument in Python (its blocking connection
    already uses hiredis when installed): with the flush's script calls carrying a key or
    three per changed symbol, that was 5-9 % of a processor's flush CPU. The bytes on the
    wire are the same (pinned by the tests), as are the errors: a first argument holding a
    space is split (``"CONFIG GET"``), and an argument of another type than bytes, str, int
    or float is a ``DataError``. A large bytes argument (a flush's packed rows, 100-300 kB)
    goes out as a chunk of its own, as redis-py sends it: hiredis would copy it into the
    command's buffer, ten times slower than packing it in Python at that size.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """The RESP bytes of one command, in chunks."""
        head = args[0]
        if isinstance(head, str):
            args = (*head.encode().split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        cutoff = self._buffer_cutoff
        large = [at for at, arg in enumerate(args) if type(arg) is bytes and len(arg) > cutoff]
        try:
            if not large:
                return [hiredis.pack_command(args)]
            chunks = [b"*%d\r\n" % len(args)]
            start = 0
            for at in (*large, len(args)):
                if at > start:
                    packed = hiredis.pack_command(args[start:at])
                    chunks.append(packed[packed.index(b"\r\n") + 2 :])  # less its array header
                if at < len(args):
                    arg = args[at]
                    chunks += (b"$%d\r\n" % len(arg), arg, b"\r\n")
                start = at + 1
        except TypeError:
            return self._pack_odd(args)
        return chunks

    def _pack_odd(self, args: tuple[Any, ...]) -> list[bytes]:
        """Buffers as bytes (hiredis takes bytes only); any other type is a ``DataError``."""
        for arg in args:
            if not isinstance(arg, bytes | str | int | float | bytearray | memoryview) or (
                isinstance(arg, bool)
            ):
                kind = type(arg).__name__
                msg = f"Invalid input of type: {kind!r}. Convert to a bytes, string, int or float"
                raise DataError(msg + " first.")
        plain = (bytes(arg) if isinstance(arg, bytearray | memoryview) else arg for arg in args)
        return self.pack_command(*plain)


PUBSUB_RECONNECT: Final = BackoffPolicy(initial_seconds=0.2, max_seconds=10.0, jitter=0.5)
"""Default reconnect delays of a pub/sub subscriber (services pass their own settings)."""


def create_redis(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    client_name: str | None = None,
    socket_timeout: float = 5.0,
) -> Redis:
    """A bytes-in/bytes-out asyncio client for ``url`` (no connection is made yet).

    Responses are not decoded: payloads are JSON bytes that go out to clients unchanged.
    A command retries a couple of times with backoff on a dropped connection; longer outages
    surface as ``redis.exceptions.ConnectionError`` for the caller's own retry loop. When every
    pooled connection is busy a caller waits for one (up to ``socket_timeout``) instead of
    failing: bursts of concurrent lookups queue, they do not error. On a cluster they wait for
    a place among ``max_connections`` commands in flight (:class:`~mdp_cache.cluster_pool.
    WaitingCluster`), which keeps every node's pool from running out.

    A cluster URL gives a ``RedisCluster``, typed as ``Redis``: it answers the same commands
    for keys of one slot (the catalogue's hash tags see to that); code whose commands span
    slots asks :func:`is_cluster` and splits them (:func:`mget`, ``mdp_cache.state``).
    """
    parts = urlsplit(url)
    if parts.scheme in CLUSTER_SCHEMES:
        # Redis Cluster has database 0 only: a database in the path is dropped.
        plain = urlunsplit(parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme], path=""))
        cluster = WaitingCluster.from_url(
            plain,
            max_connections=max_connections,
            client_name=client_name,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            health_check_interval=30,
            decode_responses=False,
        )
        return cast("Redis", cluster)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        client_name=client_name,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        health_check_interval=30,
        decode_responses=False,
        # redis:// only: a rediss:// or unix:// URL names its own connection class.
        connection_class=PackingConnection,
    )
    return Redis.from_pool(pool)


_TRANSIENT: Final = (
    ConnectionError,
    TimeoutError,
    # A Redis Cluster between losing a master and promoting its replica, or moving slots:
    ClusterDownError,
    ClusterError,
    MasterDownError,
    SlotNotCoveredError,
    TryAgainError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis being unreachable for a while (retry) rather than a refusal.

    A connection or timeout, and on a cluster the errors of a failover in progress: the slots
    of a lost master have no node until its replica is promoted.
    """
    return isinstance(exc, _TRANSIENT)


async def mget(client: Redis, names: Sequence[str | bytes]) -> list[bytes | None]:
    """``MGET`` of ``names``; on a cluster one ``MGET`` per slot (keys of many slots)."""
    if not names:
        return []
    if is_cluster(client):
        values = await cast("RedisCluster", client).mget_nonatomic(list(names))
    else:
        values = await client.mget(list(names))
    return cast("list[bytes | None]", values)


async def discover(client: Redis, *, refresh: bool = False) -> None:
    """On a cluster, learn its nodes and slots now (no-op on one Redis).

    Commands do it on first use, but redis-py's cluster pub/sub picks its node from the slot
    map without filling it first: call this before :func:`subscriber`. With ``refresh`` the
    map is read again even if the client has one (after a lost subscription: a master may
    have failed over, and pub/sub, unlike commands, never makes the client notice).
    """
    if not is_cluster(client):
        return
    cluster = cast("RedisCluster", client)
    if refresh:
        await cluster.nodes_manager.initialize()
    else:
        await cluster.initialize()


def subscriber(client: Redis, **kwargs: Any) -> PubSub:
    """A pub/sub connection of ``client``; on a cluster, on a random master of its map.

    redis-py's cluster pub/sub otherwise subscribes on the client's default node and keeps
    using it after that node died (a failover promotes its replica, the default stays), so a
    subscriber reconnecting after the loss of that master never got its subscriptions back.
    ``PUBLISH`` reaches every node of a cluster, so any live master serves ``SUBSCRIBE`` and
    ``PSUBSCRIBE``. Call :func:`discover` (with ``refresh`` after a loss) first.
    """
    if not is_cluster(client):
        return client.pubsub(**kwargs)
    cluster = cast("RedisCluster", client)
    primaries = cluster.get_primaries()
    node = random.choice(primaries) if primaries else None
    return cast("PubSub", cluster.pubsub(node=node, **kwargs))


async def close_redis(client: Redis) -> None:
    """Close ``client`` and its connection pool."""
    await client.aclose()
