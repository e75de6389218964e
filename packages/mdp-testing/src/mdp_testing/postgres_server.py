"""A private PostgreSQL cluster for tests: ``initdb`` in a temporary directory, one port.

Tests never touch a system PostgreSQL: each run starts its own cluster on a free loopback
port (durability off, trust authentication on loopback only), creates one database per test
and removes everything at the end. PostgreSQL refuses to run as root, so under root the
binaries run as the ``postgres`` user (or ``nobody``), which owns the data directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from mdp_core.ports import free_port as _free_port

__all__ = ["PostgresServer", "PostgresServerUnavailable", "find_postgres_bin"]

_START_TIMEOUT_SECONDS = 60
_PORT_TRIES = 3  # first starts on fresh ports when another process took the one picked


class PostgresServerUnavailable(RuntimeError):
    """No PostgreSQL binaries, or the cluster did not start."""


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


class PostgresServer:
    """One private cluster on 127.0.0.1, which a test may pause and resume (an outage).

    Raises:
        PostgresServerUnavailable: from :meth:`start` when binaries are missing or it fails.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="mdp-test-pg-")
        self.data = Path(self._tmp.name) / "data"
        self._bin: Path | None = None
        self._user: pwd.struct_passwd | None = None

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self._bin is not None
        command = [str(self._bin / args[0]), *args[1:]]
        if self._user is not None:
            command = ["setpriv", f"--reuid={self._user.pw_uid}", f"--regid={self._user.pw_gid}",
                       "--clear-groups", *command]  # fmt: skip
        return subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            command,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=_START_TIMEOUT_SECONDS,
            cwd=self._tmp.name,
        )

    def start(self) -> None:
        """Initdb and start; returns once the server accepts connections."""
        self._bin = find_postgres_bin()
        if self._bin is None:
            raise PostgresServerUnavailable("no PostgreSQL binaries (initdb) found")
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self._user = pwd.getpwnam(name)
                    break
            assert self._user is not None
            os.chmod(self._tmp.name, 0o755)  # noqa: S103 - the service user must enter it
            os.chown(self._tmp.name, self._user.pw_uid, self._user.pw_gid)
        init = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        if init.returncode != 0:
            raise PostgresServerUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        # The port was picked free and is bound a moment later: another process can take it in
        # between. The first start then moves to a fresh port; a resume keeps its port.
        for attempt in range(1, _PORT_TRIES + 1):
            logged = self._log_size()
            try:
                self.resume()
            except PostgresServerUnavailable:
                if attempt == _PORT_TRIES or not self._port_was_taken(since=logged):
                    raise
                self.port = _free_port()
                continue
            return

    def _log_size(self) -> int:
        with contextlib.suppress(OSError):
            return (Path(self._tmp.name) / "postgres.log").stat().st_size
        return 0

    def _port_was_taken(self, since: int) -> bool:
        """Whether what the server logged after byte ``since`` says its port was in use."""
        try:
            with (Path(self._tmp.name) / "postgres.log").open("rb") as log:
                log.seek(since)
                text = log.read().decode(errors="replace")
        except OSError:
            return False
        return "Address already in use" in text

    def resume(self) -> None:
        """Start the initialised cluster (again) on the same port and data."""
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self._tmp.name} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        started = self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l",
            str(Path(self._tmp.name) / "postgres.log"), "-w", "-t", str(_START_TIMEOUT_SECONDS),
            "start",
        )  # fmt: skip
        if started.returncode != 0:
            raise PostgresServerUnavailable(f"pg_ctl start failed: {started.stderr.strip()[-500:]}")

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        created = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            name)  # fmt: skip
        if created.returncode != 0:
            raise PostgresServerUnavailable(f"createdb failed: {created.stderr.strip()[-300:]}")
        return self.url(name)

    def pause(self) -> None:
        """Stop the server (an outage for its clients), keeping its data to :meth:`resume`.

        A fast shutdown, not a crash: with durability off, a crash could lose recent commits.
        """
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server now (immediate mode) and delete its files; safe to call twice."""
        if self._bin is not None and self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self._tmp.cleanup()
