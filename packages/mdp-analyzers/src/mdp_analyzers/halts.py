"""Trading halts (LULD), known to every replica whichever one received the event.

The broker hands each LULD message to one processor replica, but every replica writes rows and
records that say whether a symbol is halted. So a replica that sees a halt or a resume records
it in MDC as a newer-wins row (:func:`halt_op`, keyed by the event time), and every replica
reads the merged rows back on a short cadence (:class:`HaltBook.merge`, driven through the
:class:`~mdp_analyzers.typing.Synchronized` hook). Each replica's view is its own events plus
everything merged up to its last synchronisation, about a second behind at worst.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from mdp_analyzers.state import PutNewer, RankedMember, RowsRead
from mdp_cache.keys import KEY_HALT_VERSIONS, KEY_HALTS
from mdp_core.events import LimitUpLimitDown

__all__ = [
    "HALT_RECENCY_BITS",
    "LULD_HALT",
    "LULD_RESUME",
    "HaltBook",
    "HaltRecord",
    "halt_op",
    "halts_read",
]

LULD_HALT: Final = 17
"""LULD indicator: a trading pause (halt) is in effect."""
LULD_RESUME: Final = 18
"""LULD indicator: trading resumed."""

HALT_RECENCY_BITS: Final = 8
"""Bits of a version that carry :meth:`HaltBook.recency` below the event time."""

_ENCODER: Final = msgspec.json.Encoder()


def _digest(payload: bytes) -> str:
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()


class HaltRecord(msgspec.Struct, frozen=True):
    """A symbol's latest halt or resume (the KEY_HALTS payload)."""

    halted: bool
    since_ms: int
    high_limit: float
    low_limit: float


def _record(event: LimitUpLimitDown) -> HaltRecord | None:
    if LULD_HALT in event.indicators:
        halted = True
    elif LULD_RESUME in event.indicators:
        halted = False
    else:
        return None  # a band update: says nothing about halts
    return HaltRecord(halted, event.timestamp_ms, event.high_limit, event.low_limit)


def halt_op(symbol: str, version: int, record: HaltRecord) -> PutNewer:
    """The state write recording ``record`` as ``symbol``'s latest halt state.

    Every analyzer that writes it encodes the same bytes, so writes of one event by several
    analyzers or replicas merge into one row.
    """
    return PutNewer(
        rows_key=KEY_HALTS.name(),
        versions_key=KEY_HALT_VERSIONS.name(),
        member=symbol,
        version=version,
        payload=_ENCODER.encode(record),
        score_keys=(),
        scores=(),
        ttl=KEY_HALTS.ttl or 86_400,
    )


def halts_read() -> RowsRead:
    """The read returning every merged halt row."""
    return RowsRead(KEY_HALTS.name(), KEY_HALT_VERSIONS.name())


class HaltBook:
    """One replica's view of halts: its own LULD events plus the merged rows it last read."""

    __slots__ = ("_pending", "_records")

    def __init__(self) -> None:
        self._records: dict[str, tuple[int, HaltRecord]] = {}
        self._pending: list[PutNewer] = []

    def note(self, event: LimitUpLimitDown) -> bool:
        """Fold one LULD event; True if the symbol's halted state changed."""
        record = _record(event)
        if record is None:
            return False
        op = halt_op(event.symbol, event.timestamp_ms, record)
        self._pending.append(op)
        return self._keep(event.symbol, event.timestamp_ms, record, op.payload)

    def _keep(self, symbol: str, version: int, record: HaltRecord, payload: bytes) -> bool:
        """Keep the newer record, by the state backends' merge rule.

        Version first, then the greater SHA-1 of the payload, so every replica agrees with
        the merged row.
        """
        old = self._records.get(symbol)
        if old is not None:
            if version < old[0]:
                return False
            if version == old[0] and _digest(payload) <= _digest(_ENCODER.encode(old[1])):
                return False
        self._records[symbol] = (version, record)
        return old is None or old[1].halted != record.halted

    def merge(self, rows: Iterable[RankedMember]) -> set[str]:
        """Fold merged rows (a :func:`halts_read` answer); return symbols whose state changed."""
        changed: set[str] = set()
        for row in rows:
            try:
                record = msgspec.json.decode(row.payload, type=HaltRecord)
            except msgspec.DecodeError:
                continue  # not ours to repair; the next write of the symbol replaces it
            if self._keep(row.member, int(row.score), record, row.payload):
                changed.add(row.member)
        return changed

    def take_ops(self) -> Sequence[PutNewer]:
        """The halt rows to write since the last call."""
        ops, self._pending = self._pending, []
        return ops

    def halted(self, symbol: str, since_ms: int = 0) -> bool:
        """Whether ``symbol`` is halted as far as this replica knows, by news from ``since_ms``.

        Callers pass the start of the trading day (04:00 ET): a LULD pause ends with the
        trading day it began in (none carries over the close), whether or not a resume is
        ever sent.
        """
        found = self._records.get(symbol)
        return found is not None and found[1].halted and found[0] >= since_ms

    def version(self, symbol: str) -> int:
        """Event time of the halt state known for ``symbol`` (0: none)."""
        found = self._records.get(symbol)
        return 0 if found is None else found[0]

    def recency(self, symbol: str, at_ms: int) -> int:
        """How recent the halt news known for ``symbol`` is, seen from ``at_ms`` (0-255).

        0 when nothing is known; otherwise the record's time relative to ``at_ms`` in seconds,
        offset by 128 and clamped to 1-255. A record written for the same instant with newer
        halt news ranks higher, so it can break ties between two writes of one bar or one
        LULD event (see ``HALT_RECENCY_BITS``): the news wins, a halt or a resume alike.
        """
        found = self._records.get(symbol)
        if found is None:
            return 0
        return min(255, max(1, (found[0] - at_ms) // 1000 + 128))

    def active(self) -> dict[str, HaltRecord]:
        """The symbols halted now, by symbol."""
        return {
            symbol: record for symbol, (_, record) in sorted(self._records.items()) if record.halted
        }
