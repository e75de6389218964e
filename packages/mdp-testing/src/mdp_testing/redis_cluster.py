"""A private Redis Cluster on loopback: three masters with one replica each.

Tests of cluster mode run a real cluster, not a mock: six ``redis-server --cluster-enabled yes``
processes on free ports in a temporary directory, joined with ``redis-cli --cluster create
--cluster-replicas 1``. A test may kill a master (SIGKILL) and wait for its replica to take over,
as a lost node of a production cluster would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeout

from mdp_testing.redis_server import RedisServerUnavailable, free_port

__all__ = ["RedisCluster"]

_NODE_TIMEOUT_MS = 1_000
"""``cluster-node-timeout``: a killed master is failed over within a few seconds."""

_START_ATTEMPTS = 3
"""Tries per node: a port found free can be taken (by any outgoing connection's ephemeral
port) before the node binds it, and the node then exits at once."""

_PORT_PICKS = 20
"""Picks of a free port before one already handed out to the cluster is taken anyway."""


def _replica_synced(info: bytes) -> bool:
    return b"master_link_status:up" in info


class RedisCluster:
    """Six ``redis-server`` nodes on 127.0.0.1 forming one cluster (3 masters, 3 replicas).

    Raises:
        RedisServerUnavailable: from :meth:`start` when a binary is missing or the cluster does
            not form in time.
    """

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        #: Every port handed out, nodes' and buses': two picks of ``free_port`` can return the
        #: same port (nothing holds it in between), and a node started on a port another node
        #: of the cluster took would seem to answer.
        self._handed: set[int] = set()
        self.ports = [self._free_port() for _ in range(masters * (1 + replicas))]
        self.replicas = replicas
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="mdp-test-redis-cluster-")

    def _free_port(self) -> int:
        """A free port not handed out before to this cluster (if one turns up in a few picks)."""
        for _ in range(_PORT_PICKS):
            port = free_port()
            if port not in self._handed:
                break
        self._handed.add(port)
        return port

    def url(self) -> str:
        """A cluster URL (``redis+cluster://``, as ``mdp_cache.client`` reads it) of one node."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    async def start(self) -> None:
        """Start every node, create the cluster and return once it serves every slot.

        On failure every node started is stopped and the files removed before the error
        propagates, so a caller that never got a cluster has nothing to close.
        """
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RedisServerUnavailable("redis-server or redis-cli is not on the PATH")
        for index in range(len(self.ports)):
            await self._start_node(server, index)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = await asyncio.create_subprocess_exec(
            cli, "--cluster", "create", *nodes, "--cluster-replicas", str(self.replicas),
            "--cluster-yes",
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _, err = await create.communicate()
        if create.returncode != 0:
            raise RedisServerUnavailable(
                f"redis-cli --cluster create failed: {err.decode()[-300:]}"
            )
        await self.wait_ok(self.ports)
        # A replica that never synced cannot take over its master: wait for every link.
        for port in self.ports:
            await self._until(port, _replica_synced, "sync its replica", command="INFO")

    async def _start_node(self, binary: str, index: int) -> None:
        """Start node ``index``; on a new port when the one picked was taken meanwhile."""
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = self.ports[index]
            await self._spawn(binary, port)
            try:
                await self._until(port, lambda info: True, "answer PING")
                await self._answered_by_own_node(port)
            except RedisServerUnavailable as exc:
                process = self._processes.pop(port)
                if process.returncode is None:  # silent, not gone: no other port would help
                    process.kill()
                    await process.wait()
                    raise
                log = Path(self._tmp.name) / str(port) / "redis.log"
                tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
                if attempt == _START_ATTEMPTS:
                    raise RedisServerUnavailable(f"{exc}: {tail.strip()}") from exc
                self.ports[index] = self._free_port()
            else:
                return

    async def _answered_by_own_node(self, port: int) -> None:
        """Raise unless the server answering on ``port`` is the process started for it.

        Something else already listening there answers PING while the new node fails to bind
        and exits; it is then stopped here, and its start is retried on another port.
        """
        process = self._processes[port]
        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        if info.get("process_id") != process.pid:
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise RedisServerUnavailable(f"port {port} is served by another process")

    async def _spawn(self, binary: str, port: int) -> None:
        folder = Path(self._tmp.name) / str(port)
        folder.mkdir(exist_ok=True)
        args = [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log"),
            "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
            "--cluster-node-timeout", str(_NODE_TIMEOUT_MS), "--repl-diskless-sync-delay", "0",
            # The bus port defaults to port + 10000, which a high free port overflows.
            "--cluster-port", str(self._free_port()),
        ]  # fmt: skip
        self._processes[port] = await asyncio.create_subprocess_exec(
            *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )

    async def wait_ok(self, ports: list[int] | None = None, within: float = 30.0) -> None:
        """Return once every live node (or ``ports``) reports ``cluster_state:ok``."""
        for port in ports if ports is not None else list(self._processes):
            await self._until(port, lambda info: b"cluster_state:ok" in info, "serve", within)

    async def _until(
        self,
        port: int,
        check: Callable[[bytes], bool],
        what: str,
        within: float = 10.0,
        command: str = "CLUSTER INFO",
    ) -> None:
        # A bounded reply: something else on the port that never answers must not hide the
        # node's exit for the whole window.
        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        try:
            async with asyncio.timeout(within):
                while True:
                    # A server that refuses the command (a plain Redis on the port: "cluster
                    # support disabled") is not the node either: its exit says so.
                    with contextlib.suppress(
                        OSError, aioredis.ConnectionError, aioredis.ResponseError, RedisTimeout
                    ):
                        info = await client.execute_command(*command.split())  # type: ignore[no-untyped-call] # redis-py leaves execute_command untyped
                        if isinstance(info, dict):  # redis-py parses INFO
                            info = (
                                b"master_link_status:up"
                                if info.get("master_link_status", "up") == "up"
                                else b""
                            )
                        if check(info):
                            return
                    process = self._processes.get(port)
                    if process is not None and process.returncode is not None:
                        raise RedisServerUnavailable(f"node {port} exited")
                    await asyncio.sleep(0.05)  # the node converges on its own time
        except TimeoutError as exc:
            raise RedisServerUnavailable(f"node {port} did not {what} in time") from exc
        finally:
            await client.aclose()

    async def masters(self) -> list[int]:
        """Ports of the masters serving slots, as a live node sees them."""
        live = next(port for port, p in self._processes.items() if p.returncode is None)
        client = aioredis.Redis(host="127.0.0.1", port=live)
        try:
            shards = await client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call] # redis-py leaves execute_command untyped
        finally:
            await client.aclose()
        return sorted({int(shard[2][1]) for shard in shards})

    async def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (its replica is promoted after the node timeout)."""
        process = self._processes.pop(port)
        if process.returncode is None:
            process.kill()
        await process.wait()

    async def close(self) -> None:
        """Stop every node and remove their files."""
        for port in list(self._processes):
            await self.kill(port)
        self._tmp.cleanup()
