"""A private RabbitMQ node whose port was taken before it bound it moves to fresh ports.

Ports are picked free and bound by the node seconds later; a node that lost its port in
between stopped with ``eaddrinuse`` and its cluster's start failed two minutes later, when
``rabbitmqctl wait`` gave up. It now fails within one wait slice and starts again elsewhere.
"""

from __future__ import annotations

import pytest

from mdp_testing.rabbitmq_cluster import RabbitCluster

pytestmark = pytest.mark.timeout(300)


@pytest.mark.usefixtures("rabbitmq_installed")
def test_a_node_whose_port_was_taken_starts_on_fresh_ports(taken_port: int) -> None:
    cluster = RabbitCluster(size=1)
    node = cluster.nodes[0]
    node.amqp_port = taken_port
    try:
        cluster.start_sync()
        assert node.amqp_port != taken_port
        assert cluster.running_nodes(node) == [node.name]
    finally:
        cluster.close()
