from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from mdp_core.clock import ManualClock
from mdp_queues import DropReason, OutgoingBatch, Topology
from mdp_queues.outbox import Outbox

START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
TOPOLOGY = Topology()
TRADES = TOPOLOGY.for_kind("T")
assert TRADES is not None


def batch(clock: ManualClock, n: int, *, events: int = 10, size: int = 100) -> OutgoingBatch:
    return OutgoingBatch(
        queue=TRADES,  # type: ignore[arg-type]
        body=bytes([n % 256]) * size,
        batch_id=f"b{n}",
        received_ns=clock.now_ns(),
        events=events,
    )


def test_full_outbox_drops_the_oldest_and_counts_by_reason() -> None:
    clock = ManualClock(START)
    outbox = Outbox(max_messages=3, clock=clock)
    outbox.downstream_up = True
    for n in range(5):
        outbox.put(batch(clock, n))
    assert [outbox.pop().batch_id for _ in range(3)] == ["b2", "b3", "b4"]  # type: ignore[union-attr]
    assert outbox.stats.dropped_messages == {DropReason.OUTBOX_FULL: 2}
    assert outbox.stats.dropped_events == {DropReason.OUTBOX_FULL: 20}
    assert outbox.pop() is None


def test_drops_while_the_broker_is_down_are_blamed_on_the_broker() -> None:
    clock = ManualClock(START)
    outbox = Outbox(max_messages=1, clock=clock)
    outbox.downstream_up = False
    outbox.put(batch(clock, 1))
    outbox.put(batch(clock, 2))
    assert outbox.stats.dropped_messages == {DropReason.BROKER_DOWN: 1}


def test_byte_bound_drops_oldest_but_keeps_the_newest_batch() -> None:
    clock = ManualClock(START)
    outbox = Outbox(max_messages=100, max_bytes=250, clock=clock)
    for n in range(3):
        outbox.put(batch(clock, n, size=100))
    assert len(outbox) == 2
    assert outbox.queued_bytes == 200
    outbox.put(batch(clock, 9, size=1000))  # larger than the bound on its own
    assert len(outbox) == 1
    assert outbox.pop().batch_id == "b9"  # type: ignore[union-attr]


def test_pop_skips_and_counts_expired_batches() -> None:
    clock = ManualClock(START)
    outbox = Outbox(clock=clock)
    outbox.put(batch(clock, 1, events=7))
    clock.advance(6)
    outbox.put(batch(clock, 2))
    assert outbox.pop(max_age_seconds=5).batch_id == "b2"  # type: ignore[union-attr]
    assert outbox.stats.dropped_events == {DropReason.EXPIRED: 7}


async def test_wait_returns_once_something_is_put() -> None:
    clock = ManualClock(START)
    outbox = Outbox(clock=clock)
    waiter = asyncio.create_task(outbox.wait())
    for _ in range(100):  # many loop turns (a count, not a time): a waiter that could return has
        await asyncio.sleep(0)
    assert not waiter.done()
    outbox.put(batch(clock, 1))
    async with asyncio.timeout(1):
        await waiter


def test_drop_all_counts_everything_left() -> None:
    clock = ManualClock(START)
    outbox = Outbox(clock=clock)
    outbox.put(batch(clock, 1, events=3))
    outbox.put(batch(clock, 2, events=4))
    assert outbox.drop_all(DropReason.CLOSED) == 2
    assert outbox.stats.dropped_events == {DropReason.CLOSED: 7}
    assert outbox.queued_bytes == 0


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Outbox(max_messages=0)
