"""Running analyzers offline: events (or a recorded JSONL file) in, widget documents out.

:func:`run_offline` drives any set of analyzers the way the processor does — batches by flush
interval, ``collect`` on the cadence, state applied to a :class:`~mdp_analyzers.state.MemoryState`,
boards composed about once a second — but with a :class:`~mdp_core.clock.ManualClock` moved by
the events' own timestamps and with no server at all. A recorded session replays in seconds
and produces the documents production would have published.

Analyzers that run in the scanner in production consume *feed messages* (their ``consumes`` are
feed patterns such as ``quote:*``) rather than market events: what the other analyzers publish
is handed to them as :class:`~mdp_analyzers.typing.FeedMessage` on the next step, as the WDC
channels deliver it to the scanner, so one run drives every analyzer, daily range included.
News articles (``news=``) reach the analyzers that consume ``"news"`` once the run's clock has
passed their publication time.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final, Never, cast

import msgspec

from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import (
    AnyAnalyzer,
    Composer,
    FeedMessage,
    Hydrating,
    NeedsReference,
    Synchronized,
    WidgetWrite,
    published,
)
from mdp_cache.records import ReferenceData
from mdp_cache.series import merge_element
from mdp_cache.versions import supersedes
from mdp_core.clock import NS_PER_SECOND, ManualClock, to_ns
from mdp_core.events import MarketEvent
from mdp_core.news import Article
from mdp_core.wire import decode_frame

__all__ = ["OfflineResult", "ReferenceLookup", "read_replay", "run_offline"]

_NS_PER_MS: Final = 1_000_000
#: Steps after the last event that deliver published messages to feed consumers.
_MAX_DELIVERY_ROUNDS: Final = 8

#: Reference data for the offline run: a mapping by symbol, or a function of (symbol, day).
ReferenceLookup = Mapping[str, ReferenceData] | Callable[[str, date], ReferenceData | None]


@dataclass
class OfflineResult:
    """What the analyzers wrote, as a widget data cache would hold it.

    Attributes:
        values: The latest payload of every ``value`` feed name.
        lists: Every ``list`` and ``series`` feed, newest first, capped like the real one.
        published: How many messages would have been published.
        state: The merged analyzer state.
    """

    values: dict[str, bytes] = field(default_factory=dict)
    lists: dict[str, list[bytes]] = field(default_factory=dict)
    published: int = 0
    state: MemoryState = field(default_factory=MemoryState)
    versions: dict[str, int] = field(default_factory=dict)

    def record(self, writes: Iterable[WidgetWrite]) -> list[FeedMessage]:
        """Store writes the way the WDC writer would (versioned writes newer-wins).

        Returns:
            The messages the writer would have published on the feeds' channels.
        """
        sent: list[FeedMessage] = []
        for write in writes:
            if write.feed.shape == "value":
                if write.version is not None:
                    old = self.versions.get(write.name)
                    stored = None if old is None else (old, self.values.get(write.name))
                    if not supersedes(write.version, write.payload, stored):
                        continue
                    self.versions[write.name] = write.version
                self.values[write.name] = write.payload
            elif write.feed.shape == "series":
                items = self.lists.setdefault(write.name, [])
                if not merge_element(items, write.payload, write.feed.max_len or 1):
                    continue
            else:
                items = self.lists.setdefault(write.name, [])
                items.insert(0, write.payload)
                del items[write.feed.max_len or 1 :]
            if write.publish:
                self.published += 1
                sent.append(FeedMessage(write.name, write.payload))
        return sent

    # Any: decoded JSON of any feed's shape, for a notebook to index into; no static type
    # describes every feed's document.
    def document(self, name: str) -> Any:
        """The decoded JSON stored under feed name ``name`` (KeyError if never written)."""
        if name in self.values:
            return msgspec.json.decode(self.values[name])
        return [msgspec.json.decode(item) for item in self.lists[name]]


def read_replay(path: str | Path) -> Iterator[MarketEvent]:
    """Events of a JSONL recording, in file order; bad lines and elements are skipped.

    Each line is a frame as received (a JSON array), or an object holding it under ``frame``
    or ``events`` (as an array, or as the frame's text).
    """
    with Path(path).open("rb") as lines:
        for line in lines:
            text = line.strip()
            if not text:
                continue
            frame: bytes | str = text
            if text[:1] == b"{":
                try:
                    wrapper = msgspec.json.decode(text)
                except msgspec.DecodeError:
                    continue
                inner = (
                    wrapper.get("frame", wrapper.get("events"))
                    if isinstance(wrapper, dict)
                    else None
                )
                if isinstance(inner, str):
                    frame = inner
                elif isinstance(inner, list):
                    frame = msgspec.json.encode(inner)
                else:
                    continue
            yield from decode_frame(frame).events


def run_offline(
    source: Iterable[MarketEvent] | str | Path,
    analyzers: Sequence[AnyAnalyzer],
    *,
    clock: ManualClock | None = None,
    flush_interval_seconds: float = 0.05,
    reference: ReferenceLookup | None = None,
    settle_seconds: float = 1.0,
    news: Iterable[Article] = (),
) -> OfflineResult:
    """Feed ``source`` through ``analyzers`` and return what they would have written.

    Args:
        source: Events in arrival order, or the path of a JSONL recording.
        analyzers: Analyzer instances (each receives the event kinds it ``consumes``).
        clock: The clock to drive; by default one starting at the first event's time. It is
            moved forward to each event's time (never backwards).
        flush_interval_seconds: Event-time seconds between two ``collect`` calls.
        reference: Reference data handed to analyzers that want it.
        settle_seconds: Event-time seconds the run continues after the last event, so outputs
            published on a cadence (boards, trade statistics) are produced.
        news: Articles for the analyzers that consume ``"news"``, each handed over once the
            clock has reached its publication time (the rest at the end of the run).
    """
    events = read_replay(source) if isinstance(source, str | Path) else iter(source)
    result = OfflineResult()
    interval_ns = max(1, int(flush_interval_seconds * NS_PER_SECOND))
    driver = _Driver(list(analyzers), result, reference, news)
    next_flush: int | None = None
    batch: list[MarketEvent] = []
    for event in events:
        at_ns = event.event_time_ms * _NS_PER_MS
        if clock is None:
            clock = ManualClock(at_ns)
        if at_ns > clock.now_ns():
            clock.set(at_ns)
        if next_flush is None:
            next_flush = clock.now_ns() + interval_ns
        if clock.now_ns() >= next_flush:
            driver.step(batch, next_flush)
            batch = []
            while next_flush <= clock.now_ns():
                next_flush += interval_ns
        batch.append(event)
    if clock is not None:
        driver.step(batch, clock.now_ns())
        # End one second of event time later, so throttled outputs (boards, trade stats) land.
        clock.advance(settle_seconds)
        driver.step([], clock.now_ns(), force_compose=True, all_news=True)
        # Then deliver what that published to the feed consumers (a chain ends in a few rounds).
        for _ in range(_MAX_DELIVERY_ROUNDS):
            if not driver.inbox:
                break
            driver.step([], clock.now_ns())
    return result


class _Driver:
    """Routes batches to analyzers and applies their output (the processor's loop, minus I/O)."""

    def __init__(
        self,
        analyzers: list[AnyAnalyzer],
        result: OfflineResult,
        reference: ReferenceLookup | None,
        news: Iterable[Article] = (),
    ) -> None:
        self.analyzers = analyzers
        #: Articles not handed over yet, latest first (popped from the end).
        self.news = sorted(news, key=lambda article: article.publish_date, reverse=True)
        self.result = result
        self.reference = reference
        self.next_compose: dict[int, int] = {}
        self.next_sync: dict[int, int] = {}
        #: Messages published since the last step, for analyzers that consume feeds.
        self.inbox: list[FeedMessage] = []

    def _route(
        self,
        analyzer: AnyAnalyzer,
        batch: list[MarketEvent],
        inbox: list[FeedMessage],
        articles: list[Article],
    ) -> list[MarketEvent | FeedMessage | Article]:
        """What ``analyzer`` receives: the events of its kinds, the messages of its feeds."""
        consumes = analyzer.consumes
        if "news" in consumes:
            return list(articles)
        wanted: list[MarketEvent | FeedMessage | Article] = [
            event for event in batch if event.EV in consumes
        ]
        patterns = [pattern for pattern in consumes if ":" in pattern]
        if patterns:
            wanted.extend(
                message
                for message in inbox
                if any(fnmatch.fnmatchcase(message.name, pattern) for pattern in patterns)
            )
        return wanted

    def step(
        self,
        batch: list[MarketEvent],
        now_ns: int,
        *,
        force_compose: bool = False,
        all_news: bool = False,
    ) -> None:
        inbox, self.inbox = self.inbox, []
        articles: list[Article] = []
        while self.news and (all_news or to_ns(self.news[-1].publish_date) <= now_ns):
            articles.append(self.news.pop())
        for analyzer in self.analyzers:
            wanted = self._route(analyzer, batch, inbox, articles)
            if wanted:
                # What it consumes is what it takes: the routing above is that contract.
                analyzer.apply(cast("list[Never]", wanted), now_ns)
            if isinstance(analyzer, NeedsReference):
                self._provide(analyzer)
            output = analyzer.collect(now_ns)
            state = self.result.state
            state.apply_now(output.state)
            self.inbox += self.result.record(output.widgets)
            self.inbox += self.result.record(published(state.applied.accepted))
            if state.applied.refused and isinstance(analyzer, Hydrating):
                analyzer.refused(state.applied.refused)
            if isinstance(analyzer, Synchronized):
                due = self.next_sync.get(id(analyzer), 0)
                if force_compose or now_ns >= due:
                    self.next_sync[id(analyzer)] = now_ns + analyzer.sync_interval_ns
                    reads = analyzer.sync_reads(now_ns)
                    analyzer.sync(now_ns, [self.result.state.answer_now(r) for r in reads])
            if isinstance(analyzer, Composer):
                due = self.next_compose.get(id(analyzer), 0)
                if force_compose or now_ns >= due:
                    self.next_compose[id(analyzer)] = now_ns + analyzer.compose_interval_ns
                    reads = analyzer.reads(now_ns)
                    answers = [self.result.state.answer_now(read) for read in reads]
                    self.inbox += self.result.record(analyzer.compose(now_ns, answers))

    def _provide(self, analyzer: NeedsReference) -> None:
        for symbol, day in analyzer.wanted_reference():
            data: ReferenceData | None
            if self.reference is None:
                data = None
            elif callable(self.reference):
                data = self.reference(symbol, day)
            else:
                found = self.reference.get(symbol)
                data = None if found is None else msgspec.structs.replace(found, trading_day=day)
            if data is not None:
                analyzer.provide_reference(data)
