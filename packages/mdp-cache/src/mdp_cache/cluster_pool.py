"""A Redis Cluster client whose callers wait for a connection instead of failing.

redis-py's asyncio ``RedisCluster`` keeps at most ``max_connections`` connections per node and
raises ``MaxConnectionsError`` to a command that finds them all busy, where the single-server
client (a ``BlockingConnectionPool``) makes it wait. A burst of concurrent commands (a
processor looking up the reference data of thousands of symbols at the open) then fails by the
dozen, and a failure while other commands are in flight can break those too (seen in the
benchmark: ``AttributeError: 'NoneType' object has no attribute 'writelines'`` on connections
the client disconnected under them).

:class:`WaitingCluster` initializes the slot map once before any command sets out, then
bounds the commands and pipelines in flight per client to half of ``max_connections``: each
holds at most one connection per node, so no node's pool runs out, and the rest wait their
turn as on one server. Half, not all: with every connection of a pool in use, redis-py 8.1
still broke a few commands of a burst with that ``AttributeError`` (3,000 concurrent commands
on a loopback cluster: none lost with 8 or 12 of 16 in flight, a dozen with 16). A command
the client runs on behalf of one already admitted (a pipeline retrying a redirected command)
is not counted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Final, TypeVar

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import RedisClusterException

__all__ = ["WaitingCluster"]

_T = TypeVar("_T")

_ADMITTED: Final[ContextVar[bool]] = ContextVar("mdp_cluster_admitted", default=False)
"""Set while a task runs a command or pipeline already counted against the bound."""


class WaitingCluster(RedisCluster):
    """``RedisCluster`` with at most ``max_connections`` commands and pipelines in flight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight_limit: int = max(1, int(kwargs.get("max_connections") or 2) // 2)
        self._admission = asyncio.Semaphore(self.in_flight_limit)

    async def admitted(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``call`` once a place is free (at once when this task already holds one)."""
        if _ADMITTED.get():
            return await call()
        # The slot map first, once for all: commands that set out while another task was
        # still initializing the client were the ones a cold burst lost.
        await self.initialize()
        async with self._admission:
            token = _ADMITTED.set(True)
            try:
                return await call()
            finally:
                _ADMITTED.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Send one command when a place is free (see the module docstring)."""
        send = super().execute_command
        return await self.admitted(lambda: send(*args, **kwargs))

    async def aclose(self) -> None:
        """Close every node's connections, also after a command met a dropped connection.

        redis-py 8.1's ``aclose`` closes nothing while the client is marked for re-reading the
        slot map (``_initialize``), which a command that failed with a ``ConnectionError`` (a
        master lost) leaves set until the next command: the connections to every node stayed
        open until the garbage collector warned about them. Closing twice is harmless.
        """
        await super().aclose()
        await self.nodes_manager.aclose()
        await self.nodes_manager.aclose("startup_nodes")

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        """A pipeline whose ``execute`` waits for a place like a command."""
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        # redis-py's own pipeline() builds its ClusterPipeline the same way; its typing marks an
        # attribute the base sets at run time as abstract.
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """A ``ClusterPipeline`` executed through its client's admission."""

    cluster_client: WaitingCluster

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        """Execute the pipeline once a place is free."""
        run = super().execute
        return await self.cluster_client.admitted(lambda: run(raise_on_error, allow_redirections))
