"""Compositions: concurrent per analyzer, each written once composed, on a cadence without drift."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import (
    FEED_QUOTE,
    FEED_SCANNER_TOP_GAINERS,
    FEED_SCANNER_TOP_VOLUME,
    KEY_COMPOSE_LEASE,
    Feed,
)
from mdp_cache.ops import (
    Applied,
    RankedMember,
    Read,
    StateBackend,
    StateOp,
    TopRead,
    UnionTopRead,
    WindowStatsRead,
)
from mdp_cache.widgets import WidgetItem
from mdp_core.clock import LiveClock, ManualClock
from mdp_processor.composition import Composition, CompositionStats
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.stats import ProcessorStats
from mdp_processor.worker import report_of
from mdp_queues import MemoryBus, Topology
from mdp_testing.widgets import MemoryWidgets

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


class Board:
    """A composing analyzer writing one document to ``feed`` per composition."""

    consumes: frozenset[str] = frozenset()

    def __init__(self, name: str, feed: Feed, *, extra: Sequence[WidgetWrite] = ()) -> None:
        self.name = name
        self.feed = feed
        self.compose_interval_ns = SECOND
        self.extra = list(extra)
        self.composed: list[int] = []
        self.read_at: list[int] = []

    def reads(self, now_ns: int) -> Sequence[Read]:
        self.read_at.append(now_ns)
        return [TopRead(f"board:{self.name}", f"rows:{self.name}", 10)]

    def compose(
        self, now_ns: int, answers: Sequence[Sequence[RankedMember]]
    ) -> Sequence[WidgetWrite]:
        self.composed.append(now_ns)
        payload = f'{{"as_of_ns":{now_ns}}}'.encode()
        return [WidgetWrite(self.feed, self.feed.name(), payload), *self.extra]


class Leases:
    """Answers leases and reads; a read of a held board waits, a failing board's read fails."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.failing: set[str] = set()
        self.held: dict[str, asyncio.Event] = {}
        self.leases: list[tuple[str, str, int]] = []
        #: While set (not yet released), lease answers wait for it; a lease for a key in
        #: ``lease_failing`` fails (Redis unreachable).
        self.lease_gate: asyncio.Event | None = None
        self.lease_failing: set[str] = set()
        #: What happened, in order: ("lease", key) when a lease was answered, ("read", reads).
        self.log: list[tuple[str, object]] = []
        self.read_seen = asyncio.Event()

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> Applied:
        return Applied()

    async def seen(self, marks: Sequence[str]) -> set[str]:
        return set()

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        self.leases.append((key, holder, ttl_ms))
        if self.lease_gate is not None:
            await self.lease_gate.wait()
        if key in self.lease_failing:
            raise RedisConnectionError("connection refused")
        self.log.append(("lease", key))
        return key not in self.refused

    async def top(self, reads: Sequence[Read]) -> list[list[RankedMember]]:
        self.log.append(("read", tuple(reads)))
        self.read_seen.set()
        if not isinstance(reads[0], TopRead):
            return [[] for _ in reads]
        board = reads[0].board_key.removeprefix("board:")
        if board in self.failing:
            raise RedisConnectionError("connection refused")
        if board in self.held:
            await self.held[board].wait()
        return [[]]


class Signalling(MemoryWidgets):
    """Memory widgets that tell when a write landed."""

    def __init__(self) -> None:
        super().__init__()
        self.landed = asyncio.Event()

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        count = await super().write(writes)
        self.landed.set()
        return count


class Failing(MemoryWidgets):
    """Memory widgets whose next ``failures`` writes fail (Redis unreachable)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.sent: list[list[WidgetItem]] = []

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        self.sent.append(list(writes))
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("connection reset")
        return await super().write(writes)


async def landed(sink: Signalling, stats: CompositionStats, count: int) -> None:
    """Wait (bounded) until ``count`` compositions were written."""
    async with asyncio.timeout(5):
        while stats.compositions < count:
            sink.landed.clear()
            await sink.landed.wait()


def composition(
    boards: Sequence[Board],
    state: Leases,
    sink: MemoryWidgets,
    clock: Any = None,
    **options: Any,
) -> tuple[Composition, CompositionStats]:
    stats = CompositionStats()
    return (
        Composition(
            cast(Any, boards),
            state=cast(StateBackend, state),
            widgets=sink,
            clock=clock or ManualClock(T0),
            instance="mdp-7",
            counts=stats,
            **options,
        ),
        stats,
    )


def as_of(sink: MemoryWidgets, feed: Feed) -> int | None:
    if feed.name() not in sink.store.values:
        return None
    return int(sink.store.document(feed.name())["as_of_ns"])


async def test_each_board_is_written_as_soon_as_it_is_composed_not_after_the_slowest() -> None:
    state, sink = Leases(), Signalling()
    slow, fast = Board("slow", FEED_SCANNER_TOP_GAINERS), Board("fast", FEED_SCANNER_TOP_VOLUME)
    state.held["slow"] = asyncio.Event()
    compose, stats = composition([slow, fast], state, sink)
    running = asyncio.create_task(compose.compose(T0))
    async with asyncio.timeout(5):
        await sink.landed.wait()
    assert as_of(sink, FEED_SCANNER_TOP_VOLUME) == T0
    assert as_of(sink, FEED_SCANNER_TOP_GAINERS) is None  # its read is still held
    assert stats.compositions == 1
    state.held["slow"].set()
    assert await running == 2
    assert as_of(sink, FEED_SCANNER_TOP_GAINERS) == T0
    assert stats.compositions == 2
    assert state.leases == [
        (KEY_COMPOSE_LEASE.name(analyzer="slow"), "mdp-7", (KEY_COMPOSE_LEASE.ttl or 0) * 1000),
        (KEY_COMPOSE_LEASE.name(analyzer="fast"), "mdp-7", (KEY_COMPOSE_LEASE.ttl or 0) * 1000),
    ]


async def test_the_cadence_keeps_its_beat_and_a_stall_is_not_made_up_for() -> None:
    board = Board("volume", FEED_SCANNER_TOP_VOLUME)
    compose, _ = composition([board], Leases(), MemoryWidgets())
    assert compose.next_due_ns() == 0  # due at once
    assert compose.due(T0)
    assert await compose.compose(T0) == 1
    assert board.read_at == [T0]
    assert compose.next_due_ns() == T0 + SECOND
    assert not compose.due(T0 + SECOND - 1)
    assert compose.due(T0 + SECOND)
    assert await compose.compose(T0 + SECOND - 1) == 0
    # Late by 0.3 s: the next is still due on the beat, not 1 s after this late one.
    assert await compose.compose(T0 + 1_300_000_000) == 1
    assert compose.next_due_ns() == T0 + 2 * SECOND
    # Exactly one interval late: still on the beat.
    assert await compose.compose(T0 + 3 * SECOND) == 1
    assert compose.next_due_ns() == T0 + 4 * SECOND
    # A stall of several intervals: one composition, then an interval from now.
    assert await compose.compose(T0 + 7_500_000_000) == 1
    assert compose.next_due_ns() == T0 + 8_500_000_000
    assert board.composed == [T0, T0 + 1_300_000_000, T0 + 3 * SECOND, T0 + 7_500_000_000]


async def test_a_failed_read_is_counted_and_the_other_boards_still_land() -> None:
    state, sink = Leases(), MemoryWidgets()
    state.failing.add("gainers")
    gainers = Board("gainers", FEED_SCANNER_TOP_GAINERS)
    volume = Board("volume", FEED_SCANNER_TOP_VOLUME)
    compose, stats = composition([gainers, volume], state, sink)
    assert await compose.compose(T0) == 1
    assert (stats.compositions, stats.write_failures) == (1, 1)
    assert as_of(sink, FEED_SCANNER_TOP_VOLUME) == T0
    assert as_of(sink, FEED_SCANNER_TOP_GAINERS) is None
    # Not retried before its next beat; then it lands.
    state.failing.clear()
    assert await compose.compose(T0 + SECOND // 2) == 0
    assert await compose.compose(T0 + SECOND) == 2
    assert as_of(sink, FEED_SCANNER_TOP_GAINERS) == T0 + SECOND


@pytest.mark.parametrize(("lease", "failures"), [("held elsewhere", 0), ("unreachable", 1)])
async def test_a_lease_held_elsewhere_or_unreachable_composes_nothing(
    lease: str, failures: int
) -> None:
    state, sink = Leases(), MemoryWidgets()
    key = KEY_COMPOSE_LEASE.name(analyzer="volume")
    (state.refused if lease == "held elsewhere" else state.lease_failing).add(key)
    board = Board("volume", FEED_SCANNER_TOP_VOLUME)
    compose, stats = composition([board], state, sink)
    assert await compose.compose(T0) == 0
    assert board.composed == []
    assert sink.store.values == {}
    # The board read had gone out beside the lease; only a failure is counted.
    answered = ["lease", "read"] if failures == 0 else ["read"]
    assert sorted(kind for kind, _ in state.log) == answered
    assert (stats.compositions, stats.write_failures) == (0, failures)


class TakingBoard(Board):
    """Reads like the top trades: a union that only looks, and the changed windows it takes."""

    def reads(self, now_ns: int) -> Sequence[Read]:
        self.read_at.append(now_ns)
        return [UnionTopRead(("bucket:1",), 10), WindowStatsRead(100)]


async def test_reads_that_only_look_go_beside_the_lease_one_wait_for_both() -> None:
    state, sink = Leases(), MemoryWidgets()
    state.lease_gate = asyncio.Event()  # Redis is slow to answer the lease
    board = Board("volume", FEED_SCANNER_TOP_VOLUME)
    compose, stats = composition([board], state, sink)
    running = asyncio.create_task(compose.compose(T0))
    async with asyncio.timeout(5):
        await state.read_seen.wait()
    # The read went out while the lease was still unanswered.
    assert state.log == [("read", (TopRead("board:volume", "rows:volume", 10),))]
    assert board.composed == []
    state.lease_gate.set()
    assert await running == 1
    assert state.log[1] == ("lease", KEY_COMPOSE_LEASE.name(analyzer="volume"))
    assert board.composed == [T0]
    assert as_of(sink, FEED_SCANNER_TOP_VOLUME) == T0
    assert (stats.compositions, stats.write_failures) == (1, 0)


async def test_reads_that_take_state_wait_for_the_lease_and_take_nothing_without_it() -> None:
    lease = KEY_COMPOSE_LEASE.name(analyzer="trades")
    state, sink = Leases(), MemoryWidgets()
    board = TakingBoard("trades", FEED_SCANNER_TOP_VOLUME)
    compose, stats = composition([board], state, sink)
    assert await compose.compose(T0) == 1
    # One read takes the changed windows: the lease first, then the reads.
    assert state.leases == [(lease, "mdp-7", (KEY_COMPOSE_LEASE.ttl or 0) * 1000)]
    assert state.log == [
        ("lease", lease),
        ("read", (UnionTopRead(("bucket:1",), 10), WindowStatsRead(100))),
    ]
    state.refused.add(lease)  # another replica holds it now
    state.log.clear()
    assert await compose.compose(T0 + SECOND) == 0
    assert state.log == [("lease", lease)]  # nothing was read, so nothing was taken
    assert board.composed == [T0]
    assert (stats.compositions, stats.write_failures) == (1, 0)


async def test_a_failed_lease_waits_for_the_read_beside_it_before_the_composition_ends() -> None:
    # Nothing is left running behind a failed composition (its read would land unawaited).
    state, sink = Leases(), MemoryWidgets()
    state.lease_failing.add(KEY_COMPOSE_LEASE.name(analyzer="volume"))
    state.held["volume"] = asyncio.Event()  # the read is slow to answer
    compose, stats = composition([Board("volume", FEED_SCANNER_TOP_VOLUME)], state, sink)
    running = asyncio.create_task(compose.compose(T0))
    async with asyncio.timeout(5):
        await state.read_seen.wait()
    for _ in range(20):  # the lease has failed by now; the composition still waits
        await asyncio.sleep(0)
    assert not running.done()
    assert stats.write_failures == 0
    state.held["volume"].set()
    assert await running == 0
    assert (stats.compositions, stats.write_failures) == (0, 1)


async def test_a_write_with_a_name_outside_its_feed_is_dropped_and_counted() -> None:
    bad = WidgetWrite(FEED_QUOTE, "quote:has space", b"{}")
    good = WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol="AAA"), b'{"p":1}')
    board = Board("volume", FEED_SCANNER_TOP_VOLUME, extra=[bad, good])
    sink = MemoryWidgets()
    compose, stats = composition([board], Leases(), sink)
    assert await compose.compose(T0) == 1
    assert stats.bad_writes == 1
    assert set(sink.store.values) == {FEED_SCANNER_TOP_VOLUME.name(), FEED_QUOTE.name(symbol="AAA")}


async def test_run_composes_on_its_cadence_until_stopped() -> None:
    sink = Signalling()
    board = Board("volume", FEED_SCANNER_TOP_VOLUME)
    board.compose_interval_ns = SECOND // 100
    compose, stats = composition([board], Leases(), sink, clock=LiveClock())
    stop = asyncio.Event()
    running = asyncio.create_task(compose.run(stop))
    await landed(sink, stats, 3)
    stop.set()
    async with asyncio.timeout(5):
        await running
    assert len(board.composed) >= 3
    assert board.composed == sorted(board.composed)


async def test_without_composing_analyzers_run_waits_for_the_stop() -> None:
    compose, _ = composition([], Leases(), MemoryWidgets())
    assert compose.next_due_ns() is None
    assert not compose.due(T0)
    stop = asyncio.Event()
    running = asyncio.create_task(compose.run(stop))
    await asyncio.sleep(0)
    assert not running.done()
    stop.set()
    async with asyncio.timeout(5):
        await running


def test_a_worker_reports_its_composer_threads_counts_with_its_processors() -> None:
    stats = ProcessorStats(compositions=2, write_failures=3, bad_writes=4, flushes=5)
    report = report_of(stats, CompositionStats(compositions=7, write_failures=1, bad_writes=2))
    assert (report["compositions"], report["write_failures"], report["bad_writes"]) == (9, 4, 6)
    assert report["flushes"] == 5


class OnceAnnounced(Board):
    """Announces its document only when it changed, as the router and the top trades do."""

    def __init__(self) -> None:
        super().__init__("halts", FEED_SCANNER_TOP_GAINERS)
        self.last: bytes | None = None
        self.content = b"[]"

    def compose(
        self, now_ns: int, answers: Sequence[Sequence[RankedMember]]
    ) -> Sequence[WidgetWrite]:
        self.composed.append(now_ns)
        fresh = self.content != self.last
        self.last = self.content
        payload = b'{"as_of_ns":%d,"halted":%s}' % (now_ns, self.content)
        return [WidgetWrite(self.feed, self.feed.name(), payload, publish=fresh, version=now_ns)]


async def test_a_failed_write_goes_out_with_the_next_composition_still_announced() -> None:
    board = OnceAnnounced()
    sink = Failing(failures=1)
    compose, stats = composition([board], Leases(), sink)
    board.content = b'["AAA"]'
    assert await compose.compose(T0) == 0
    assert (stats.compositions, stats.write_failures) == (0, 1)
    assert sink.store.values == {}
    # Nothing changed since: the composer announces nothing, but the unsent change must be.
    assert await compose.compose(T0 + SECOND) == 1
    assert len(sink.sent[-1]) == 1
    (sent,) = sink.sent[-1]
    assert sent.publish is True
    assert sent.payload == b'{"as_of_ns":%d,"halted":["AAA"]}' % (T0 + SECOND)
    assert sink.store.document(FEED_SCANNER_TOP_GAINERS.name())["halted"] == ["AAA"]
    # Sent once: the next composition carries only its own document, unannounced.
    assert await compose.compose(T0 + 2 * SECOND) == 1
    assert [w.publish for w in sink.sent[-1]] == [False]


async def test_writes_left_unsent_keep_their_names_when_the_next_composition_differs() -> None:
    extra = WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol="AAA"), b'{"p":1}')
    board = Board("volume", FEED_SCANNER_TOP_VOLUME, extra=[extra])
    sink = Failing(failures=1)
    compose, _ = composition([board], Leases(), sink)
    assert await compose.compose(T0) == 0
    board.extra = []  # the next composition has no word on AAA
    assert await compose.compose(T0 + SECOND) == 1
    assert {w.name for w in sink.sent[-1]} == {FEED_SCANNER_TOP_VOLUME.name(), extra.name}
    assert as_of(sink, FEED_SCANNER_TOP_VOLUME) == T0 + SECOND
    assert sink.store.document(extra.name) == {"p": 1}


async def test_in_its_loop_a_slow_board_never_delays_the_next_turn_of_another() -> None:
    state, sink = Leases(), Signalling()
    slow, fast = Board("slow", FEED_SCANNER_TOP_GAINERS), Board("fast", FEED_SCANNER_TOP_VOLUME)
    for board in (slow, fast):
        board.compose_interval_ns = SECOND // 100
    state.held["slow"] = asyncio.Event()
    compose, stats = composition([slow, fast], state, sink, clock=LiveClock())
    stop = asyncio.Event()
    running = asyncio.create_task(compose.run(stop))
    await landed(sink, stats, 3)
    assert len(fast.composed) >= 3
    assert slow.composed == []  # still waiting on its first read
    stop.set()
    state.held["slow"].set()
    async with asyncio.timeout(5):
        await running


async def test_a_processor_told_not_to_compose_still_synchronises_but_writes_no_board() -> None:
    clock = ManualClock(T0)
    bus = MemoryBus(Topology(), clock=clock)
    sink = MemoryWidgets()
    processor = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=sink,
        clock=clock,
        config=ProcessorConfig(compose=False),
    )
    assert processor.composition is None
    await processor.compose_now()
    assert processor.stats.synchronisations == 2  # the leaderboard and the router
    assert processor.stats.compositions == 0
    assert sink.store.values == {}
    composing = Processor(
        bus.consumer(),
        [LeaderboardAnalyzer(), MassiveDataAnalyzer()],
        state=MemoryState(),
        widgets=MemoryWidgets(),
        clock=clock,
    )
    assert composing.composition is not None
    await composing.compose_now()
    assert composing.stats.compositions >= 1


async def test_each_board_keeps_its_own_next_turn() -> None:
    slow, fast = Board("slow", FEED_SCANNER_TOP_GAINERS), Board("fast", FEED_SCANNER_TOP_VOLUME)
    slow.compose_interval_ns = 3 * SECOND
    compose, _ = composition([slow, fast], Leases(), MemoryWidgets())
    assert await compose.compose(T0) == 2
    assert compose.next_due_ns() == T0 + SECOND
    assert await compose.compose(T0 + SECOND) == 1
    assert (slow.composed, fast.composed) == ([T0], [T0, T0 + SECOND])
    assert compose.next_due_ns() == T0 + 2 * SECOND
    assert await compose.compose(T0 + 3 * SECOND) == 2
    assert compose.next_due_ns() == T0 + 4 * SECOND


async def test_failures_and_bad_writes_accumulate_and_are_logged_by_analyzer() -> None:
    long_bad = "quote:" + "x y" * 40
    bad = WidgetWrite(FEED_QUOTE, long_bad, b"{}")
    good = WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol="AAA"), b'{"p":1}')
    board = Board("volume", FEED_SCANNER_TOP_VOLUME, extra=[good, bad])
    state = Leases()
    compose, stats = composition([board], state, MemoryWidgets())
    with structlog.testing.capture_logs() as logs:
        assert await compose.compose(T0) == 1
        assert await compose.compose(T0 + SECOND) == 1
        state.failing.add("volume")
        assert await compose.compose(T0 + 2 * SECOND) == 0
        assert await compose.compose(T0 + 3 * SECOND) == 0
    assert (stats.bad_writes, stats.write_failures, stats.compositions) == (2, 2, 2)
    bad_logs = [e for e in logs if e["event"] == "bad_widget_write"]
    assert bad_logs[0] == {
        "event": "bad_widget_write",
        "log_level": "warning",
        "analyzer": "volume",
        "name": long_bad[:80],
    }
    failed = [e for e in logs if e["event"] == "compose_failed"]
    assert len(failed) == 2
    assert failed[0]["analyzer"] == "volume"
    assert failed[0]["log_level"] == "warning"
    assert "ConnectionError" in failed[0]["error"]


async def test_a_composition_slower_than_its_lease_is_abandoned_and_counted() -> None:
    state, sink = Leases(), MemoryWidgets()
    state.held["volume"] = asyncio.Event()  # never released
    board = Board("volume", FEED_SCANNER_TOP_VOLUME)
    compose, stats = composition([board], state, sink, lease_ms=20)
    async with asyncio.timeout(5):
        assert await compose.compose(T0) == 0
    assert (stats.compositions, stats.write_failures) == (0, 1)
    assert state.leases == [(KEY_COMPOSE_LEASE.name(analyzer="volume"), "mdp-7", 20)]
    assert sink.store.values == {}


async def test_unsent_writes_merge_with_new_ones_by_name_keeping_announcements_right() -> None:
    def write(name: str, version: int, *, publish: bool) -> WidgetWrite:
        return WidgetWrite(FEED_QUOTE, FEED_QUOTE.name(symbol=name), b"{}", publish, version)

    first = [write("AAA", 1, publish=True), write("BBB", 1, publish=False)]
    board = Board("volume", FEED_SCANNER_TOP_VOLUME, extra=first)
    sink = Failing(failures=1)
    compose, _ = composition([board], Leases(), sink)
    assert await compose.compose(T0) == 0
    board.extra = [
        write("AAA", 2, publish=False),  # announced before: stays announced
        write("BBB", 2, publish=False),  # never announced: stays quiet
        write("CCC", 2, publish=False),  # new, quiet
    ]
    assert await compose.compose(T0 + SECOND) == 1
    sent = {item.name: (item.version, item.publish) for item in sink.sent[-1]}
    assert sent == {
        FEED_SCANNER_TOP_VOLUME.name(): (None, True),
        FEED_QUOTE.name(symbol="AAA"): (2, True),
        FEED_QUOTE.name(symbol="BBB"): (2, False),
        FEED_QUOTE.name(symbol="CCC"): (2, False),
    }


async def test_run_gives_each_board_a_named_task_and_waits_for_them_at_the_stop() -> None:
    state, sink = Leases(), Signalling()
    slow, fast = Board("slow", FEED_SCANNER_TOP_GAINERS), Board("fast", FEED_SCANNER_TOP_VOLUME)
    state.held["slow"] = asyncio.Event()
    compose, _ = composition([slow, fast], state, sink, clock=LiveClock())
    stop = asyncio.Event()
    running = asyncio.create_task(compose.run(stop))
    async with asyncio.timeout(5):
        await sink.landed.wait()

    def beats() -> set[str]:
        return {
            task.get_name()
            for task in asyncio.all_tasks()
            if task.get_name().startswith("compose ") and not task.done()
        }

    assert beats() == {"compose slow", "compose fast"}
    stop.set()
    state.held["slow"].set()
    async with asyncio.timeout(5):
        await running
    assert beats() == set()  # the run ended only after both beats had
    assert slow.composed  # the held composition finished, not cut off
