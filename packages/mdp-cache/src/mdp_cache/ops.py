"""State operations: what analyzers ask the market data cache (MDC) to do with their state.

Analyzers do no I/O. They describe state changes as these small immutable records and a backend
applies them: :class:`mdp_analyzers.state.MemoryState` in a notebook or the embedded demo,
:class:`mdp_cache.state.RedisState` in production (one pipeline per flush, "newer wins" merges
done server-side in Lua so that several processor replicas can write the same rows safely).

Reads are declarative too (:data:`Read`), so the same composition code runs on either backend.

Two families of state:

* rows merged "newer wins" and ranked on boards (:class:`PutNewer`, :class:`TopRead`): the
  halts;
* rows merged "newer wins" whose *figures* merge as a lattice (:class:`PutMerged`): the
  leaderboard rows, which every replica writes and no replica sees whole;
* sliding windows and capped rankings shared by every replica (:class:`AppendTrades`,
  :class:`KeepTop`, :class:`WindowStatsRead`, :class:`UnionTopRead`): top trades and trade
  statistics, which are only correct when every replica's trades land in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Never, NoReturn, Protocol, TypeAlias, runtime_checkable

import msgspec

from mdp_core.errors import MdpError

__all__ = [
    "PUBLISH_EPOCH_SHIFT",
    "WINDOW_MAX_SIZE",
    "WINDOW_MAX_TIMESTAMP_MS",
    "Accepted",
    "AppendTrades",
    "Applied",
    "KeepTop",
    "PutMerged",
    "PutNewer",
    "RankedMember",
    "Read",
    "Refused",
    "RowsRead",
    "SetValue",
    "StateBackend",
    "StateOp",
    "TopRead",
    "UnionTopRead",
    "UnknownStateOp",
    "WindowStats",
    "WindowStatsRead",
    "WindowTrade",
    "checked_ops",
    "decode_window_stats",
    "published_version",
    "takes_state",
    "unknown_op",
]


class PutNewer(msgspec.Struct, frozen=True, gc=False):
    """Store ``payload`` as ``member``'s row unless a newer version is already stored.

    Order of precedence: the higher ``version`` wins; at equal versions the payload with the
    greater SHA-1 hex digest wins (a locale-proof total order, the same in Lua and Python), so
    any order and any duplication of the same writes converge on one result. When the row
    wins, its ``scores`` are applied to the sorted sets ``score_keys`` in the same atomic step
    (a ``None`` score removes the member), so a board never ranks a member by a row it does not
    hold. A msgspec Struct rather than a dataclass: one is built per changed row per flush.

    Attributes:
        rows_key: Hash holding member -> payload.
        versions_key: Hash holding member -> version.
        member: The row's member (a symbol).
        version: Monotonic version, e.g. event time.
        payload: The encoded row.
        score_keys: The sorted sets the scores go to (share one tuple across rows).
        scores: One score per key of ``score_keys``; None removes the member from that set.
        ttl: Seconds every touched key lives after this write.
    """

    rows_key: str
    versions_key: str
    member: str
    version: int
    payload: bytes
    score_keys: tuple[str, ...]
    scores: tuple[float | None, ...]
    ttl: int


class PutMerged(msgspec.Struct, frozen=True, gc=False):
    """Store ``payload`` as ``member``'s row if it is newest *and* holds every known figure.

    The backend keeps, per member, the lattice join (:mod:`mdp_cache.lattice`) of every
    ``figures`` text ever offered, whether or not its row was stored. A row is stored when its
    own figures equal that join (it misses nothing any replica saw) and either its ``version``
    is higher than the stored row's, or equal while the stored row's figures lag the join (ties
    otherwise by the ``tie_fields`` of the JSON payloads, greater first, then by payload digest,
    as :class:`PutNewer`). Otherwise it is refused, and when the
    refusal means the writer lacks something (figures it has not seen, or a newer row whose
    figures lag) the backend answers with a :class:`Refused` carrying the stored row and the
    joined figures, so the writer folds them in (hydrates) and offers the row again.

    Each stored row gets the next value of a per-member sequence; with ``publish`` set the
    backend reports it as :class:`Accepted`, and the row is published under that name with
    version ``epoch * 2**32 + sequence``: a client-facing copy never goes back, whichever
    replica stored last. An offer of the stored row itself (same version, payload and
    figures) is reported as :class:`Accepted` again, with the stored sequence: a flush sent
    again after its connection was lost midway publishes what the lost attempt stored
    unheard (the client-facing write of an equal version and payload changes nothing).

    Attributes:
        rows_key: Hash holding member -> payload.
        versions_key: Hash holding member -> version.
        figures_key: Hash holding member -> sequence, whether the stored row is current, and
            the joined figures.
        member: The row's member (a symbol).
        version: Monotonic version of the row's latest event.
        payload: The encoded row.
        figures: The figures the row was built from (lattice text).
        score_keys: The sorted sets the scores go to.
        scores: One score per key of ``score_keys``; None removes the member from that set.
        ttl: Seconds every touched key lives after this write.
        publish: The widget feed name to publish the stored row on ("" for none).
        epoch: The high part of the published version (e.g. the trading day's ordinal), so a
            new day's sequence starts above the old day's.
        base: Figures the writer knows MDC holds for ``member`` *and* that ``figures`` include
            (what it offered last, "" when unknown). When MDC holds exactly this text, the join
            is ``figures`` itself and is not computed: a symbol written by one processor at a
            time never pays for parsing its figures in Redis. A wrong base only costs that
            shortcut when MDC holds something else; it must never name figures that
            ``figures`` lack.
        tie_fields: Numeric fields of the JSON payload that order two rows of one version
            (compared in turn, the greater wins; a field missing or not a number in either
            decides nothing), before the digest: e.g. a bar's running totals, so the row MDC
            keeps of two bars ending together is the later one whichever replica wrote last.
    """

    rows_key: str
    versions_key: str
    figures_key: str
    member: str
    version: int
    payload: bytes
    figures: str
    score_keys: tuple[str, ...]
    scores: tuple[float | None, ...]
    ttl: int
    publish: str = ""
    epoch: int = 0
    base: str = ""
    tie_fields: tuple[str, ...] = ()


#: The high part of a published row version: the sequence of stored rows stays below it.
PUBLISH_EPOCH_SHIFT: Final = 32


def published_version(epoch: int, sequence: int) -> int:
    """The version a stored :class:`PutMerged` row is published with."""
    return (epoch << PUBLISH_EPOCH_SHIFT) + sequence


class Accepted(msgspec.Struct, frozen=True, gc=False):
    """A :class:`PutMerged` row that was stored, to be published as ``name``."""

    name: str
    payload: bytes
    version: int


class Refused(msgspec.Struct, frozen=True, gc=False):
    """A :class:`PutMerged` row refused because its writer lacks something MDC holds.

    Attributes:
        rows_key: The hash the row was offered to (which day).
        member: The member.
        figures: The joined figures of every offer so far (lattice text).
        payload: The stored row, or None when there is none.
        version: The stored row's version (0 when there is none).
    """

    rows_key: str
    member: str
    figures: str
    payload: bytes | None
    version: int


class Applied(msgspec.Struct, gc=False):
    """What a backend reports after applying operations: rows to publish, rows refused."""

    accepted: list[Accepted] = msgspec.field(default_factory=list)
    refused: list[Refused] = msgspec.field(default_factory=list)


class SetValue(msgspec.Struct, frozen=True, gc=False):
    """Replace a plain value (``SET key payload EX ttl``)."""

    key: str
    payload: bytes
    ttl: int


WINDOW_MAX_SIZE: Final = 10**15
"""Largest trade size a window counts; larger ones are skipped (sums stay exact doubles)."""
WINDOW_MAX_TIMESTAMP_MS: Final = 9 * 10**12
"""Trade times at or beyond this (year 2255; a timestamp in the wrong unit) are skipped, so
the window's sequence number (timestamp x 1000 + n) stays below 2**53."""


class WindowTrade(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One trade as a sliding window keeps it.

    Attributes:
        identity: What makes the trade unique (exchange, trade id, timestamp); a trade whose
            identity is already in the window is not counted again. Empty: never de-duplicated.
        size: Shares.
        timestamp_ms: Trade time.
        price: Trade price.
        exchange: Exchange id.
    """

    identity: str
    size: int
    timestamp_ms: int
    price: float
    exchange: int


class AppendTrades(msgspec.Struct, frozen=True, gc=False):
    """Append trades to ``symbol``'s sliding window of its last ``capacity`` trades.

    The backend keeps the window's running figures (count, total volume, maximum size through
    a monotonic deque, oldest and newest entries, the latest trade by timestamp) so one trade
    costs O(1) however long the window, and marks the symbol changed for
    :class:`WindowStatsRead`. Trades already in the window (same identity) are skipped, and so
    are trades outside ``0 <= size <= WINDOW_MAX_SIZE`` or ``0 <= timestamp_ms <
    WINDOW_MAX_TIMESTAMP_MS``. A ``capacity`` below 1 counts as 1.

    Attributes:
        symbol: The symbol.
        trades: Its new trades, in arrival order.
        capacity: Trades kept in the window.
        ttl: Seconds the window lives after its last append.
    """

    symbol: str
    trades: tuple[WindowTrade, ...]
    capacity: int
    ttl: int


class KeepTop(msgspec.Struct, frozen=True, gc=False):
    """Add scored members to the sorted set ``key``, which keeps only its ``cap`` highest.

    Capping after the union keeps exactly the global top ``cap`` of everything any replica
    added, since each replica's own top ``cap`` contains its share of the global one.

    Attributes:
        key: The sorted set.
        members: (member, score) pairs; a member added twice is stored once.
        cap: Members kept (ties at the cut: the bytewise smaller members go first).
        ttl: Seconds the set lives after this write.
    """

    key: str
    members: tuple[tuple[bytes, float], ...]
    cap: int
    ttl: int


#: Every state operation. Code that applies them dispatches with an exhaustive ``match`` whose
#: ``case _`` calls :func:`unknown_op`: a new operation type is then a type error wherever it
#: is not handled yet, and an error at run time, never silently skipped.
StateOp: TypeAlias = PutNewer | PutMerged | SetValue | AppendTrades | KeepTop


class UnknownStateOp(MdpError, TypeError):
    """Something that is not a :data:`StateOp` was handed over as one.

    The static types rule it out; a plugin analyzer outside the type checker's reach (or a new
    operation a backend does not handle yet) gets this error instead of having the write
    dropped. The message names the type only, never the payload.
    """

    def __init__(self, op: object) -> None:
        self.type_name = f"{type(op).__module__}.{type(op).__qualname__}"
        super().__init__(f"not a state operation: {self.type_name} (see mdp_cache.ops.StateOp)")


def unknown_op(op: Never) -> NoReturn:
    """The ``case _`` of an exhaustive ``match`` over :data:`StateOp`.

    :func:`typing.assert_never` with a message that names the type instead of the value's
    ``repr`` (which would put a row's payload in the logs).

    Raises:
        UnknownStateOp: always.
    """
    raise UnknownStateOp(op)


def checked_ops(ops: Sequence[StateOp]) -> Sequence[StateOp]:
    """``ops``, once each is known to be a :data:`StateOp`.

    What a service does to output no type checker has seen (plugin analyzers): a stray object
    is an error attributed to its analyzer, not a write dropped without a word.

    Raises:
        UnknownStateOp: for the first element that is not a state operation.
    """
    for op in ops:
        if not isinstance(op, StateOp):
            unknown_op(op)
    return ops


@dataclass(frozen=True, slots=True)
class TopRead:
    """Read the ``limit`` highest-scored members of a board with their rows.

    Attributes:
        board_key: The sorted set.
        rows_key: The hash holding each member's row.
        limit: How many members.
    """

    board_key: str
    rows_key: str
    limit: int


@dataclass(frozen=True, slots=True)
class UnionTopRead:
    """Read the ``limit`` highest-scored members of the union of several sorted sets.

    Each answer row has the member's bytes as ``payload`` (and as text in ``member``); a
    member in several sets counts once, with its highest score.

    Attributes:
        keys: The sorted sets (missing ones are empty).
        limit: How many members.
    """

    keys: tuple[str, ...]
    limit: int


@dataclass(frozen=True, slots=True)
class WindowStatsRead:
    """Take up to ``limit`` symbols whose trade window changed, with their figures.

    The changed-set is consumed by the read (so a symbol is reported once per change,
    whichever replica composes); a composition lost after its read (the composing process
    died before writing) leaves those symbols unpublished until they trade again. Each answer
    row is ``member`` = the symbol, ``score`` = the window's sequence number (a version, see
    :class:`WindowStats`), ``payload`` = the msgpack of :class:`WindowStats` (see
    :func:`decode_window_stats`).
    """

    limit: int


@dataclass(frozen=True, slots=True)
class RowsRead:
    """Read every row of a :class:`PutNewer` hash with its version.

    Answer rows: ``member``, ``score`` = the row's version, ``payload`` = the row; by member.
    Meant for small hashes (the day's halts), not for boards.
    """

    rows_key: str
    versions_key: str


Read: TypeAlias = TopRead | UnionTopRead | WindowStatsRead | RowsRead


def takes_state(read: Read) -> bool:
    """Whether answering ``read`` changes what is stored (it must wait for the lease).

    A :class:`WindowStatsRead` consumes the changed-set: answered by a replica that then finds
    the lease held elsewhere, its symbols would go unpublished. The other reads only look, so
    a composer may send them beside its lease renewal and drop the answers if it lost.
    """
    return isinstance(read, WindowStatsRead)


class WindowStats(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The running figures of one symbol's trade window, as a backend reports them.

    Attributes:
        seq: The window's sequence number: the newest timestamp of the window's first batch
            x 1000, plus one per counted trade. It only grows, even across a window
            lost with its Redis (fewer than 1,000 trades per millisecond), so it versions
            the published statistics.
        count: Trades in the window.
        total_volume: Shares over the window.
        max_size: Largest trade in the window.
        first_timestamp_ms: Timestamp of the oldest entry (arrival order).
        last_timestamp_ms: Timestamp of the newest entry (arrival order).
        latest_timestamp_ms: Timestamp of the latest trade by time.
        latest_size: Its size.
        latest_exchange: Its exchange.
        latest_price: Its price.
    """

    seq: int
    count: int
    total_volume: int
    max_size: int
    first_timestamp_ms: int
    last_timestamp_ms: int
    latest_timestamp_ms: int
    latest_size: int
    latest_exchange: int
    latest_price: float


_WINDOW_STATS_DECODER = msgspec.msgpack.Decoder(WindowStats)


def decode_window_stats(payload: bytes) -> WindowStats:
    """Decode the ``payload`` of a :class:`WindowStatsRead` answer row."""
    return _WINDOW_STATS_DECODER.decode(payload)


@dataclass(frozen=True, slots=True)
class RankedMember:
    """One answer row of a :class:`TopRead` (members whose row vanished are left out)."""

    member: str
    score: float
    payload: bytes


@runtime_checkable
class StateBackend(Protocol):
    """**Protocol:** something that applies state operations and answers board reads."""

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> Applied:
        """Apply ``ops`` and set each key of ``marks`` (seen batch ids) in one atomic step.

        Returns the :class:`PutMerged` rows stored (to publish) and refused (to hydrate).
        """
        ...

    async def seen(self, marks: Sequence[str]) -> set[str]:
        """Which of the ``marks`` keys are already set (batches applied before)."""
        ...

    async def top(self, reads: Sequence[Read]) -> list[list[RankedMember]]:
        """Answer the reads, in order, each best first (see each read for its rows).

        Ties are ordered by member, descending (bytewise), which is Redis' ``ZREVRANGE``
        order, so every backend cuts a board at the same member.
        """
        ...

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew the lease ``key`` for ``holder``; False while another holds it."""
        ...
