"""State operations analyzers emit, and the in-memory backend that applies them.

The operations themselves are defined next to the Redis backend in :mod:`mdp_cache.ops` (the
storage layer below this one) and re-exported here, so analyzer code imports everything about
state from one place. :class:`MemoryState` applies them with exactly the merge rules the Redis
backend's Lua script uses, which is what lets the embedded demo, notebooks and tests run the
production analyzers without any server, and lets property tests compare the two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mdp_cache.ops import (
    PutNewer,
    RankedMember,
    SetValue,
    StateBackend,
    StateOp,
    TopRead,
)

__all__ = [
    "MemoryState",
    "PutNewer",
    "RankedMember",
    "SetValue",
    "StateBackend",
    "StateOp",
    "TopRead",
]


def _digest(payload: bytes) -> str:
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()


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

    def apply_now(self, ops: Iterable[StateOp], marks: Iterable[str] = ()) -> int:
        """Apply ``ops`` synchronously; return how many rows won their merge."""
        won = 0
        for op in ops:
            if isinstance(op, PutNewer):
                won += self._put_newer(op)
            else:
                self.values[op.key] = op.payload
        self.marks.update(marks)
        return won

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
        for key, score in zip(op.score_keys, op.scores, strict=True):
            board = self.boards.setdefault(key, {})
            if score is None:
                board.pop(op.member, None)
            else:
                board[op.member] = score
        return 1

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
        for table in (self.rows, self.versions, self.boards, self.values):
            for key in [k for k in table if k.startswith(prefix)]:
                del table[key]

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> None:
        """:class:`StateBackend` form of :meth:`apply_now`."""
        self.apply_now(ops, marks)

    async def seen(self, marks: Sequence[str]) -> set[str]:
        """Which ``marks`` were set before."""
        return {mark for mark in marks if mark in self.marks}

    async def top(self, reads: Sequence[TopRead]) -> list[list[RankedMember]]:
        """:class:`StateBackend` form of :meth:`top_now`."""
        return [self.top_now(read) for read in reads]

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """One process, one holder: the lease is always granted."""
        del key, holder, ttl_ms
        return True
