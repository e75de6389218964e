"""State operations analyzers emit, and the in-memory backend that applies them.

The operations themselves are defined next to the Redis backend in :mod:`mdp_cache.ops` (the
storage layer below this one) and re-exported here, so analyzer code imports everything about
state from one place. :class:`MemoryState` applies them with exactly the merge rules the Redis
backend's Lua script uses, which is what lets the embedded demo, notebooks and tests run the
production analyzers without any server, and lets property tests compare the two.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from mdp_cache import lattice
from mdp_cache.ops import (
    WINDOW_MAX_SIZE,
    WINDOW_MAX_TIMESTAMP_MS,
    Accepted,
    AppendTrades,
    Applied,
    KeepTop,
    PutMerged,
    PutNewer,
    RankedMember,
    Read,
    Refused,
    RowsRead,
    SetValue,
    StateBackend,
    StateOp,
    TopRead,
    UnionTopRead,
    UnknownStateOp,
    WindowStats,
    WindowStatsRead,
    WindowTrade,
    decode_window_stats,
    published_version,
    unknown_op,
)

__all__ = [
    "Accepted",
    "AppendTrades",
    "Applied",
    "KeepTop",
    "MemoryState",
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
    "TradeWindow",
    "UnionTopRead",
    "UnknownStateOp",
    "WindowStats",
    "WindowStatsRead",
    "WindowTrade",
    "decode_window_stats",
]

_PACK: Final = msgspec.msgpack.Encoder().encode


def _digest(payload: bytes) -> str:
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()


_JSON_OBJECT: Final = msgspec.json.Decoder(dict[str, object])


def _tie(fields: Sequence[str], payload: bytes, previous: bytes) -> int:
    """1 when ``payload`` orders after ``previous`` by ``fields``, -1 before, 0 undecided.

    The twin of the script's ``tie``: numbers compared in turn; a field missing or not a
    number in either payload, or a payload that is not a JSON object, decides nothing.
    """
    if not fields:
        return 0
    try:
        new, old = _JSON_OBJECT.decode(payload), _JSON_OBJECT.decode(previous)
    except msgspec.DecodeError:
        return 0
    for name in fields:
        a, b = _number(new.get(name)), _number(old.get(name))
        if a is not None and b is not None and a != b:
            return 1 if a > b else -1
    return 0


def _number(value: object) -> float | None:
    """A JSON number as a float (a bool or anything else: None)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class TradeWindow:
    """One symbol's last ``capacity`` trades with O(1) running figures (the Lua script's twin).

    Entries are (seq, size, timestamp_ms, identity) oldest first; ``peaks`` holds (seq, size)
    with strictly decreasing sizes, so its front is the window maximum.
    """

    __slots__ = ("entries", "identities", "latest", "peaks", "seq", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[int, int, int, str]] = deque()
        self.peaks: deque[tuple[int, int]] = deque()
        self.identities: set[str] = set()
        self.seq = 0
        self.total = 0
        #: (timestamp_ms, size, exchange, price) of the latest trade by time.
        self.latest: tuple[int, int, int, float] = (-1, 0, 0, 0.0)

    def append(self, trades: Sequence[WindowTrade], capacity: int) -> int:
        """Add ``trades`` (skipping identities already inside); return how many counted."""
        counted = 0
        capacity = max(1, capacity)
        valid = [
            trade
            for trade in trades
            if 0 <= trade.size <= WINDOW_MAX_SIZE
            and 0 <= trade.timestamp_ms < WINDOW_MAX_TIMESTAMP_MS
        ]  # as the script: out of range is never counted
        # A new window's seq starts at its first batch's newest timestamp x 1000 (the script's
        # rule; it is kept only once a trade is counted).
        seed = max(trade.timestamp_ms for trade in valid) * 1000 if valid and not self.seq else 0
        for trade in valid:
            identity = trade.identity
            if identity:
                if identity in self.identities:
                    continue
                self.identities.add(identity)
            counted += 1
            if not self.seq:
                self.seq = seed
            self.seq += 1
            size = trade.size
            self.total += size
            self.entries.append((self.seq, size, trade.timestamp_ms, identity))
            while self.peaks and self.peaks[-1][1] <= size:
                self.peaks.pop()
            self.peaks.append((self.seq, size))
            if trade.timestamp_ms >= self.latest[0]:
                self.latest = (trade.timestamp_ms, size, trade.exchange, trade.price)
        # Evict after the whole batch, as the script does: a batch may briefly overfill.
        while len(self.entries) > capacity:
            old_seq, old_size, _, old_identity = self.entries.popleft()
            self.total -= old_size
            self.identities.discard(old_identity)
            while self.peaks and self.peaks[0][0] <= old_seq:
                self.peaks.popleft()
        return counted

    def figures(self) -> WindowStats:
        """The window's running figures."""
        latest_ts, latest_size, latest_exchange, latest_price = self.latest
        return WindowStats(
            seq=self.seq,
            count=len(self.entries),
            total_volume=self.total,
            max_size=self.peaks[0][1],
            first_timestamp_ms=self.entries[0][2],
            last_timestamp_ms=self.entries[-1][2],
            latest_timestamp_ms=latest_ts,
            latest_size=latest_size,
            latest_exchange=latest_exchange,
            latest_price=latest_price,
        )


@dataclass(slots=True)
class MemoryState:
    """State of one process, held in dictionaries; implements :class:`StateBackend`.

    Key expiry is not modelled (keys are namespaced by trading day and callers drop old days
    with :meth:`drop_prefix`).
    """

    rows: dict[str, dict[str, bytes]] = field(default_factory=dict)
    versions: dict[str, dict[str, int]] = field(default_factory=dict)
    boards: dict[str, dict[str, float]] = field(default_factory=dict)
    values: dict[str, bytes] = field(default_factory=dict)
    marks: set[str] = field(default_factory=set)
    windows: dict[str, TradeWindow] = field(default_factory=dict)
    changed_windows: set[str] = field(default_factory=set)
    capped: dict[str, dict[bytes, float]] = field(default_factory=dict)
    #: figures key -> member -> (sequence, stored row current, joined figures).
    figures: dict[str, dict[str, tuple[int, bool, str]]] = field(default_factory=dict)
    #: What the last :meth:`apply_now` stored to publish and refused.
    applied: Applied = field(default_factory=Applied)

    def apply_now(self, ops: Iterable[StateOp], marks: Iterable[str] = ()) -> int:
        """Apply ``ops`` synchronously; return how many rows won their merge.

        What :class:`PutMerged` rows asked to publish or were refused is left in
        :attr:`applied`.

        Raises:
            UnknownStateOp: an element is no state operation (the ones before it are applied,
                the marks are not).
        """
        won = 0
        self.applied = Applied()
        for op in ops:
            match op:
                case PutMerged():
                    won += self._put_merged(op)
                case PutNewer():
                    won += self._put_newer(op)
                case SetValue():
                    self.values[op.key] = op.payload
                case AppendTrades():
                    self._append_trades(op)
                case KeepTop():
                    self._keep_top(op)
                case _:
                    unknown_op(op)
        self.marks.update(marks)
        return won

    def _append_trades(self, op: AppendTrades) -> None:
        window = self.windows.get(op.symbol)
        if window is None:
            window = self.windows[op.symbol] = TradeWindow()
        if window.append(op.trades, op.capacity):
            self.changed_windows.add(op.symbol)

    def _keep_top(self, op: KeepTop) -> None:
        if not op.members:
            return
        ranked = self.capped.setdefault(op.key, {})
        ranked.update(op.members)
        if len(ranked) > op.cap:
            # ZREMRANGEBYRANK order: lowest score first, ties by member ascending.
            order = sorted(ranked.items(), key=lambda item: (item[1], item[0]))
            for member, _ in order[: len(ranked) - op.cap]:
                del ranked[member]

    def _put_newer(self, op: PutNewer) -> int:
        versions = self.versions.setdefault(op.versions_key, {})
        rows = self.rows.setdefault(op.rows_key, {})
        old = versions.get(op.member)
        if old is not None:
            if op.version < old:
                return 0
            if op.version == old:
                previous = rows.get(op.member)
                if previous is not None and _digest(op.payload) <= _digest(previous):
                    return 0
        versions[op.member] = op.version
        rows[op.member] = op.payload
        self._score(op.member, op.score_keys, op.scores)
        return 1

    def _put_merged(self, op: PutMerged) -> int:
        """The twin of ``MERGE_FIGURES_LUA`` (see :class:`PutMerged`)."""
        metas = self.figures.setdefault(op.figures_key, {})
        versions = self.versions.setdefault(op.versions_key, {})
        rows = self.rows.setdefault(op.rows_key, {})
        meta = metas.get(op.member)
        seq, current, stored = meta if meta is not None else (0, True, "")
        joined = op.figures if stored in ("", op.figures) else lattice.join(stored, op.figures)
        lagging = not current or joined != stored
        old = versions.get(op.member)
        wins = hydrate = again = False
        if joined != op.figures:
            hydrate = True
        elif old is None or op.version > old:
            wins = True
        elif op.version == old:
            previous = rows.get(op.member)
            if lagging or previous is None:
                wins = True
            elif previous == op.payload:
                again = seq > 0  # the stored row offered again: published again
            else:
                order = _tie(op.tie_fields, op.payload, previous)
                wins = order > 0 if order else _digest(op.payload) > _digest(previous)
        else:
            hydrate = lagging
        if wins:
            seq += 1
            rows[op.member] = op.payload
            versions[op.member] = op.version
            metas[op.member] = (seq, True, joined)
            self._score(op.member, op.score_keys, op.scores)
            if op.publish:
                self.applied.accepted.append(
                    Accepted(op.publish, op.payload, published_version(op.epoch, seq))
                )
            return 1
        if again and op.publish:
            self.applied.accepted.append(
                Accepted(op.publish, op.payload, published_version(op.epoch, seq))
            )
        if joined != stored or meta is None:
            metas[op.member] = (seq, not (lagging and old is not None), joined)
        if hydrate:
            self.applied.refused.append(
                Refused(op.rows_key, op.member, joined, rows.get(op.member), old or 0)
            )
        return 0

    def _score(self, member: str, keys: Sequence[str], scores: Sequence[float | None]) -> None:
        for key, score in zip(keys, scores, strict=True):
            board = self.boards.setdefault(key, {})
            if score is None:
                board.pop(member, None)
            else:
                board[member] = score

    def answer_now(self, read: Read) -> list[RankedMember]:
        """Answer one read of any kind synchronously (see :meth:`StateBackend.top`)."""
        if isinstance(read, TopRead):
            return self.top_now(read)
        if isinstance(read, UnionTopRead):
            return self._union_now(read)
        if isinstance(read, RowsRead):
            rows = self.rows.get(read.rows_key, {})
            versions = self.versions.get(read.versions_key, {})
            return [
                RankedMember(member, float(versions.get(member, 0)), payload)
                for member, payload in sorted(rows.items())
            ]
        return self._window_stats_now(read)

    def _union_now(self, read: UnionTopRead) -> list[RankedMember]:
        merged: dict[bytes, float] = {}
        for key in read.keys:
            for member, score in self.capped.get(key, {}).items():
                if score > merged.get(member, float("-inf")):
                    merged[member] = score
        ranked = sorted(merged.items(), key=lambda item: (item[1], item[0]), reverse=True)
        return [
            RankedMember(member.decode(), score, member) for member, score in ranked[: read.limit]
        ]

    def _window_stats_now(self, read: WindowStatsRead) -> list[RankedMember]:
        taken = sorted(self.changed_windows)[: max(0, read.limit)]
        self.changed_windows.difference_update(taken)
        answers: list[RankedMember] = []
        for symbol in taken:
            figures = self.windows[symbol].figures()
            answers.append(RankedMember(symbol, float(figures.seq), _PACK(figures)))
        return answers

    def top_now(self, read: TopRead) -> list[RankedMember]:
        """Answer one board read synchronously (best first; ties by member, descending)."""
        board = self.boards.get(read.board_key, {})
        rows = self.rows.get(read.rows_key, {})
        ranked = sorted(board.items(), key=lambda item: (item[1], item[0]), reverse=True)
        ranked = ranked[: read.limit]
        return [
            RankedMember(member, score, rows[member]) for member, score in ranked if member in rows
        ]

    def drop_prefix(self, prefix: str) -> None:
        """Forget every key starting with ``prefix`` (e.g. a finished trading day)."""
        tables = (self.rows, self.versions, self.boards, self.values, self.capped, self.figures)
        for table in tables:
            for key in [k for k in table if k.startswith(prefix)]:
                del table[key]

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> Applied:
        """:class:`StateBackend` form of :meth:`apply_now`."""
        self.apply_now(ops, marks)
        return self.applied

    async def seen(self, marks: Sequence[str]) -> set[str]:
        """Which ``marks`` were set before."""
        return {mark for mark in marks if mark in self.marks}

    async def top(self, reads: Sequence[Read]) -> list[list[RankedMember]]:
        """:class:`StateBackend` form of :meth:`answer_now`."""
        return [self.answer_now(read) for read in reads]

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """One process, one holder: the lease is always granted."""
        del key, holder, ttl_ms
        return True
