"""Board composition: the composing analyzers' documents, on their cadence, by the lease holder.

A composition reads the state every replica merged into MDC and writes documents to WDC: a
lease renewal, a few reads and one write per analyzer, milliseconds of work. What made it late
was waiting. On the processor's event loop each of those awaits resumed only between the
flush's synchronous stretches (row building, pipeline packing), which last 0.4-0.8 s each when
10,000 symbols change under saturation: a composition took 2-3 s, the lease even moved between
replicas for want of a timely renewal, and clients saw boards freeze for 3-5 s exactly when the
market was busiest. So a worker composes in a thread of its own (:class:`ComposerThread`), with
its own event loop and Redis connections: the interpreter lock reaches that thread within a
switch interval (5 ms) while the flush runs Python code (a long call into C, such as encoding
a whole pipeline, or a full garbage collection, still holds both threads).

Each analyzer composes on its own beat and writes as soon as it has composed, so a slow read of
one (the top trades' union of buckets) never holds back another's board. A failed composition
is counted; its writes go out with the analyzer's next composition (newest per name), since
a composer may have read something only once (the trade windows that changed) or remember
what it sent (the halts document).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Final, Protocol

from msgspec.structs import replace

from mdp_analyzers.typing import Analyzer, Composer, WidgetWrite
from mdp_cache.keys import KEY_COMPOSE_LEASE
from mdp_cache.ops import RankedMember, Read, StateBackend, takes_state
from mdp_cache.widgets import WidgetItem
from mdp_core.clock import Clock
from mdp_core.events import MarketEvent
from mdp_core.logging import get_logger

__all__ = [
    "ComposerThread",
    "Composition",
    "CompositionCounts",
    "CompositionStats",
    "WidgetSink",
    "valid_writes",
]

_log = get_logger(__name__)
_NS_PER_SECOND = 1_000_000_000
_LEASE_MS: Final = (KEY_COMPOSE_LEASE.ttl or 2) * 1000


class WidgetSink(Protocol):
    """**Protocol:** where widget writes go (``mdp_cache.widgets.WidgetWriter`` fits)."""

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        """Write the batch (one pipeline); return the number of commands."""
        ...


class CompositionCounts(Protocol):
    """**Protocol:** the counters a composition moves (``ProcessorStats`` has them)."""

    compositions: int
    write_failures: int
    bad_writes: int


@dataclass(slots=True)
class CompositionStats:
    """Counters of a composer thread (the worker adds them to its processor's).

    Attributes:
        compositions: Analyzer compositions written (this replica held the analyzer's lease).
        write_failures: Compositions that failed (Redis unreachable, slower than the lease);
            their documents go out with the analyzer's next composition.
        bad_writes: Widget writes dropped because their name is not one of their feed's.
    """

    compositions: int = 0
    write_failures: int = 0
    bad_writes: int = 0


def valid_writes(
    analyzer: str, writes: Sequence[WidgetWrite], counts: CompositionCounts
) -> list[WidgetWrite]:
    """The writes whose name belongs to their feed; the others are counted and dropped.

    One bad name (a symbol that cannot be part of a feed name) must not fail a whole pipeline.
    """
    valid = [write for write in writes if write.feed.matches(write.name)]
    if len(valid) != len(writes):
        counts.bad_writes += len(writes) - len(valid)
        bad = next(write.name for write in writes if not write.feed.matches(write.name))
        _log.warning("bad_widget_write", analyzer=analyzer, name=bad[:80])
    return valid


class Composition:
    """Composes every :class:`~mdp_analyzers.typing.Composer` analyzer when it is due.

    Args:
        analyzers: The processor's analyzers; those that compose are taken. Their
            ``reads``/``compose`` may run on another thread than their ``consume``/``collect``
            (see :class:`~mdp_analyzers.typing.Composer`).
        state: MDC: the leases and the reads.
        widgets: WDC.
        clock: Source of ``now``.
        instance: This replica's id (the lease holder's name).
        counts: Where compositions, failures and bad writes are counted.
        lease_ms: How long a composition's lease lasts, and so how long one may take.
    """

    def __init__(
        self,
        analyzers: Sequence[Analyzer[MarketEvent]],
        *,
        state: StateBackend,
        widgets: WidgetSink,
        clock: Clock,
        instance: str,
        counts: CompositionCounts,
        lease_ms: int = _LEASE_MS,
    ) -> None:
        self.composers: list[tuple[str, Composer]] = [
            (analyzer.name, analyzer) for analyzer in analyzers if isinstance(analyzer, Composer)
        ]
        self.state = state
        self.widgets = widgets
        self.clock = clock
        self.instance = instance
        self.counts = counts
        self.lease_ms = lease_ms
        # By position in ``composers``: when each is due next, and the writes of a failed
        # composition, sent again with its next one.
        self._next: dict[int, int] = {}
        self._unsent: dict[int, dict[str, WidgetWrite]] = {}

    def due(self, now_ns: int) -> bool:
        """Whether some analyzer's composition is due at ``now_ns``."""
        return any(now_ns >= self._next.get(index, 0) for index in range(len(self.composers)))

    def next_due_ns(self) -> int | None:
        """When the next composition is due (None: no analyzer composes)."""
        return min((self._next.get(index, 0) for index in range(len(self.composers))), default=None)

    def _take_turn(self, index: int, now_ns: int) -> bool:
        """Whether composer ``index`` is due at ``now_ns``; if so, plan its next turn.

        The next turn is an interval after this one was due, or an interval from now when this
        one is over an interval late (a stall is not made up for).
        """
        planned = self._next.get(index, 0)
        if now_ns < planned:
            return False
        interval = self.composers[index][1].compose_interval_ns
        following = planned + interval
        self._next[index] = following if now_ns < following else now_ns + interval
        return True

    async def compose(self, now_ns: int) -> int:
        """Compose and write every composition due at ``now_ns``, concurrently; how many landed."""
        due = [index for index in range(len(self.composers)) if self._take_turn(index, now_ns)]
        if not due:
            return 0
        landed = await asyncio.gather(*(self._one(index, now_ns) for index in due))
        return sum(landed)

    async def _one(self, index: int, now_ns: int) -> int:
        """One analyzer's composition, written; 1 if it landed, 0 if not held or failed.

        Bounded by the lease: a composition slower than that is abandoned (another replica
        may hold the lease by then, and a stop must not wait on an unreachable Redis).
        """
        name, analyzer = self.composers[index]
        writes: list[WidgetWrite] = []
        try:
            async with asyncio.timeout(self.lease_ms / 1000):
                lease = KEY_COMPOSE_LEASE.name(analyzer=name)
                reads = analyzer.reads(now_ns)
                answers: Sequence[Sequence[RankedMember]]
                if any(takes_state(read) for read in reads):
                    if not await self.state.hold_lease(lease, self.instance, self.lease_ms):
                        return 0
                    answers = await self.state.top(reads)
                else:
                    # Reads that only look go beside the lease renewal: one wait for Redis
                    # instead of two, which under saturation is 0.1-0.5 s each.
                    held, answers = await self._lease_and_read(lease, reads)
                    if not held:
                        return 0
                composed = valid_writes(name, analyzer.compose(now_ns, answers), self.counts)
                writes = _coalesced(self._unsent.pop(index, {}), composed)
                if writes:
                    await self.widgets.write(writes)
        except Exception as exc:
            # Redis unreachable, too slow, or a bug in one analyzer: counted, and the next
            # composition, an interval later, tries again. What it composed is sent with that
            # one: a composer may have read things only once (the trade windows that changed)
            # or remember what it sent (the halts), and the writes are versioned, so a newer
            # document of the same name replaces an older one.
            if writes:
                self._unsent[index] = {write.name: write for write in writes}
            self.counts.write_failures += 1
            _log.warning("compose_failed", analyzer=name, error=repr(exc))
            return 0
        # Counted once written: a waiter on ``compositions`` reads documents that exist.
        self.counts.compositions += 1
        return 1

    async def _lease_and_read(
        self, lease: str, reads: Sequence[Read]
    ) -> tuple[bool, Sequence[Sequence[RankedMember]]]:
        """Renew the lease and answer ``reads`` side by side; both finish before either fails."""
        held, answers = await asyncio.gather(
            self.state.hold_lease(lease, self.instance, self.lease_ms),
            self.state.top(reads),
            return_exceptions=True,
        )
        if isinstance(held, BaseException):
            raise held
        if isinstance(answers, BaseException):
            raise answers
        return held, answers

    async def run(self, stop: asyncio.Event) -> None:
        """Compose each analyzer on its own beat until ``stop`` is set.

        Each analyzer has a task of its own, so a slow one (the top trades' union read) never
        pushes another's next composition, or its lease renewal, back.
        """
        beats = [
            asyncio.create_task(self._beat(index, stop), name=f"compose {name}")
            for index, (name, _) in enumerate(self.composers)
        ]
        try:
            await stop.wait()
        finally:
            await asyncio.gather(*beats, return_exceptions=True)

    async def _beat(self, index: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now_ns = self.clock.now_ns()
            if self._take_turn(index, now_ns):
                await self._one(index, now_ns)
            delay = max(0.0, (self._next[index] - self.clock.now_ns()) / _NS_PER_SECOND)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()


def _coalesced(
    unsent: dict[str, WidgetWrite], composed: Sequence[WidgetWrite]
) -> list[WidgetWrite]:
    """Writes left from a failed composition, then this one's, one per name (the newest).

    A document left unsent that was to be announced stays announced when a newer one of its
    name, composed unannounced because nothing changed since the unsent one, replaces it.
    """
    if not unsent:
        return list(composed)
    merged = dict(unsent)
    for write in composed:
        older = merged.pop(write.name, None)
        announced = older is not None and older.publish and not write.publish
        merged[write.name] = replace(write, publish=True) if announced else write
    return list(merged.values())


class ComposerThread:
    """Runs a :class:`Composition` in a thread with its own event loop (see the module docstring).

    Args:
        open_composition: Called on the thread's loop: an async context that builds the
            composition on connections of its own (Redis clients belong to one loop) and
            closes them on exit.
        name: The thread's name.
    """

    def __init__(
        self,
        open_composition: Callable[[], AbstractAsyncContextManager[Composition]],
        *,
        name: str = "composer",
    ) -> None:
        self._open = open_composition
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        #: The exception that ended the thread, if one did (the worker then ends too).
        self.failure: BaseException | None = None

    def is_alive(self) -> bool:
        """Whether the thread runs (False before :meth:`start` and after it ended)."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start composing in the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish its composition in progress and close (any thread)."""
        with self._lock:
            self._stopping = True
            if self._loop is not None and self._stop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed already
                    self._loop.call_soon_threadsafe(self._stop.set)

    async def join(self, seconds: float) -> bool:
        """Wait up to ``seconds``, not blocking this loop, for the thread to end; whether it did."""
        if self._thread.ident is None:
            return True
        await asyncio.to_thread(self._thread.join, seconds)
        return not self._thread.is_alive()

    def _main(self) -> None:
        try:
            asyncio.run(self._body())
        except BaseException as exc:  # reported to the worker, which ends and is restarted
            self.failure = exc
            _log.exception("composer_failed")

    async def _body(self) -> None:
        stop = asyncio.Event()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._stop = stop
            if self._stopping:
                return
        async with self._open() as composition:
            await composition.run(stop)
