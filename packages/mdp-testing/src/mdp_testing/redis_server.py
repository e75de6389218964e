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
from redis.exceptions import TimeoutError as RedisTimeout

from mdp_core.ports import free_port

__all__ = ["RedisServer", "RedisServerUnavailable", "free_port"]

_PORT_TRIES = 3  # starts on fresh ports when another process took the one picked
_PORT_TAKEN = "Address already in use"  # what redis-server logs when its bind fails


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
        self._was_up = False

    def url(self, db: int = 0) -> str:
        """The URL of logical database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def start(self) -> None:
        """Start the server (again) and return once it answers PING as this very process.

        The port was picked free and is bound a moment later: another process can take it in
        between. Before the server was ever up it then moves to a fresh port; a restart keeps
        its port, as its clients expect (and fails if the port went meanwhile).
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerUnavailable("redis-server is not on the PATH")
        for _ in range(_PORT_TRIES):
            logged = len(self._log())  # the log is appended to: look at this start's lines only
            args = [
                binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self._tmp.name,
                "--logfile", str(Path(self._tmp.name) / "redis.log"),
            ]  # fmt: skip
            self._process = await asyncio.create_subprocess_exec(
                *args,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            if await self._ours_when_ready(self._process, logged):
                self._was_up = True
                return
            await self.crash()
            if self._was_up:
                msg = f"port {self.port} was taken by another process while the server was down"
                raise RedisServerUnavailable(msg)
            self.port = free_port()
        msg = f"another process took each of {_PORT_TRIES} ports picked for redis-server"
        raise RedisServerUnavailable(msg)

    async def _ours_when_ready(self, process: asyncio.subprocess.Process, logged: int) -> bool:
        """Whether ``process`` answers on the port (False: another process holds the port)."""
        # Bounded replies: a port taken by something else may accept and never answer.
        client = aioredis.from_url(self.url(), socket_timeout=1)
        try:
            async with asyncio.timeout(10):
                while True:
                    with contextlib.suppress(OSError, aioredis.ConnectionError, RedisTimeout):
                        try:
                            if await client.ping():
                                info = await client.info("server")
                                return int(info["process_id"]) == process.pid
                        except (aioredis.ResponseError, KeyError, ValueError):
                            return False  # a server that wants a password, or not a Redis
                    if process.returncode is not None:
                        log = self._log()[logged:]
                        if _PORT_TAKEN in log:
                            return False
                        tail = " ".join(log.splitlines()[-2:])
                        raise RedisServerUnavailable(f"redis-server exited at start: {tail}")
                    await asyncio.sleep(0.02)  # the server binds its port on its own time
        except TimeoutError as exc:
            raise RedisServerUnavailable("redis-server did not answer PING") from exc
        finally:
            await client.aclose()

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return (Path(self._tmp.name) / "redis.log").read_text(errors="replace")
        return ""

    async def crash(self) -> None:
        """Kill the server (SIGKILL): connections drop, everything in memory is lost."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
                self._process.kill()
            await self._process.wait()
            self._process = None

    async def close(self) -> None:
        """Stop the server and remove its files."""
        await self.crash()
        self._tmp.cleanup()
