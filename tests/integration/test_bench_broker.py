"""The bench reads RabbitMQ's own count of messages that expired unread (the MDQ's TTL loss)."""

from __future__ import annotations

import asyncio
import os
import time

import aio_pika
import msgspec
import pytest
from aiormq.abc import FieldTable

from mdp_core.envelope import encode_envelope
from mdp_platform.bench.broker import ExpiryCounter, expired_messages


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


async def _policies() -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "list_policies", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode()


async def test_expired_batches_are_read_back_and_their_events_counted(
    amqp_url: str, mdq_prefix: str
) -> None:
    """The policy dead-letters only the run's queues; the counter adds up their events."""
    counter = ExpiryCounter(amqp_url, mdq_prefix)
    if not await counter.start():
        reason = f"expiry not countable here: {counter.problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
        pytest.skip(reason)
    try:
        assert f"{mdq_prefix}expiry" in await _policies()
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            ttl: FieldTable = {"x-message-ttl": 1}
            ours = await channel.declare_queue(f"{mdq_prefix}A.0", arguments=ttl)
            # Not the run's: same TTL, no policy, so its expiries are not counted.
            other = await channel.declare_queue(f"x{mdq_prefix}A.0", arguments=ttl)
            for size in (3, 5):
                body = encode_envelope(
                    kind="A", source="test", batch=f"b{size}", received_ns=1,
                    events=[msgspec.Raw(b'{"ev":"A"}')] * size,
                )  # fmt: skip
                for queue in (ours, other):
                    await channel.default_exchange.publish(
                        aio_pika.Message(body), routing_key=queue.name
                    )
            await channel.default_exchange.publish(
                aio_pika.Message(b"not an envelope"), routing_key=ours.name
            )
            assert await counter.read(3, within=30.0)  # expiry is the broker's own time
            await channel.queue_delete(other.name)
        assert (counter.messages, counter.events, counter.unreadable) == (3, 8, 1)
    finally:
        await counter.stop()
    assert f"{mdq_prefix}expiry" not in await _policies()
    assert not counter.active


async def test_expiry_is_not_counted_for_a_broker_elsewhere() -> None:
    counter = ExpiryCounter("amqp://guest:guest@10.0.0.5:5672/", "benchx.")
    assert not await counter.start()
    assert "127.0.0.1:5672" in counter.problem
    await counter.stop()  # nothing to undo
