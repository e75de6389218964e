"""The bench reads RabbitMQ's own count of messages that expired unread (the MDQ's TTL loss)."""

from __future__ import annotations

import asyncio
import os
import time

import aio_pika
import pytest

from mdp_platform.bench.broker import expired_messages


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@10.0.0.5:5672/",  # not this machine
        "amqp://guest:guest@127.0.0.1:5673/",  # not the default node's port
    ],
)
async def test_a_broker_that_is_not_the_local_default_node_is_not_read(url: str) -> None:
    assert await expired_messages(url) is None


async def test_messages_expiring_unread_in_a_ttl_queue_are_counted(
    amqp_url: str, mdq_prefix: str
) -> None:
    before = await expired_messages(amqp_url)
    if before is None:
        reason = "rabbitmqctl or the broker on 127.0.0.1:5672 is not available"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
        pytest.skip(reason)
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"{mdq_prefix}expiring", auto_delete=False, arguments={"x-message-ttl": 1}
        )
        for n in range(3):
            await channel.default_exchange.publish(
                aio_pika.Message(b"batch %d" % n), routing_key=queue.name
            )
        # Expiry is the broker's: poll its counter (a predicate with a deadline, no fixed wait).
        deadline = time.monotonic() + 30.0
        after: int | None = before
        while after is not None and after - before < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            after = await expired_messages(amqp_url)
        assert after is not None
        assert after - before >= 3  # broker-wide: other clients' expiries may add to it
        assert (
            await channel.declare_queue(queue.name, passive=True)
        ).declaration_result.message_count == 0
