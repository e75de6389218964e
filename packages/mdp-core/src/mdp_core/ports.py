"""Free TCP ports for servers a process starts itself (tests, the bench, the embedded demo).

A port is picked, checked free, closed and handed to a child that binds it a moment later. The
kernel's own choice (binding port 0) comes from the ephemeral range, where every outgoing
connection takes its local port too: with thousands of connections open and closed around it,
one can take the port in that moment, and the child dies with "address already in use" (a
private Redis Cluster node and the bench's listener both did in CI). Ports are therefore
picked below the ephemeral range, where only explicit binds go.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Final

__all__ = ["free_port"]

_LOWEST: Final = 10_000
_TRIES: Final = 64
_RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
_pick = random.SystemRandom()  # never the tests' seeded generator: two runs would collide


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, below the ephemeral range when one is free there."""
    high = _ephemeral_start()
    for _ in range(_TRIES if high > _LOWEST else 0):
        port = _pick.randrange(_LOWEST, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen
