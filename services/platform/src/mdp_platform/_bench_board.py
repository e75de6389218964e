"""The benchmark's own, independent recomputation of the three leaderboards.

While the simulator streams, :class:`BoardTracker` keeps the latest aggregate of every symbol
(the same "latest wins" order as the platform: window end, then running totals) and the first
regular-session bar. At the end :func:`expected_boards` ranks the symbols the plain way (no
Redis, no analyzers) and :func:`check_board` compares that with a board document read from the
widget cache, allowing only for what stale drops can explain.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

__all__ = [
    "BOARD_NAMES",
    "BoardCheck",
    "BoardTracker",
    "SymbolFinal",
    "check_board",
    "expected_boards",
]

BOARD_NAMES: Final = ("top_volume", "top_gappers", "top_gainers")
_TOLERANCE: Final = 1e-6


class SymbolFinal(msgspec.Struct, array_like=True, frozen=True):
    """What the last aggregate of a symbol says (sent from the simulator process)."""

    end_ms: int
    accumulated_volume: int
    volume: int
    close: float
    official_open: float | None
    first_regular_open: float | None


@dataclass(slots=True)
class _Latest:
    order: tuple[int, int, int, float]
    official_open: float | None
    first_regular: tuple[int, float] | None = None


@dataclass(slots=True)
class BoardTracker:
    """Folds Massive wire aggregates (``A``/``AM`` dicts) into each symbol's latest state.

    Args:
        open_ms: the regular-session open of the trading day (Unix ms).
    """

    open_ms: int
    _latest: dict[str, _Latest] = field(default_factory=dict)

    def add(self, events: Iterable[Mapping[str, object]]) -> None:
        """Fold events; anything but a well-formed aggregate is ignored."""
        for event in events:
            kind = event.get("ev")
            if kind not in {"A", "AM"}:
                continue
            symbol, end, start = event.get("sym"), event.get("e"), event.get("s")
            av, volume, close, bar_open = (
                event.get("av"),
                event.get("v"),
                event.get("c"),
                event.get("o"),
            )
            if not (
                isinstance(symbol, str)
                and isinstance(end, int)
                and isinstance(start, int)
                and isinstance(av, int)
                and isinstance(volume, int)
                and isinstance(close, int | float)
                and isinstance(bar_open, int | float)
            ):
                continue
            official = event.get("op")
            order = (end, av, volume, float(close))
            state = self._latest.get(symbol)
            if state is None:
                state = self._latest[symbol] = _Latest(order, None)
            if start >= self.open_ms and (
                state.first_regular is None or start < state.first_regular[0]
            ):
                state.first_regular = (start, float(bar_open))
            if order >= state.order:
                state.order = order
                state.official_open = float(official) if isinstance(official, int | float) else None

    def finals(self) -> dict[str, SymbolFinal]:
        """The latest state of every symbol seen."""
        return {
            symbol: SymbolFinal(
                end_ms=state.order[0],
                accumulated_volume=state.order[1],
                volume=state.order[2],
                close=state.order[3],
                official_open=state.official_open,
                first_regular_open=None if state.first_regular is None else state.first_regular[1],
            )
            for symbol, state in self._latest.items()
        }


def _pct(price: float, base: float) -> float:
    """The exact change in percent (boards rank by it; rows show it rounded to 4 decimals)."""
    return (price - base) / base * 100.0


def expected_boards(
    finals: Mapping[str, SymbolFinal], prev_close: Mapping[str, float], open_ms: int
) -> dict[str, list[tuple[str, float]]]:
    """Every symbol's displayed score on each board, best first (ties by symbol, descending).

    Volume ranks every symbol by the day's accumulated volume; gappers by % change against the
    previous close; gainers by % change against the regular-session open (the official open,
    else the first regular bar's open), for bars ending at or after the open. Only positive
    moves are listed on gappers and gainers, as on the platform. Ranking uses the exact
    change; the listed value is the change rounded to 4 decimals, as the rows show it.
    """
    ranked: dict[str, list[tuple[float, str, float]]] = {name: [] for name in BOARD_NAMES}
    for symbol, final in finals.items():
        volume = float(final.accumulated_volume)
        ranked["top_volume"].append((volume, symbol, volume))
        previous = prev_close.get(symbol)
        if previous is not None and previous > 0:
            gap = _pct(final.close, previous)
            if gap > 0:
                ranked["top_gappers"].append((gap, symbol, round(gap, 4)))
        if final.end_ms >= open_ms:
            session_open = (
                final.official_open
                if final.official_open is not None and final.official_open > 0
                else final.first_regular_open
            )
            if session_open is not None and session_open > 0:
                gain = _pct(final.close, session_open)
                if gain > 0:
                    ranked["top_gainers"].append((gain, symbol, round(gain, 4)))
    return {
        name: [(symbol, shown) for _, symbol, shown in sorted(rows, reverse=True)]
        for name, rows in ranked.items()
    }


@dataclass(frozen=True, slots=True)
class BoardCheck:
    """The verdict on one board.

    Attributes:
        board: the board name.
        ok: whether it matches (allowing what stale drops explain).
        rows: rows on the published board.
        expected_rows: rows the recomputation puts on it.
        wrong_score: symbols on the board with a score the recomputation disagrees with.
        missing: symbols that must be on the board but are not.
        unexpected: symbols on the board that must not be there.
        explained: differing symbols accepted because a stale drop can explain them.
        detail: a one-line explanation.
    """

    board: str
    ok: bool
    rows: int
    expected_rows: int
    wrong_score: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    explained: int
    detail: str


def check_board(
    board: str,
    expected: Sequence[tuple[str, float]],
    actual: Sequence[tuple[str, float]],
    *,
    size: int,
    explainable: Collection[str] = frozenset(),
) -> BoardCheck:
    """Compare a published board with the recomputation.

    Symbols tied with the last place may swap; the published order must be by score. A
    difference is tolerated only for a symbol in ``explainable``: one whose published row is
    older than its last event while the platform counted stale drops (the caller decides).
    """
    scores = dict(expected)
    want = list(expected[:size])
    cutoff = want[-1][1] if len(want) == size else None
    required = {s for s, v in want if cutoff is None or v > cutoff + _TOLERANCE}
    allowed = {s for s, v in expected if cutoff is None or v >= cutoff - _TOLERANCE}
    if cutoff is not None:
        tied = allowed - required
        if len(tied) <= size - len(required):
            required |= tied  # no choice among the ties: every one of them must be shown
    on_board = [symbol for symbol, _ in actual]
    wrong = tuple(
        symbol
        for symbol, value in actual
        if symbol in scores and abs(scores[symbol] - value) > _TOLERANCE
    )
    missing = tuple(sorted(required - set(on_board)))
    unexpected = tuple(sorted(set(on_board) - allowed))
    ordered = all(actual[i][1] >= actual[i + 1][1] - _TOLERANCE for i in range(len(actual) - 1))
    differing = set(wrong) | set(missing) | set(unexpected)
    explained = len(differing & set(explainable))
    unexplained = len(differing) - explained
    size_ok = len(actual) == len(want) or explained > 0
    ok = ordered and unexplained == 0 and size_ok
    if not ordered:
        detail = "rows are not ordered by score"
    elif not size_ok and not differing:
        detail = f"{len(actual)} rows published, {len(want)} expected"
    elif differing:
        detail = (
            f"{len(wrong)} wrong scores, {len(missing)} missing, {len(unexpected)} unexpected"
            + (f" ({explained} explained by stale drops)" if explained else "")
        )
    else:
        detail = "matches"
    return BoardCheck(
        board=board,
        ok=ok,
        rows=len(actual),
        expected_rows=len(want),
        wrong_score=wrong,
        missing=missing,
        unexpected=unexpected,
        explained=explained,
        detail=detail,
    )
