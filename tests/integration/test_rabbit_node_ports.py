"""A private RabbitMQ node whose port was taken before it bound it moves to fresh ports.

Ports are picked free and bound by the node seconds later; a node that lost its port in
between stopped with ``eaddrinuse`` and its cluster's start failed two minutes later, when
``rabbitmqctl wait`` gave up. It now fails within one wait slice and starts again elsewhere.
"""

from __future__ import annotations

import os
import socket

import pytest

from mdp_testing.rabbitmq_cluster import RabbitCluster, RabbitClusterUnavailable

pytestmark = pytest.mark.timeout(300)


def test_a_node_whose_port_was_taken_starts_on_fresh_ports() -> None:
    cluster = RabbitCluster(size=1)
    node = cluster.nodes[0]
    taken = node.amqp_port
    squatter = socket.socket()
    try:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            cluster.start_sync()
        except RabbitClusterUnavailable as exc:
            if "not installed" in str(exc) and os.environ.get("CI", "") != "true":
                pytest.skip(str(exc))
            raise
        assert node.amqp_port != taken
        assert cluster.running_nodes(node) == [node.name]
    finally:
        squatter.close()
        cluster.close()
