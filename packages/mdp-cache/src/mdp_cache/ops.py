"""State operations: what analyzers ask the market data cache (MDC) to do with their state.

Analyzers do no I/O. They describe state changes as these small immutable records and a backend
applies them: :class:`mdp_analyzers.state.MemoryState` in a notebook or the embedded demo,
:class:`mdp_cache.state.RedisState` in production (one pipeline per flush, "newer wins" merges
done server-side in Lua so that several processor replicas can write the same rows safely).

Reads are declarative too (:class:`TopRead`), so the same board-composition code runs on either
backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

import msgspec

__all__ = [
    "PutNewer",
    "RankedMember",
    "SetValue",
    "StateBackend",
    "StateOp",
    "TopRead",
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


class SetValue(msgspec.Struct, frozen=True, gc=False):
    """Replace a plain value (``SET key payload EX ttl``)."""

    key: str
    payload: bytes
    ttl: int


StateOp: TypeAlias = PutNewer | SetValue


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
class RankedMember:
    """One answer row of a :class:`TopRead` (members whose row vanished are left out)."""

    member: str
    score: float
    payload: bytes


@runtime_checkable
class StateBackend(Protocol):
    """**Protocol:** something that applies state operations and answers board reads."""

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> None:
        """Apply ``ops`` and set each key of ``marks`` (seen batch ids) in one atomic step."""
        ...

    async def seen(self, marks: Sequence[str]) -> set[str]:
        """Which of the ``marks`` keys are already set (batches applied before)."""
        ...

    async def top(self, reads: Sequence[TopRead]) -> list[list[RankedMember]]:
        """Answer the reads, in order, each best first.

        Ties are ordered by member, descending (bytewise), which is Redis' ``ZREVRANGE``
        order, so every backend cuts a board at the same member.
        """
        ...

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew the lease ``key`` for ``holder``; False while another holds it."""
        ...
