"""Private servers for ``mdp chaos``: a RabbitMQ node and a ``redis-server`` it may break.

Chaos breaks its servers (stops the broker, kills Redis), so it never uses the machine's shared
ones: the RabbitMQ node here has its own node name, ports, Erlang cookie and data directory
(nothing of the node on 5672 is touched), and Redis runs on a free port without persistence.
Both are started and stopped by the run and live in one temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Final

import redis.asyncio as aioredis

from mdp_core.ports import free_port

__all__ = ["ChaosError", "PrivateRabbit", "PrivateRedis", "free_port"]

_PORT_TRIES = 3  # starts of redis-server on fresh ports when another process took the port

_BOOT_SECONDS: Final = 90.0
_RABBIT_BIN: Final = Path("/usr/lib/rabbitmq/bin")


class ChaosError(RuntimeError):
    """A chaos run could not be set up (a server missing or not starting)."""


def _rabbit_tool(name: str) -> str | None:
    # The packaged /usr/sbin wrappers switch to the rabbitmq user; the scripts behind them run
    # as whoever starts them, with the data directory chosen here.
    direct = _RABBIT_BIN / name
    return str(direct) if direct.exists() else shutil.which(name)


class PrivateRabbit:
    """A RabbitMQ node of its own on loopback, stoppable and startable mid-run."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"mdpchaos{os.getpid()}@localhost"
        self.home = workdir / "rabbitmq"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of the node (guest/guest; it listens on loopback only)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        home = str(self.home)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,  # its own Erlang cookie
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": f"{home}/env.conf",  # not /etc/rabbitmq's
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_BASE": home,
            "RABBITMQ_MNESIA_BASE": f"{home}/mnesia",
            "RABBITMQ_MNESIA_DIR": f"{home}/mnesia/node",
            "RABBITMQ_FEATURE_FLAGS_FILE": f"{home}/feature_flags",
            "RABBITMQ_LOG_BASE": f"{home}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{home}/enabled_plugins",
            "RABBITMQ_CONFIG_FILE": f"{home}/rabbitmq",
            "RABBITMQ_PID_FILE": f"{home}/pid",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    async def start(self) -> None:
        """Boot the node and return once it accepts AMQP connections.

        Its ports are picked free and bound seconds later: a node that stops with
        ``eaddrinuse`` (another process took one in between) boots again on fresh ports, up
        to ``_PORT_TRIES`` times. The run starts the node once; the broker scenario stops and
        starts its application, never the node, so the ports never move under a client.
        """
        server = _rabbit_tool("rabbitmq-server")
        if server is None or _rabbit_tool("rabbitmqctl") is None:
            raise ChaosError("rabbitmq-server is not installed")
        for attempt in range(1, _PORT_TRIES + 1):
            await self._launch(server)
            try:
                await self._await_startup()
            except ChaosError:
                if attempt == _PORT_TRIES or not self._port_was_taken():
                    raise
                await self.stop()  # one that is still up must not keep the node's name
                shutil.rmtree(self.home, ignore_errors=True)
                self.port, self.dist_port = free_port(), free_port()
                continue
            return

    def _port_was_taken(self) -> bool:
        """Whether the node's logs say a port it was to bind was held by another process."""
        for path in [self.home / "server.log", *(self.home / "log").glob("*.log")]:
            with contextlib.suppress(OSError):
                if "eaddrinuse" in path.read_text(errors="replace"):
                    return True
        return False

    async def _launch(self, server: str) -> None:
        (self.home / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.home / "log").mkdir(exist_ok=True)
        (self.home / "env.conf").write_text("")
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        with (self.home / "server.log").open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                server,
                env=self._env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                cwd=self.home,  # a crash dump (MnesiaCore, erl_crash.dump) lands here
            )

    async def _await_startup(self) -> None:
        # ``await_startup`` fails at once while the node is not yet registered: ask again.
        deadline = asyncio.get_running_loop().time() + _BOOT_SECONDS
        while True:
            try:
                await self.ctl("await_startup", within=_BOOT_SECONDS)
            except ChaosError:
                if self.process is not None and self.process.returncode is not None:
                    msg = f"rabbitmq-server exited; see {self.home / 'server.log'}"
                    raise ChaosError(msg) from None
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)  # the node registers itself on its own time
            else:
                return

    async def ctl(self, *args: str, within: float = 60.0) -> None:
        """Run ``rabbitmqctl -n <this node> ARGS`` (bounded)."""
        tool = _rabbit_tool("rabbitmqctl")
        assert tool is not None
        process = await asyncio.create_subprocess_exec(
            tool,
            "-n",
            self.node,
            *args,
            env=self._env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(within):
                _, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            msg = f"rabbitmqctl {' '.join(args)} did not finish in {within:.0f} s"
            raise ChaosError(msg) from None
        if process.returncode != 0:
            msg = f"rabbitmqctl {' '.join(args)} failed: {err.decode(errors='replace')[-300:]}"
            raise ChaosError(msg)

    async def stop_app(self) -> None:
        """Stop the broker application (every connection drops; the node stays up)."""
        await self.ctl("stop_app")

    async def start_app(self) -> None:
        """Start the broker application again."""
        await self.ctl("start_app")
        await self._await_startup()

    async def stop(self) -> None:
        """Stop the node (its whole process group), however it is doing."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ChaosError):
            await self.ctl("stop", within=30.0)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0):
                await process.wait()
        self.process = None


class PrivateRedis:
    """A ``redis-server`` on a free loopback port, killable (``kill -9``) and restartable empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / "redis"
        self.process: asyncio.subprocess.Process | None = None
        self._was_up = False

    def url(self, db: int) -> str:
        """The URL of logical database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def start(self) -> None:
        """Start it (again, empty) and return once it answers PING as this very process.

        Before its first start a port another process took meanwhile (it was picked free and
        is bound a moment later) moves it to a fresh one; a restart keeps its port.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise ChaosError("redis-server is not installed")
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(_PORT_TRIES):
            self.process = await asyncio.create_subprocess_exec(
                binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            if await self._answers_as(self.process):
                self._was_up = True
                return
            await self.kill()
            if self._was_up:
                raise ChaosError(f"port {self.port} was taken while redis-server was down")
            self.port = free_port()
        raise ChaosError(f"another process took each of {_PORT_TRIES} ports picked for Redis")

    async def _answers_as(self, process: asyncio.subprocess.Process) -> bool:
        """Whether ``process`` answers on the port (False: another process holds the port)."""
        client = aioredis.from_url(self.url(0), socket_timeout=1)
        try:
            async with asyncio.timeout(20):
                while process.returncode is None:
                    with contextlib.suppress(OSError, aioredis.RedisError, KeyError, ValueError):
                        if await client.ping():
                            info = await client.info("server")
                            return int(info["process_id"]) == process.pid
                    await asyncio.sleep(0.05)  # the server binds its port on its own time
                with contextlib.suppress(OSError):
                    log = (self.dir / "redis.log").read_text(errors="replace")
                    if "Address already in use" in " ".join(log.splitlines()[-2:]):
                        return False
                raise ChaosError(f"redis-server exited at start; see {self.dir / 'redis.log'}")
        except TimeoutError:
            raise ChaosError("redis-server did not answer PING") from None
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: a crash, everything in memory gone."""
        process = self.process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        self.process = None


def workdir() -> tempfile.TemporaryDirectory[str]:
    """The run's temporary directory (servers' data, component logs)."""
    return tempfile.TemporaryDirectory(prefix="mdp-chaos-")
