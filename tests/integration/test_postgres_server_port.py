"""The test kit's private PostgreSQL moves to a fresh port when its port was taken.

Its port is picked free and bound a moment later; another process can take it in between,
and the whole SCP store suite then failed to set up.
"""

from __future__ import annotations

import os
import socket

import pytest

from mdp_testing.postgres_server import PostgresServer, PostgresServerUnavailable


def test_a_cluster_whose_port_was_taken_starts_on_a_fresh_port() -> None:
    server = PostgresServer()
    taken = server.port
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", taken))
            squatter.listen()
            try:
                server.start()
            except PostgresServerUnavailable as exc:
                if "no PostgreSQL binaries" in str(exc) and os.environ.get("CI", "") != "true":
                    pytest.skip(str(exc))
                raise
        assert server.port != taken
        assert server.create_database().startswith(
            f"postgresql://postgres@127.0.0.1:{server.port}/"
        )
    finally:
        server.stop()
