from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from mdp_core.clock import ManualClock
from mdp_runtime import Heartbeat

START = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)


class FakeStore:
    """Records SETs; can be told to fail or to hang."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any], int | None]] = []
        self.failure: Exception | None = None
        self.hang = False

    async def set(self, name: str, value: str, ex: int | None = None) -> bool:
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        self.writes.append((name, json.loads(value), ex))
        return True


def _heartbeat(
    store: FakeStore,
    clock: ManualClock,
    payload: Any = None,
    **overrides: Any,
) -> Heartbeat:
    options: dict[str, Any] = {
        "ttl_seconds": 15,
        "interval_seconds": 5.0,
        "payload": payload or (lambda: {"processed": 7}),
        "clock": clock,
        "service": "processor",
        "instance": "pod-1",
        "version": "0.1.0",
        **overrides,
    }
    return Heartbeat(store, "mdp:heartbeat:processor:pod-1", **options)


async def test_a_beat_writes_the_document_with_the_ttl() -> None:
    store, clock = FakeStore(), ManualClock(START)
    heartbeat = _heartbeat(store, clock)
    clock.advance(2.5)
    assert await heartbeat.beat() is True
    assert store.writes == [
        (
            "mdp:heartbeat:processor:pod-1",
            {
                "service": "processor",
                "instance": "pod-1",
                "pid": os.getpid(),
                "version": "0.1.0",
                "status": "running",
                "ts_ms": START_MS + 2_500,
                "started_ms": START_MS,
                "figures": {"processed": 7},
            },
            15,
        )
    ]
    assert heartbeat.beats_written == 1
    assert heartbeat.is_healthy()


async def test_status_comes_from_the_callable_or_the_override() -> None:
    store, clock = FakeStore(), ManualClock(START)
    heartbeat = _heartbeat(store, clock, status=lambda: "degraded")
    await heartbeat.beat()
    await heartbeat.beat(status="stopping")
    assert [document["status"] for _, document, _ in store.writes] == ["degraded", "stopping"]


@pytest.mark.parametrize(
    "failure", [ConnectionError("refused"), TimeoutError(), RuntimeError("cluster down")]
)
async def test_a_failed_write_is_counted_not_raised(failure: Exception) -> None:
    store, clock = FakeStore(), ManualClock(START)
    heartbeat = _heartbeat(store, clock)
    store.failure = failure
    assert await heartbeat.beat() is False
    assert await heartbeat.beat() is False
    assert heartbeat.write_errors == 2
    assert heartbeat.beats_written == 0
    assert not heartbeat.is_healthy()
    assert heartbeat.last_error is not None
    assert heartbeat.last_error.startswith(type(failure).__name__)
    store.failure = None
    assert await heartbeat.beat() is True
    assert heartbeat.is_healthy()
    assert heartbeat.snapshot() == {"beats_written": 1, "write_errors": 2, "payload_errors": 0}


async def test_a_hanging_write_times_out_and_counts_as_failed() -> None:
    store, clock = FakeStore(), ManualClock(START)
    heartbeat = _heartbeat(store, clock, write_timeout_seconds=0.01)
    store.hang = True
    assert await heartbeat.beat() is False
    assert heartbeat.last_error is not None
    assert heartbeat.last_error.startswith("TimeoutError")


async def test_a_broken_payload_still_beats_with_empty_figures() -> None:
    def broken() -> Mapping[str, object]:
        raise KeyError("counter")

    store, clock = FakeStore(), ManualClock(START)
    heartbeat = _heartbeat(store, clock, payload=broken)
    assert await heartbeat.beat() is True
    assert store.writes[0][1]["figures"] == {}
    assert heartbeat.snapshot()["payload_errors"] == 1


async def test_the_loop_beats_every_interval_of_the_clock_and_stops_with_a_final_beat() -> None:
    store, clock = FakeStore(), ManualClock(START)
    counter = {"processed": 0}
    heartbeat = _heartbeat(store, clock, payload=lambda: dict(counter))
    heartbeat.start()
    await asyncio.wait_for(heartbeat.wait_beats(1), 5)
    assert clock.pending_sleepers == 1  # parked until the clock moves: no beat in between
    counter["processed"] = 3
    clock.advance(5.0)
    await asyncio.wait_for(heartbeat.wait_beats(2), 5)
    await heartbeat.stop()
    statuses = [(doc["status"], doc["ts_ms"], doc["figures"]) for _, doc, _ in store.writes]
    assert statuses == [
        ("running", START_MS, {"processed": 0}),
        ("running", START_MS + 5000, {"processed": 3}),
        ("stopped", START_MS + 5000, {"processed": 3}),
    ]


class CancelLosingStore(FakeStore):
    """A write that loses the first cancel it gets, as redis-py's ``wait_for`` can on 3.11."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_next_cancel = False
        self.writing = asyncio.Event()
        self.cancels_lost = 0

    async def set(self, name: str, value: str, ex: int | None = None) -> bool:
        if self.lose_next_cancel:
            self.lose_next_cancel = False
            self.writing.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels_lost += 1  # not re-raised: the write goes on as if uncancelled
        return await super().set(name, value, ex)


async def test_a_stop_ends_the_loop_even_when_a_write_loses_the_cancel() -> None:
    store, clock = CancelLosingStore(), ManualClock(START)
    heartbeat = _heartbeat(store, clock, write_timeout_seconds=60.0)
    heartbeat.start()
    await asyncio.wait_for(heartbeat.wait_beats(1), 5)
    store.lose_next_cancel = True
    clock.advance(5.0)
    await asyncio.wait_for(store.writing.wait(), 5)
    # One cancel left the loop parked on the clock for ever; the bound keeps that finite.
    await asyncio.wait_for(heartbeat.stop(), 10)
    assert store.cancels_lost == 1
    assert [doc["status"] for _, doc, _ in store.writes] == ["running", "running", "stopped"]


async def test_starting_twice_is_refused() -> None:
    heartbeat = _heartbeat(FakeStore(), ManualClock(START))
    heartbeat.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            heartbeat.start()
    finally:
        await heartbeat.stop(final_status=None)


@pytest.mark.parametrize(
    ("ttl", "interval", "message"),
    [(5, 5.0, "must exceed interval_seconds"), (10, 0.0, "interval_seconds must be > 0")],
)
def test_a_ttl_that_would_lapse_between_beats_is_refused(
    ttl: int, interval: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _heartbeat(FakeStore(), ManualClock(START), ttl_seconds=ttl, interval_seconds=interval)
