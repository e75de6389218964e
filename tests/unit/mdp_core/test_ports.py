"""Free ports come from below the ephemeral range, where outgoing connections never land."""

from __future__ import annotations

import socket

import pytest

from mdp_core import ports
from mdp_core.ports import free_port


def test_a_free_port_is_bindable_and_below_the_ephemeral_range() -> None:
    start = ports._ephemeral_start()
    for _ in range(50):
        port = free_port()
        assert 10_000 <= port < start
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", port))


def test_a_port_in_use_is_skipped_for_the_next_pick(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        taken = int(holder.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            spare = int(probe.getsockname()[1])
        choices = iter([taken, taken, spare])

        class Scripted:
            def randrange(self, low: int, high: int) -> int:
                return next(choices)

        monkeypatch.setattr(ports, "_pick", Scripted())
        monkeypatch.setattr(ports, "_ephemeral_start", lambda: 65_535)
        assert free_port() == spare


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: 1_024)
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
