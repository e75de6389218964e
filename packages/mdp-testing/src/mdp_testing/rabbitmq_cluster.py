"""A private three-node RabbitMQ cluster on loopback, for tests that lose a node.

The machine's shared broker (``rabbit@localhost`` on 5672) must never be stopped under other
engineers' tests, so the cluster tests start their own nodes: each with its own node name
(``mdpt<pid>a@localhost`` ...), AMQP and distribution ports, data, log and config files and a
private ``HOME`` holding the Erlang cookie all nodes and the CLI share. Nothing reads
``/etc/rabbitmq``: the env file, config and plugin list are the cluster's own (no plugins, so no
management or Prometheus ports). Nodes run with one scheduler, no busy waiting and a small
memory watermark, because the test machines are small and shared.

Nodes ``b`` and ``c`` join ``a`` with ``stop_app`` / ``join_cluster`` / ``start_app``, as an
operator would; :meth:`RabbitCluster.kill` kills a node's process group (a crash, no graceful
shutdown), which is what a lost machine looks like to the others, and
:meth:`RabbitCluster.restart` brings it back into the cluster.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mdp_core.ports import free_port as _free_port

__all__ = [
    "RabbitCluster",
    "RabbitClusterUnavailable",
    "RabbitNode",
    "find_rabbitmq_bin",
    "log_tail",
]

_START_TIMEOUT_SECONDS = 120
#: ``rabbitmqctl wait`` is asked in slices this long, so a node that died while booting (its
#: pid file then never appears) is seen within one slice, not at the end of the whole wait.
_WAIT_SLICE_SECONDS = 10
_ERL_ARGS = (
    # One scheduler and no busy-wait: the nodes share two cores with everything else.
    "+S 1:1 +SDcpu 1:1 +SDio 1 +A 4 +sbwt none +sbwtdcpu none +sbwtdio none "
    "-kernel inet_dist_use_interface {127,0,0,1}"
)


class RabbitClusterUnavailable(RuntimeError):
    """No RabbitMQ scripts, or the nodes did not start or cluster in time."""


class _NodeExited(RabbitClusterUnavailable):
    """A node's process ended while it was booting."""


def find_rabbitmq_bin() -> Path | None:
    """The directory of the unwrapped ``rabbitmq-server`` and ``rabbitmqctl`` scripts.

    Debian's ``/usr/sbin`` wrappers switch to the ``rabbitmq`` user and its cookie; the
    scripts under ``/usr/lib/rabbitmq/bin`` run as the caller with the environment given.
    """
    for candidate in (Path("/usr/lib/rabbitmq/bin"), Path("/opt/rabbitmq/sbin")):
        if (candidate / "rabbitmq-server").exists():
            return candidate
    on_path = shutil.which("rabbitmq-server")
    return Path(on_path).resolve().parent if on_path else None


@dataclass(slots=True)
class RabbitNode:
    """One node of the cluster: its name, ports and files."""

    name: str
    amqp_port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of this node (guest is allowed on loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def alive(self) -> bool:
        """Whether the node's process is running."""
        return self.process is not None and self.process.poll() is None


def log_tail(node: RabbitNode, lines: int = 4, limit: int = 1_500) -> str:
    """The last ``lines`` of each of ``node``'s logs, one line, at most ``limit`` characters."""
    parts: list[str] = []
    for path in sorted((node.base / "log").glob("*.log")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        tail = " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())
        if tail:
            parts.append(f"[{path.name}] {tail}")
    joined = " ".join(parts) or "(nothing logged)"
    return joined if len(joined) <= limit else "..." + joined[-limit:]


def _raise_if_exited(node: RabbitNode) -> None:
    if not node.alive:
        msg = f"{node.name} exited at start; its logs end: {log_tail(node)}"
        raise _NodeExited(msg)


def _port_was_taken(node: RabbitNode) -> bool:
    """Whether ``node``'s logs say it could not listen on a port another process held."""
    for path in (node.base / "log").glob("*.log"):
        try:
            if "eaddrinuse" in path.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


class RabbitCluster:
    """Three private RabbitMQ nodes on 127.0.0.1, clustered, which a test may crash one of.

    Raises:
        RabbitClusterUnavailable: from :meth:`start` when the scripts are missing or the nodes
            do not come up.
    """

    def __init__(self, size: int = 3) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mdp-test-rabbit-")
        self.root = Path(self._tmp.name)
        self._cookie = secrets.token_hex(16)
        (self.root / ".erlang.cookie").write_text(self._cookie)
        (self.root / ".erlang.cookie").chmod(0o400)
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")
        tag = f"mdpt{os.getpid()}"
        self.nodes = tuple(
            RabbitNode(
                name=f"{tag}{chr(ord('a') + i)}@localhost",
                amqp_port=_free_port(),
                dist_port=_free_port(),
                base=self.root / chr(ord("a") + i),
            )
            for i in range(size)
        )
        self._bin: Path | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        """The AMQP URL of every node, in node order."""
        return tuple(node.url for node in self.nodes)

    def _env(self, node: RabbitNode) -> dict[str, str]:
        base = node.base
        config = base / "rabbitmq.conf"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _ERL_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": "+S 1:1 +sbwt none",
        }

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> ...`` with the cluster's cookie; return its output.

        Raises:
            RabbitClusterUnavailable: the command failed or timed out.
        """
        assert self._bin is not None
        command = [str(self._bin / "rabbitmqctl"), "-n", node.name, *args]
        try:
            done = subprocess.run(  # noqa: S603 - fixed script, arguments from this module
                command, env=self._env(node), capture_output=True, text=True, timeout=timeout,
                check=False, cwd=self.root,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            msg = f"rabbitmqctl {' '.join(args)} on {node.name} timed out"
            raise RabbitClusterUnavailable(msg) from exc
        if done.returncode != 0:
            msg = f"rabbitmqctl {' '.join(args)} on {node.name} failed: {done.stderr.strip()}"
            raise RabbitClusterUnavailable(msg)
        return done.stdout

    def _launch(self, node: RabbitNode) -> None:
        assert self._bin is not None
        for sub in ("mnesia", "log"):
            (node.base / sub).mkdir(parents=True, exist_ok=True)
        (node.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
            "vm_memory_high_watermark.absolute = 256MiB\n"
            "disk_free_limit.absolute = 50MB\n"
            "cluster_partition_handling = autoheal\n"
            "log.console = false\nlog.file.level = warning\n"
        )
        (node.base / "advanced.config").write_text("[].\n")
        log = (node.base / "log" / "stdout.log").open("wb")
        node.process = subprocess.Popen(  # noqa: S603 - fixed script, private environment
            [str(self._bin / "rabbitmq-server")],
            env=self._env(node), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=node.base,  # a crashing node writes its MnesiaCore dump here, not in the repo
        )  # fmt: skip
        log.close()

    def _await(self, node: RabbitNode) -> None:
        """Return once ``node`` has booted; raise with its logs when it died or took too long.

        The node's files go with the test's temporary folder: the reason goes in the error.
        """
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            _raise_if_exited(node)
            left = max(1, min(_WAIT_SLICE_SECONDS, round(deadline - time.monotonic())))
            try:
                # ``wait`` blocks until the pid file appears and the node has booted.
                self.ctl(node, "wait", str(node.base / "rabbit.pid"), "--timeout", str(left),
                         timeout=left + 10)  # fmt: skip
            except RabbitClusterUnavailable as exc:
                if time.monotonic() < deadline:
                    continue  # still booting, or dead: the check above tells
                _raise_if_exited(node)
                raise RabbitClusterUnavailable(f"{exc}; its logs end: {log_tail(node)}") from exc
            _raise_if_exited(node)
            return

    def _await_first_start(self, node: RabbitNode) -> None:
        """:meth:`_await`, moving the node to fresh ports once if one was taken meanwhile.

        Ports are picked free and bound by the node seconds later; another process can take
        one in between (the node then stops with ``eaddrinuse``). A node that has never
        joined anything can move; a restarted one keeps its ports (see :meth:`restart`).
        """
        try:
            self._await(node)
        except _NodeExited:
            if not _port_was_taken(node):
                raise
            node.process = None
            shutil.rmtree(node.base, ignore_errors=True)
            node.amqp_port, node.dist_port = _free_port(), _free_port()
            self._launch(node)
            self._await(node)

    def start_sync(self) -> None:
        """Start every node, cluster ``b``, ``c``... with ``a``, and wait until all run."""
        self._bin = find_rabbitmq_bin()
        if self._bin is None:
            msg = "rabbitmq-server is not installed"
            raise RabbitClusterUnavailable(msg)
        for node in self.nodes:
            self._launch(node)
        first = self.nodes[0]
        for node in self.nodes:
            self._await_first_start(node)
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        for node in self.nodes:
            self._await(node)

    async def start(self) -> None:
        """:meth:`start_sync` off the event loop."""
        await asyncio.to_thread(self.start_sync)

    def running_nodes(self, via: RabbitNode) -> list[str]:
        """The node names ``via`` sees running in its cluster."""
        out = self.ctl(via, "eval", "rabbit_nodes:all_running().")
        return sorted(part.strip(" []'\n") for part in out.split(",") if part.strip(" []'\n"))

    def queue_nodes(self, via: RabbitNode) -> dict[str, str]:
        """Each queue's name and the node its process lives on, as ``via`` sees them."""
        out = self.ctl(via, "list_queues", "name", "pid", "--no-table-headers", "--quiet")
        placed: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                placed[parts[0]] = parts[1].strip("<>").split(".")[0]
        return placed

    def kill(self, node: RabbitNode) -> None:
        """Crash ``node``: SIGKILL to its process group, no graceful shutdown."""
        process = node.process
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        node.process = None

    def restart(self, node: RabbitNode) -> None:
        """Start a killed node again; it rejoins the cluster it belongs to on its own."""
        if node.alive:
            return
        (node.base / "rabbit.pid").unlink(missing_ok=True)
        self._launch(node)
        self._await(node)

    def close(self) -> None:
        """Kill every node and remove the cluster's files."""
        for node in self.nodes:
            self.kill(node)
        self._tmp.cleanup()
