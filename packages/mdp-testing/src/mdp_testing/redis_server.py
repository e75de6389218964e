"""A private ``redis-server`` that a test may crash and restart on the same port.

The shared Redis of the machine cannot be restarted under other tests, so tests of surviving a
Redis restart run their own: a real ``redis-server`` on a free loopback port with persistence
off, killed with SIGKILL (a crash: everything in memory is gone, scripts included) and started
again on the same port, as a Kubernetes pod restart would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis.asyncio as aioredis

from mdp_core.ports import free_port

__all__ = ["RedisServer", "RedisServerUnavailable", "free_port"]


class RedisServerUnavailable(RuntimeError):
    """No ``redis-server`` binary, or it did not answer in time."""


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, restartable on its port.

    Raises:
        RedisServerUnavailable: from :meth:`start` when the binary is missing or silent.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mdp-test-redis-")

    def url(self, db: int = 0) -> str:
        """The URL of logical database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def start(self) -> None:
        """Start the server (again) and return once it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerUnavailable("redis-server is not on the PATH")
        args = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", self._tmp.name,
            "--logfile", str(Path(self._tmp.name) / "redis.log"),
        ]  # fmt: skip
        self._process = await asyncio.create_subprocess_exec(
            *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        client = aioredis.from_url(self.url())
        try:
            async with asyncio.timeout(10):
                while True:
                    with contextlib.suppress(OSError, aioredis.ConnectionError):
                        if await client.ping():
                            return
                    if self._process is not None and self._process.returncode is not None:
                        raise RedisServerUnavailable("redis-server exited at start")
                    await asyncio.sleep(0.02)  # the server binds its port on its own time
        except TimeoutError as exc:
            raise RedisServerUnavailable("redis-server did not answer PING") from exc
        finally:
            await client.aclose()

    async def crash(self) -> None:
        """Kill the server (SIGKILL): connections drop, everything in memory is lost."""
        if self._process is not None:
            self._process.kill()
            await self._process.wait()
            self._process = None

    async def close(self) -> None:
        """Stop the server and remove its files."""
        await self.crash()
        self._tmp.cleanup()
