"""The analyzer contract: events in, widget writes and state changes out, no I/O.

An analyzer is a plain object a service feeds with batches and asks for output on a cadence. It
never touches Redis, AMQP or the wall clock: time arrives as ``now_ns`` from the service's injected
clock, reference data arrives through the service, and everything to be written comes back as
:class:`Output`. That is what makes one analyzer testable without servers, usable in a notebook
and safe to scale out: the service decides how (and how atomically) output is applied.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Never, Protocol, TypeAlias, TypeVar, runtime_checkable

import msgspec

from mdp_cache.keys import Feed, feed_for
from mdp_cache.ops import Accepted, RankedMember, Read, Refused, StateOp
from mdp_cache.records import ReferenceData

__all__ = [
    "Analyzer",
    "AnyAnalyzer",
    "ClosingMinutes",
    "Composer",
    "FeedMessage",
    "Hydrating",
    "NeedsReference",
    "Output",
    "Rehydratable",
    "Rejecting",
    "Synchronized",
    "WidgetWrite",
    "published",
]

In_contra = TypeVar("In_contra", contravariant=True)


class WidgetWrite(msgspec.Struct, frozen=True, gc=False):
    """One write to a WDC feed: stored as the feed's shape says, then published if asked.

    The payload is encoded once, so the snapshot and the published message are the same bytes.
    An ``identity`` names what a list-feed element (an alert) is about, e.g. ``symbol|day|3x``:
    the scanner appends an element once per identity across replicas and restarts (without
    one, once per payload). A ``version`` orders the writes of one name across replicas: a
    write older than the stored document is dropped (see :mod:`mdp_cache.widgets`).
    Per-symbol documents built from events carry one (event time, or a window's sequence
    number); documents composed on one replica do not need it. Versions stay below 2**53
    (Lua numbers are doubles).

    Never tracked by the cyclic collector (``gc=False``: a catalogue feed, strings, bytes and
    numbers cannot form a cycle). A flush makes one per changed document, thousands at a
    full-market universe, and they live until its write returns: tracked, they outlived young
    collections and were promoted, bringing a full collection of the whole heap round every
    few seconds (docs/performance.md).
    """

    feed: Feed
    name: str
    payload: bytes
    publish: bool = True
    version: int | None = None
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """A message received on a WDC channel (the scanner's input)."""

    name: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Output:
    """What an analyzer wants written since it was last asked.

    Attributes:
        widgets: Writes to client-facing feeds (WDC).
        state: Internal state changes (MDC), as operations of ``mdp_analyzers.state``; empty for
            analyzers whose state is in-process only. Backends dispatch on them exhaustively
            (see :data:`~mdp_cache.ops.StateOp`): anything else is an error, never skipped.
    """

    widgets: Sequence[WidgetWrite] = ()
    state: Sequence[StateOp] = ()

    def __bool__(self) -> bool:
        return bool(self.widgets) or bool(self.state)


@runtime_checkable
class Analyzer(Protocol[In_contra]):
    """**Protocol:** a pure analyzer.

    ``apply`` is called with each batch of inputs (market events, articles or feed messages);
    ``collect`` is called on the service's flush cadence and returns the coalesced output since
    the previous call (each changed item once, not once per event).
    """

    #: Name under which the analyzer is registered (entry point group ``mdp.analyzers``).
    name: ClassVar[str]
    #: What it consumes: ``ev`` codes (``"A"``, ``"T"``), ``"news"``, or feed patterns.
    consumes: ClassVar[frozenset[str]]

    def apply(self, inputs: Sequence[In_contra], now_ns: int) -> None:
        """Fold a batch of inputs into the analyzer's state."""
        ...

    def collect(self, now_ns: int) -> Output:
        """Return what should be written now; also where time-driven work (resets) happens."""
        ...


#: An analyzer of whatever input, as held by a driver that routes by ``consumes`` (the offline
#: run): every ``Analyzer[X]`` is one, since ``apply`` takes its inputs contravariantly. Which
#: inputs it may be handed is the ``consumes`` contract, which the types cannot express; the
#: services each hold one kind (``Analyzer[MarketEvent]``, ``Analyzer[FeedMessage]``).
AnyAnalyzer: TypeAlias = Analyzer[Never]


@runtime_checkable
class Rehydratable(Protocol):
    """**Protocol:** an analyzer that rebuilds its state from feed snapshots after a restart."""

    def snapshot_patterns(self) -> Sequence[str]:
        """Redis globs of the feeds to read at start (e.g. ``range:*``)."""
        ...

    def restore(self, snapshots: Mapping[str, bytes], now_ns: int) -> None:
        """Rebuild state from ``{feed name: payload}``, ignoring anything from another day.

        A list feed's payload is the JSON array of its elements, newest first.
        """
        ...


@runtime_checkable
class Composer(Protocol):
    """**Protocol:** an analyzer whose widgets are composed from merged state, not its own.

    With several replicas each sees part of the market, so the leaderboards and the top
    trades are composed from the state all of them merged. The service calls :meth:`reads` on
    a steady cadence (about once a second, by whichever replica holds the analyzer's
    publishing lease), answers the reads from its state backend and hands the answers to
    :meth:`compose`.

    A worker calls :meth:`reads` and :meth:`compose` from its composer thread while its event
    loop applies and collects, so they touch only configuration and what :meth:`compose`
    itself remembers (the last document sent), never what ``apply`` or ``collect`` change.
    """

    #: Nanoseconds between two compositions.
    compose_interval_ns: int

    def reads(self, now_ns: int) -> Sequence[Read]:
        """The reads the next composition needs."""
        ...

    def compose(
        self, now_ns: int, answers: Sequence[Sequence[RankedMember]]
    ) -> Sequence[WidgetWrite]:
        """Turn the answers (in the order of :meth:`reads`) into widget writes."""
        ...


@runtime_checkable
class Synchronized(Protocol):
    """**Protocol:** an analyzer every replica keeps in step with merged state.

    Some facts reach one replica only but shape what every replica writes (a LULD halt, taken
    by one replica, flags the rows all of them publish). Every replica, not only the lease
    holder, calls :meth:`sync_reads` on the analyzer's cadence after its state write, answers
    the reads from the state backend and hands the answers to :meth:`sync`; what changed is
    written on the following flushes.
    """

    #: Nanoseconds between two synchronisations.
    sync_interval_ns: int

    def sync_reads(self, now_ns: int) -> Sequence[Read]:
        """The reads the next synchronisation needs."""
        ...

    def sync(self, now_ns: int, answers: Sequence[Sequence[RankedMember]]) -> None:
        """Fold the answers (in the order of :meth:`sync_reads`) into the analyzer's state."""
        ...


@runtime_checkable
class NeedsReference(Protocol):
    """**Protocol:** an analyzer whose output improves with reference data (previous day...).

    The analyzer never waits for it: the service drains :meth:`wanted_reference`, fetches in
    the background and calls :meth:`provide_reference`; rows fill in on the next flush.
    """

    def wanted_reference(self) -> Sequence[tuple[str, date]]:
        """Symbols (with their trading day) seen since the last call that lack reference data."""
        ...

    def provide_reference(self, data: ReferenceData) -> None:
        """Reference data arrived (parts may be None when the source had nothing)."""
        ...


@runtime_checkable
class Hydrating(Protocol):
    """**Protocol:** an analyzer whose merged rows MDC may refuse (``PutMerged``).

    The service hands every refusal back after the write; the analyzer folds the stored row
    and the joined figures into its state and offers the row again on a later flush.
    """

    def refused(self, refusals: Sequence[Refused]) -> None:
        """Rows MDC refused because this analyzer lacked what MDC holds."""
        ...


@runtime_checkable
class ClosingMinutes(Protocol):
    """**Protocol:** an analyzer that builds minute bars from seconds.

    It reports the minutes it left behind by how far their seconds were verified to run from
    the minute's start.
    """

    def take_closed_minutes(self) -> Counter[str]:
        """Minutes closed since the last call, by outcome (the service adds them to a metric)."""
        ...


@runtime_checkable
class Rejecting(Protocol):
    """**Protocol:** an analyzer that drops bad inputs and counts them by reason."""

    def take_rejected(self) -> Counter[str]:
        """Inputs dropped since the last call, by reason (the service adds them to a metric)."""
        ...


def published(accepted: Sequence[Accepted]) -> list[WidgetWrite]:
    """The widget writes of rows a backend stored with a name to publish them under.

    Names that belong to no feed are left out (a caller can count them by the difference).
    """
    writes: list[WidgetWrite] = []
    for row in accepted:
        feed = _feed_of(row.name)
        if feed is not None:
            writes.append(WidgetWrite(feed, row.name, row.payload, version=row.version))
    return writes


@functools.lru_cache(maxsize=1 << 16)
def _feed_of(name: str) -> Feed | None:
    """:func:`feed_for`, remembered: every stored row is published, a name a symbol."""
    return feed_for(name)
