"""The benchmark's own, independent recomputation of the three leaderboards.

While the simulator streams, :class:`BoardTracker` keeps the latest aggregate of every symbol
(the same "latest wins" order as the platform: window end, then running totals), the first
regular-session bar and every session's high and low over *every* bar (pre-market 04:00-09:30,
regular 09:30-close, after-hours close-20:00 ET, by the bar's start; day high/low over them).
At the end :func:`expected_boards` ranks the symbols the plain way (no Redis, no analyzers),
:func:`check_board` compares that with a board document read from the widget cache and
:func:`check_ranges` compares the ranges with the ``range:{symbol}`` documents, allowing only
for what stale drops can explain. Bars that cannot be right (a price that is not a positive
finite number, ``h < l``, open or close outside the bar) count for nothing, as on the platform.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

__all__ = [
    "BOARD_NAMES",
    "RANGE_FIELDS",
    "BoardCheck",
    "BoardTracker",
    "SymbolFinal",
    "check_board",
    "check_ranges",
    "expected_boards",
    "expected_prices",
    "expected_ranges",
]

BOARD_NAMES: Final = ("top_volume", "top_gappers", "top_gainers")
_TOLERANCE: Final = 1e-6
#: The figures of a ``range:{symbol}`` document the check compares, sessions first.
RANGE_FIELDS: Final = (
    "pre_market_high",
    "pre_market_low",
    "regular_high",
    "regular_low",
    "after_hours_high",
    "after_hours_low",
    "day_high",
    "day_low",
)
_MS_PER_HOUR: Final = 3_600_000


class SymbolFinal(msgspec.Struct, array_like=True, frozen=True):
    """What the last aggregate of a symbol says (sent from the simulator process)."""

    end_ms: int
    accumulated_volume: int
    volume: int
    close: float
    official_open: float | None
    first_regular_open: float | None
    #: High and low of each session (pre-market, regular, after-hours), None when no bar.
    sessions: tuple[float | None, ...] = (None,) * 6


@dataclass(slots=True)
class _Latest:
    order: tuple[int, int, int, float]
    official_open: float | None
    first_regular: tuple[int, float] | None = None
    #: [high, low] per session slot, None while the session saw no bar.
    sessions: list[list[float] | None] = field(default_factory=lambda: [None, None, None])


def _good(prices: tuple[float, float, float, float]) -> bool:
    """Whether a bar can be right: positive finite prices, open and close within low..high."""
    bar_open, high, low, close = prices
    return (
        all(math.isfinite(p) and p > 0 for p in prices)
        and low <= high
        and low <= bar_open <= high
        and low <= close <= high
    )


@dataclass(slots=True)
class BoardTracker:
    """Folds Massive wire aggregates (``A``/``AM`` dicts) into each symbol's latest state.

    Args:
        open_ms: the regular-session open of the trading day (Unix ms).
        close_ms: the regular-session close (0: 6.5 hours after the open).
        day_start_ms: the start of pre-market, 04:00 ET (0: 5.5 hours before the open).
        after_end_ms: the end of after-hours, 20:00 ET (0: 10.5 hours after the open).
    """

    open_ms: int
    close_ms: int = 0
    day_start_ms: int = 0
    after_end_ms: int = 0
    _latest: dict[str, _Latest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.close_ms:
            self.close_ms = self.open_ms + 13 * _MS_PER_HOUR // 2
        if not self.day_start_ms:
            self.day_start_ms = self.open_ms - 11 * _MS_PER_HOUR // 2
        if not self.after_end_ms:
            self.after_end_ms = self.open_ms + 21 * _MS_PER_HOUR // 2

    def _slot(self, start_ms: int) -> int | None:
        """The session a bar starting at ``start_ms`` belongs to (None: outside the day's)."""
        if self.day_start_ms <= start_ms < self.open_ms:
            return 0
        if self.open_ms <= start_ms < self.close_ms:
            return 1
        if self.close_ms <= start_ms < self.after_end_ms:
            return 2
        return None

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
            high, low = event.get("h"), event.get("l")
            if not (
                isinstance(symbol, str)
                and isinstance(end, int)
                and isinstance(start, int)
                and isinstance(av, int)
                and isinstance(volume, int)
                and isinstance(close, int | float)
                and isinstance(bar_open, int | float)
                and isinstance(high, int | float)
                and isinstance(low, int | float)
                and _good((float(bar_open), float(high), float(low), float(close)))
            ):
                continue
            official = event.get("op")
            order = (end, av, volume, float(close))
            state = self._latest.get(symbol)
            if state is None:
                state = self._latest[symbol] = _Latest(order, None)
            slot = self._slot(start)
            if slot is not None:
                extremes = state.sessions[slot]
                if extremes is None:
                    state.sessions[slot] = [float(high), float(low)]
                else:
                    extremes[0] = max(extremes[0], float(high))
                    extremes[1] = min(extremes[1], float(low))
            if slot == 1 and (state.first_regular is None or start < state.first_regular[0]):
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
                sessions=tuple(
                    value
                    for extremes in state.sessions
                    for value in (extremes if extremes is not None else (None, None))
                ),
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
    older than its last event while the platform counted stale drops (the caller decides), and
    for a symbol those displaced onto the board (right score, within as many places below the
    cut as there are excused symbols).
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
    excused = differing & set(explainable)
    if excused and expected:
        # Each excused symbol that is not where it belongs frees a place for the next one down:
        # a symbol listed with its right score within that many places below the cut moved up.
        deeper = expected[: size + len(excused)]
        floor = deeper[-1][1] - _TOLERANCE
        excused |= {s for s in unexpected if s not in wrong and scores.get(s, floor - 1) >= floor}
    explained = len(excused)
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


def expected_ranges(finals: Mapping[str, SymbolFinal]) -> dict[str, dict[str, float | None]]:
    """Every symbol's range document figures (:data:`RANGE_FIELDS`), for symbols with a bar.

    A session without a bar is None; the day's high and low are taken over the sessions.
    """
    ranges: dict[str, dict[str, float | None]] = {}
    for symbol, final in finals.items():
        sessions = final.sessions
        if all(value is None for value in sessions):
            continue
        highs = [v for v in sessions[0::2] if v is not None]
        lows = [v for v in sessions[1::2] if v is not None]
        values = (*sessions, max(highs), min(lows))
        ranges[symbol] = dict(zip(RANGE_FIELDS, values, strict=True))
    return ranges


def expected_prices(finals: Mapping[str, SymbolFinal]) -> dict[str, float]:
    """Every range document's ``price``: the close of the symbol's latest bar (a row's rule)."""
    return {
        symbol: final.close
        for symbol, final in finals.items()
        if any(value is not None for value in final.sessions)
    }


def check_ranges(
    expected: Mapping[str, Mapping[str, float | None]],
    documents: Mapping[str, Mapping[str, object]],
    *,
    trading_day: str,
    prices: Mapping[str, float] | None = None,
    explainable: Collection[str] = frozenset(),
    hidden: Collection[str] = frozenset(),
) -> BoardCheck:
    """Compare every symbol's ``range:{symbol}`` document with the recomputation, exactly.

    Every recomputed symbol must have a document of ``trading_day`` with every figure equal
    (prices travel as the same decimals, so equality is exact), and its ``price`` equal to the
    symbol's entry in ``prices`` when given; a document of that day for a symbol without a bar
    is unexpected. A difference is tolerated only for a symbol in ``explainable`` whose
    published range lies *inside* the recomputed one (events the platform counted as stale can
    only hide extremes, never invent one, and may have hidden the latest bar), and a missing
    document only for a symbol in ``hidden`` (the drops hid every bar of it: no quote record
    either).
    """
    wrong: list[str] = []
    missing: list[str] = []
    explained = 0
    for symbol, want in sorted(expected.items()):
        document = documents.get(symbol)
        if document is None or document.get("trading_day") != trading_day:
            if symbol in hidden:
                explained += 1
            else:
                missing.append(symbol)
            continue
        price = None if prices is None else prices.get(symbol)
        if all(_same_figure(want[name], document.get(name)) for name in RANGE_FIELDS) and (
            price is None or _same_figure(price, document.get("price"))
        ):
            continue
        if symbol in explainable and _inside(want, document):
            explained += 1
            continue
        wrong.append(symbol)
    unexpected = sorted(
        symbol
        for symbol, document in documents.items()
        if symbol not in expected and document.get("trading_day") == trading_day
    )
    ok = not wrong and not missing and not unexpected
    detail = (
        f"{len(expected)} symbols x {len(RANGE_FIELDS) + (prices is not None)} figures match"
        if ok
        else f"{len(wrong)} wrong, {len(missing)} missing, {len(unexpected)} unexpected"
    ) + (f" ({explained} explained by stale drops)" if explained else "")
    return BoardCheck(
        board="ranges",
        ok=ok,
        rows=len(documents),
        expected_rows=len(expected),
        wrong_score=tuple(wrong),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        explained=explained,
        detail=detail,
    )


def _same_figure(want: float | None, got: object) -> bool:
    if want is None or got is None:
        return want is None and got is None
    return isinstance(got, int | float) and float(got) == want


def _inside(want: Mapping[str, float | None], got: Mapping[str, object]) -> bool:
    """Whether every published figure lies within the recomputed range (or is absent)."""
    for name in RANGE_FIELDS:
        expected, value = want[name], got.get(name)
        if value is None:
            continue
        if expected is None or not isinstance(value, int | float):
            return False
        if name.endswith("_high") and value > expected:
            return False
        if name.endswith("_low") and value < expected:
            return False
    return True
