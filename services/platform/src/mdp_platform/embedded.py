"""An embedded Redis-compatible store for the one-command demo.

The demo must run on a machine with nothing but Python. When a ``redis-server`` binary is on the
PATH, a private one is started on a free loopback port with persistence off (real Redis, real
speed); otherwise fakeredis serves the Redis protocol from a thread in this process. Either way
the platform talks to it over TCP with the same client code it uses in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis.asyncio as aioredis

from mdp_core.ports import free_port

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "free_port", "port_taken"]


class EmbeddedRedisError(RuntimeError):
    """The embedded store could not be started."""


class _PortTaken(EmbeddedRedisError):
    """Another process held the port picked for the embedded ``redis-server``."""


_PORT_ATTEMPTS = 3


def port_taken(host: str, port: int) -> bool:
    """Whether a server could not bind ``host:port`` now (someone listens there).

    Binds the way aiohttp and websockets do (``SO_REUSEADDR``), so a port in TIME_WAIT after a
    previous run counts as free, as it is for them.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
        return False


@dataclass(frozen=True, slots=True)
class _Running:
    kind: Literal["redis-server", "fakeredis"]
    port: int


class EmbeddedRedis:
    """Starts and stops a loopback Redis-compatible server.

    Args:
        prefer: ``auto`` uses ``redis-server`` when installed, else fakeredis; ``fakeredis``
            forces the pure-Python store.
    """

    def __init__(self, prefer: Literal["auto", "fakeredis"] = "auto") -> None:
        self._prefer = prefer
        self._process: subprocess.Popen[bytes] | None = None
        self._fake: object | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._running: _Running | None = None

    @property
    def kind(self) -> str:
        """Which server runs: ``redis-server`` or ``fakeredis``."""
        return self._running.kind if self._running else "stopped"

    def url(self, db: int = 0) -> str:
        """The URL of logical database ``db``."""
        if self._running is None:
            raise EmbeddedRedisError("the embedded store is not running")
        return f"redis://127.0.0.1:{self._running.port}/{db}"

    async def start(self) -> None:
        """Start the server and wait until it answers PING.

        A ``redis-server``'s port is picked free and bound a moment later: another process
        can take it in between. The server then exits (the port is in use), or a server that
        is not ours answers on it; either way ours starts again on a fresh port, up to
        ``_PORT_ATTEMPTS`` times, and the demo never writes into another process's Redis.
        """
        binary = shutil.which("redis-server")
        if binary is None or self._prefer != "auto":
            self._start_fakeredis()
            await self._wait_ready()
            return
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            await asyncio.to_thread(self._start_redis_server, binary)
            try:
                await self._wait_ready()
            except _PortTaken as exc:
                if attempt == _PORT_ATTEMPTS:
                    raise EmbeddedRedisError(f"the embedded Redis did not start: {exc}") from exc
                continue
            return

    def _start_redis_server(self, binary: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mdp-demo-redis-")
        port = free_port()
        args = [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
            "no", "--dir", self._tmp.name, "--logfile", str(Path(self._tmp.name) / "redis.log"),
            "--protected-mode", "yes",
        ]  # fmt: skip
        # Its own session and process group: a Ctrl-C in the terminal signals the demo's group
        # only, so the store outlives the services and is stopped last (by stop()), instead of
        # dying first and making every component log connection errors on the way out.
        self._process = subprocess.Popen(  # noqa: S603 - fixed arguments, binary from PATH
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._running = _Running("redis-server", port)

    def _start_fakeredis(self) -> None:
        from fakeredis import TcpFakeServer  # noqa: PLC0415 - only the fallback needs it

        server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
        self._fake = server
        self._thread = threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True)
        self._thread.start()
        self._running = _Running("fakeredis", int(server.server_address[1]))

    async def _wait_ready(self, attempts: int = 100) -> None:
        """Return once our server answers; raise :class:`_PortTaken` when another one does.

        Raises:
            _PortTaken: our ``redis-server`` could not bind its port (``Address already in
                use``), or the server answering on it is another process (``INFO server``'s
                ``process_id``); ours is stopped.
            EmbeddedRedisError: nothing answered in time, or ours failed for another reason.
        """
        client = aioredis.from_url(self.url())
        process = self._process
        answered_by: int | None = None
        try:
            for _ in range(attempts):
                with contextlib.suppress(OSError, aioredis.RedisError):  # not up yet, or loading
                    if await client.ping():
                        if process is None:
                            return  # fakeredis, in this process: nobody else's
                        answered_by = int((await client.info("server"))["process_id"])
                        if answered_by == process.pid:
                            return
                        break
                if process is not None and process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        port = self._running.port if self._running else None
        log = self._log()
        await self.stop()
        if answered_by is not None:
            raise _PortTaken(f"port {port} is served by process {answered_by}, not ours")
        if "Address already in use" in log:
            raise _PortTaken(f"port {port} was taken before redis-server bound it")
        last = log.strip().splitlines()[-1:] if log.strip() else []
        detail = f": {last[0].strip()[-300:]}" if last else ""
        raise EmbeddedRedisError(f"the embedded Redis did not start{detail}")

    def _log(self) -> str:
        """What our ``redis-server`` logged ('' for fakeredis or no log)."""
        if self._tmp is None:
            return ""
        try:
            return (Path(self._tmp.name) / "redis.log").read_text(errors="replace")
        except OSError:
            return ""

    async def stop(self) -> None:
        """Stop the server and remove its files."""
        if self._process is not None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._fake is not None:
            self._fake.shutdown()  # type: ignore[attr-defined]
            self._fake.server_close()  # type: ignore[attr-defined]
            self._fake = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._running = None

    async def __aenter__(self) -> EmbeddedRedis:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
