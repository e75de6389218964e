"""`mdp chaos`'s private RabbitMQ node boots on fresh ports when its port was taken.

The ports are picked free and bound seconds later; a node that lost one in between stopped
with ``eaddrinuse`` and the whole chaos run failed to set up.
"""

from __future__ import annotations

from pathlib import Path

import aio_pika
import pytest

from mdp_platform._chaos_infra import PrivateRabbit

pytestmark = pytest.mark.timeout(300)


@pytest.mark.usefixtures("rabbitmq_installed")
async def test_a_node_whose_port_was_taken_boots_on_fresh_ports(
    tmp_path: Path, taken_port: int
) -> None:
    rabbit = PrivateRabbit(tmp_path)
    rabbit.port = taken_port
    try:
        await rabbit.start()
        assert rabbit.port != taken_port
        connection = await aio_pika.connect(rabbit.url)
        await connection.close()
    finally:
        await rabbit.stop()
