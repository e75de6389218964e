"""A consumer cancelled just as a delivery arrives stops, and leaves the delivery queued.

On Python 3.11 ``asyncio.wait_for`` returns the inner result when it completes in the same
loop turn as the cancel (CPython gh-86296): a processor's idle consumer, cancelled at its stop
as a message came in, took the message and read on, and the stop waited for the grace
period's hard cancel. The consumer waits with ``asyncio.timeout`` instead; this drives the
exact turn in which ``wait_for`` lost the cancel.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from mdp_queues import Topology
from mdp_queues.amqp import AmqpConsumer


async def test_a_cancel_in_the_turn_a_delivery_arrives_is_not_lost() -> None:
    topology = Topology()
    consumer = AmqpConsumer("amqp://guest:guest@127.0.0.1:1/", topology, check_seconds=60.0)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    waiting = asyncio.create_task(
        consumer._next(topology.market_queues[0], cast(Any, None), "tag", inbox)
    )
    for _ in range(3):  # a few loop turns: the consumer is parked on the empty inbox
        await asyncio.sleep(0)
    assert not waiting.done()
    delivery = object()
    inbox.put_nowait(delivery)  # the delivery and the stop's cancel in one turn
    waiting.cancel()
    done, _ = await asyncio.wait({waiting}, timeout=10)
    assert waiting in done
    assert waiting.cancelled()  # wait_for returned the delivery here: the cancel was lost
    assert inbox.get_nowait() is delivery  # left for whoever consumes next, not taken
