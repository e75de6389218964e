"""The test kit's private PostgreSQL moves to a fresh port when its port was taken.

Its port is picked free and bound a moment later; another process can take it in between,
and the whole SCP store suite then failed to set up.
"""

from __future__ import annotations

import pytest

from mdp_testing.postgres_server import PostgresServer


@pytest.mark.usefixtures("postgres_installed")
def test_a_cluster_whose_port_was_taken_starts_on_a_fresh_port(taken_port: int) -> None:
    server = PostgresServer()
    server.port = taken_port
    try:
        server.start()
        assert server.port != taken_port
        assert server.create_database().startswith(
            f"postgresql://postgres@127.0.0.1:{server.port}/"
        )
    finally:
        server.stop()
