"""Processors that own partitions (memory bus, memory ownership store).

Each processor consumes only its fair share of the partitions; every event of a symbol reaches
the one processor owning its partition; when a processor goes, the other takes its partitions
over and nothing is lost or read twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import ClassVar

import msgspec

from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import Output
from mdp_cache.ownership import MemoryOwnership, fair_share
from mdp_core.clock import ManualClock
from mdp_core.events import MarketEvent
from mdp_listener import Batcher
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import MemoryBus, Topology
from mdp_testing.conformance import aggregate, at_ms
from mdp_testing.widgets import MemoryWidgets

DAY = date(2026, 3, 4)
NOW_NS = at_ms(DAY, 10, 1) * 1_000_000
PARTITIONS = 4
SYMBOLS = [f"S{n:02d}" for n in range(40)]


class Seen:
    """An analyzer that records which symbols it was given, in order."""

    name: ClassVar[str] = "seen"
    consumes: ClassVar[frozenset[str]] = frozenset({"A"})

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    @property
    def symbols(self) -> list[str]:
        return [symbol for symbol, _ in self.events]

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        self.events.extend((event.symbol, event.event_time_ms) for event in inputs)

    def collect(self, now_ns: int) -> Output:
        return Output()


def processor(bus: MemoryBus, store: MemoryOwnership, name: str) -> tuple[Processor, Seen]:
    seen = Seen()
    config = ProcessorConfig(instance=name, ownership_interval_seconds=0.01, batch_messages=1)
    made = Processor(
        bus.consumer(),
        [seen],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=bus.clock,
        config=config,
        ownership=store,
    )
    return made, seen


async def publish(bus: MemoryBus, minute: int) -> None:
    publisher = bus.publisher()
    await publisher.start()
    batcher = Batcher(bus.topology, publisher, source="t", instance=f"m{minute}", batch_events=5)
    raws = [
        msgspec.Raw(msgspec.json.encode(aggregate(symbol, at_ms(DAY, 10, minute))))
        for symbol in SYMBOLS
    ]
    batcher.add("A", raws, received_ns=NOW_NS)
    batcher.flush()


async def test_partitions_are_shared_out_and_taken_over_when_an_owner_goes() -> None:
    bus = MemoryBus(Topology(partitions=PARTITIONS), clock=ManualClock(NOW_NS))
    store = MemoryOwnership()
    (a, seen_a), (b, seen_b) = processor(bus, store, "a"), processor(bus, store, "b")
    run_a, run_b = asyncio.create_task(a.run()), asyncio.create_task(b.run())
    members = ["a", "b"]
    async with asyncio.timeout(10):
        # Each one's share once both are known (a may take everything for a round first).
        await a.wait_until(lambda s: a.partitions == fair_share("a", members, PARTITIONS))
        await b.wait_until(lambda s: b.partitions == fair_share("b", members, PARTITIONS))
    assert a.partitions | b.partitions == set(range(PARTITIONS))
    assert not a.partitions & b.partitions

    await publish(bus, 0)
    async with asyncio.timeout(10):
        await b.wait_until(lambda s: a.stats.total_events + b.stats.total_events == len(SYMBOLS))
    topology = bus.topology
    assert {topology.partition(s) for s in seen_a.symbols} <= a.partitions
    assert {topology.partition(s) for s in seen_b.symbols} <= b.partitions
    assert sorted(seen_a.symbols + seen_b.symbols) == SYMBOLS

    # a goes: it writes what it took, gives its leases back, and its announcement expires.
    a.stop()
    await run_a
    store.expire("a")
    async with asyncio.timeout(10):
        await b.wait_until(lambda s: b.partitions == set(range(PARTITIONS)))
    assert b.stats.partitions_owned == PARTITIONS
    before = len(seen_b.events)
    await publish(bus, 1)
    async with asyncio.timeout(10):
        await b.wait_until(lambda s: len(seen_a.events) + len(seen_b.events) == 2 * len(SYMBOLS))
    assert sorted(symbol for symbol, _ in seen_b.events[before:]) == SYMBOLS
    everything = seen_a.events + seen_b.events
    assert len(set(everything)) == len(everything)  # nothing read twice
    b.stop()
    await run_b
