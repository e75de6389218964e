import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mdp_core.clock import ET, Clock, LiveClock, ManualClock, from_ns, sleep_or_wake, to_ns

START = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(LiveClock(), Clock)
    assert isinstance(ManualClock(START), Clock)


def test_to_ns_and_from_ns_round_trip_at_microsecond_precision() -> None:
    instant = datetime(2026, 11, 1, 5, 59, 59, 999_999, tzinfo=UTC)
    ns = to_ns(instant)
    assert ns == 1_793_512_799_999_999_000
    assert from_ns(ns) == instant
    assert from_ns(ns, ET).utcoffset() == timedelta(hours=-4)
    assert to_ns(42) == 42


def test_to_ns_accepts_any_aware_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert to_ns(datetime(2026, 1, 1, 2, tzinfo=plus_two)) == to_ns(
        datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_to_ns_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ns(datetime(2026, 1, 1))  # noqa: DTZ001


def test_live_clock_reads_utc() -> None:
    clock = LiveClock()
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs(clock.now_ns() - to_ns(now)) < 60 * 1_000_000_000
    first = clock.monotonic()
    assert clock.monotonic() >= first


async def test_live_clock_sleep_zero_returns() -> None:
    await LiveClock().sleep(0)
    await LiveClock().sleep(-1)


def test_manual_clock_starts_where_told_and_advances() -> None:
    clock = ManualClock(START)
    assert clock.now() == START
    assert clock.now_ns() == to_ns(START)
    assert clock.monotonic() == 0.0
    clock.advance(1.5)
    assert clock.now() == START + timedelta(seconds=1.5)
    assert clock.monotonic() == 1.5
    assert ManualClock(to_ns(START)).now() == START


def test_manual_clock_refuses_negative_advance() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ManualClock(START).advance(-1)


def test_manual_clock_set_backwards_keeps_monotonic() -> None:
    clock = ManualClock(START)
    clock.set(START + timedelta(seconds=10))
    assert clock.monotonic() == 10.0
    clock.set(START)
    assert clock.now() == START
    assert clock.monotonic() == 10.0


async def _loop_turns(turns: int = 100) -> None:
    """Give every ready task many loop turns (a count, not a time): one that could finish has."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def _until_parked(clock: ManualClock, count: int) -> None:
    async with asyncio.timeout(2):
        await clock.wait_for_sleepers(count)


async def test_manual_sleep_waits_for_advance_past_deadline() -> None:
    clock = ManualClock(START)
    task = asyncio.create_task(clock.sleep(5))
    await _until_parked(clock, 1)
    clock.advance(4.999)
    # advance() wakes due sleepers synchronously: one still parked was not woken.
    assert clock.pending_sleepers == 1
    await _loop_turns()
    assert not task.done()
    clock.advance(0.001)
    async with asyncio.timeout(2):
        await task
    assert clock.pending_sleepers == 0


async def test_manual_sleepers_wake_in_deadline_order() -> None:
    clock = ManualClock(START)
    woke: list[int] = []

    async def sleeper(seconds: int) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    tasks = [asyncio.create_task(sleeper(s)) for s in (3, 1, 2)]
    await _until_parked(clock, 3)
    clock.set(START + timedelta(seconds=10))
    async with asyncio.timeout(2):
        await asyncio.gather(*tasks)
    assert woke == [1, 2, 3]


async def test_cancelled_manual_sleeper_is_skipped() -> None:
    clock = ManualClock(START)
    task = asyncio.create_task(clock.sleep(1))
    await _until_parked(clock, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_sleepers == 0
    clock.advance(2)


async def test_manual_sleep_zero_does_not_park() -> None:
    clock = ManualClock(START)
    await clock.sleep(0)
    assert clock.pending_sleepers == 0


async def test_wait_for_sleepers_returns_at_once_when_already_parked() -> None:
    clock = ManualClock(START)
    task = asyncio.create_task(clock.sleep(1))
    await _until_parked(clock, 1)
    await _until_parked(clock, 1)
    clock.advance(1)
    async with asyncio.timeout(2):
        await task


async def test_sleep_or_wake_ends_on_the_clock_or_on_an_event() -> None:
    clock = ManualClock(0)
    wake = asyncio.Event()
    by_clock = asyncio.create_task(sleep_or_wake(clock, 5.0, wake))
    await clock.wait_for_sleepers(1)
    clock.advance(5.0)
    await asyncio.wait_for(by_clock, 5)

    by_event = asyncio.create_task(sleep_or_wake(clock, None, wake))
    await _loop_turns()
    assert not by_event.done()
    assert clock.pending_sleepers == 0  # without a deadline it waits on the event alone
    wake.set()
    await asyncio.wait_for(by_event, 5)
    assert clock.pending_sleepers == 0  # nothing left waiting on the clock
