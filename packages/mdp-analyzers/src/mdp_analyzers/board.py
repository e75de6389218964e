"""Leaderboard rows and board documents, shared by every leaderboard analyzer.

A *row* is what one symbol looks like on a board (and, unchanged, its quote record): the
latest aggregate of the trading day, enriched with reference data and the derived change
figures. A *board document* ranks rows by one metric. Both the Redis-backed
:class:`~mdp_analyzers.leaderboard.LeaderboardAnalyzer` and the in-memory
:class:`~mdp_analyzers.top_stocks.TopStocksAnalyzer` build rows and boards only through this
module, so they produce the same bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import date
from typing import Final

import msgspec

from mdp_cache.keys import (
    FEED_SCANNER_TOP_GAINERS,
    FEED_SCANNER_TOP_GAPPERS,
    FEED_SCANNER_TOP_VOLUME,
    Feed,
)
from mdp_cache.ops import RankedMember
from mdp_cache.records import ReferenceData
from mdp_cache.volume_profile import relative_volume
from mdp_core.calendar import Session
from mdp_core.events import MinuteAggregate, SecondAggregate

__all__ = [
    "BOARD_FEEDS",
    "Board",
    "BoardHeader",
    "BoardStatus",
    "Row",
    "Scores",
    "SessionFigures",
    "bar_problem",
    "build_row",
    "compose_board",
    "encode_row",
]

Aggregate = SecondAggregate | MinuteAggregate


class Board(enum.StrEnum):
    """The leaderboards."""

    TOP_VOLUME = "top_volume"
    TOP_GAPPERS = "top_gappers"
    TOP_GAINERS = "top_gainers"


#: The widget feed of each board.
BOARD_FEEDS: Final[dict[Board, Feed]] = {
    Board.TOP_VOLUME: FEED_SCANNER_TOP_VOLUME,
    Board.TOP_GAPPERS: FEED_SCANNER_TOP_GAPPERS,
    Board.TOP_GAINERS: FEED_SCANNER_TOP_GAINERS,
}


class BoardStatus(enum.StrEnum):
    """Whether a board's rows mean anything yet."""

    LIVE = "live"
    #: Gainers before 09:30 ET: nothing to measure against yet, so the board is empty.
    PRE_OPEN = "pre_open"


def bar_problem(bar: SecondAggregate | MinuteAggregate) -> str | None:
    """Why a bar cannot be right (a rejection reason), or None.

    Every figure built from bars (rows, session ranges, the minute chart) drops the same bars.
    """
    low, high = bar.low, bar.high
    if not 0 < low <= high:
        return "high_below_low" if low > high else "non_positive_price"
    if not (low <= bar.open <= high and low <= bar.close <= high):
        return "price_outside_bar"
    return None


class SessionFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One session's range so far, folded from every bar that started in it.

    Times are bar *ends*: when a figure became known (a minute bar's high is known at the end of
    the minute, after the second bars it spans). A bar belongs to the session it starts in.

    Attributes:
        first_ms: End of the session's first bar.
        high: The session high (the greatest bar ``h``).
        high_ms: End of the earliest bar that reached it.
        low: The session low (the smallest bar ``l``).
        low_ms: End of the earliest bar that reached it.
    """

    first_ms: int
    high: float
    high_ms: int
    low: float
    low_ms: int


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol on a board; also the symbol's quote record.

    Prices in dollars, volumes in shares, percentages as percent (``12.5`` = +12.5 %).
    ``None`` means unknown (reference data not available yet or at all), never zero. The
    trading day is a :class:`~datetime.date` like ``ReferenceData.trading_day``; on the wire
    it is the ISO date (``"2026-03-04"``).
    """

    symbol: str
    trading_day: date
    price: float
    open: float
    high: float
    low: float
    volume: int
    vwap: float
    accumulated_volume: int
    day_vwap: float | None
    average_size: float | None
    official_open: float | None
    session_open: float | None
    avg_volume: float | None
    relative_volume: float | None
    free_float: int | None
    prev_open: float | None
    prev_high: float | None
    prev_low: float | None
    prev_close: float | None
    prev_volume: int | None
    prev_vwap: float | None
    change: float | None
    pct_change: float | None
    change_since_open: float | None
    pct_change_since_open: float | None
    halted: bool
    news: bool | None
    start_ms: int
    end_ms: int
    #: The session figures (None: no bar of that session yet) and the day's range over them.
    pre_market: SessionFigures | None = None
    regular: SessionFigures | None = None
    after_hours: SessionFigures | None = None
    day_high: float | None = None
    day_low: float | None = None
    #: Time-of-day relative volume: the day's volume so far over the average volume traded by
    #: the same time of day (bar end) over the last N trading days (mdp_cache.volume_profile).
    rvol_tod: float | None = None


#: A row's exact score on each board, in :class:`Board` order; None keeps it off that board.
Scores = tuple[float | None, float | None, float | None]


class BoardHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a board document besides its rows (enums travel as their values)."""

    board: Board
    status: BoardStatus
    session: Session
    trading_day: date
    as_of_ms: int
    metric: str


_ENCODER: Final = msgspec.json.Encoder()
_METRIC: Final[dict[Board, str]] = {
    Board.TOP_VOLUME: "accumulated_volume",
    Board.TOP_GAPPERS: "pct_change",
    Board.TOP_GAINERS: "pct_change_since_open",
}


def _exact_pct(price: float, base: float) -> float:
    """The change from ``base`` to ``price`` in percent, unrounded (what boards rank by)."""
    return (price - base) / base * 100.0


def build_row(
    event: Aggregate,
    trading_day: date,
    *,
    reference: ReferenceData | None,
    session_open: float | None,
    halted: bool,
    news: bool | None = None,
    sessions: Sequence[SessionFigures | None] = (None, None, None),
) -> tuple[Row, Scores]:
    """The row of ``event``'s symbol and its exact board scores.

    Percentages on the row are rounded to 4 decimals for display; the scores are the
    unrounded figures, so 0.257308 % ranks above 0.257271 % although both read 0.2573.
    Gappers and gainers list only positive moves; volume lists every symbol.

    Args:
        event: The symbol's latest aggregate of the trading day.
        trading_day: The day the event belongs to.
        reference: Reference data, if known.
        session_open: The regular-session open to measure gainers against: the official
            open, or the first regular-session bar's open; None before 09:30 ET.
        halted: Whether trading in the symbol is halted (LULD).
        news: Whether the symbol has news today, when known.
        sessions: Pre-market, regular and after-hours figures (None: not seen).
    """
    prev = reference.prev_day if reference is not None else None
    avg_volume = reference.avg_volume if reference is not None else None
    price = event.close
    change = pct_change = gap = None
    if prev is not None and prev.close > 0:
        change = round(price - prev.close, 6)
        gap = _exact_pct(price, prev.close)
        pct_change = round(gap, 4)
    change_open = pct_open = gain = None
    if session_open is not None and session_open > 0:
        change_open = round(price - session_open, 6)
        gain = _exact_pct(price, session_open)
        pct_open = round(gain, 4)
    pre_market, regular, after_hours = sessions
    seen = [figures for figures in sessions if figures is not None]
    row = Row(
        symbol=event.symbol,
        trading_day=trading_day,
        price=price,
        open=event.open,
        high=event.high,
        low=event.low,
        volume=event.volume,
        vwap=event.vwap,
        accumulated_volume=event.accumulated_volume,
        day_vwap=event.day_vwap,
        average_size=event.average_size,
        official_open=event.official_open,
        session_open=session_open,
        avg_volume=avg_volume,
        relative_volume=(round(event.accumulated_volume / avg_volume, 4) if avg_volume else None),
        free_float=reference.free_float if reference is not None else None,
        prev_open=prev.open if prev is not None else None,
        prev_high=prev.high if prev is not None else None,
        prev_low=prev.low if prev is not None else None,
        prev_close=prev.close if prev is not None else None,
        prev_volume=prev.volume if prev is not None else None,
        prev_vwap=prev.vwap if prev is not None else None,
        change=change,
        pct_change=pct_change,
        change_since_open=change_open,
        pct_change_since_open=pct_open,
        halted=halted,
        news=news,
        start_ms=event.start_ms,
        end_ms=event.end_ms,
        pre_market=pre_market,
        regular=regular,
        after_hours=after_hours,
        day_high=max(figures.high for figures in seen) if seen else None,
        day_low=min(figures.low for figures in seen) if seen else None,
        rvol_tod=relative_volume(
            reference.volume_profile if reference is not None else None,
            event.accumulated_volume,
            event.end_ms,
        ),
    )
    scores: Scores = (
        float(event.accumulated_volume),
        gap if gap is not None and gap > 0 else None,
        gain if gain is not None and gain > 0 else None,
    )
    return row, scores


def encode_row(row: Row) -> bytes:
    """The row's JSON bytes (the quote record payload and the board row, minus its rank)."""
    return _ENCODER.encode(row)


def compose_board(
    board: Board,
    ranked: Sequence[RankedMember],
    *,
    trading_day: date,
    session: Session,
    as_of_ms: int,
    status: BoardStatus = BoardStatus.LIVE,
) -> bytes:
    """The board document: header fields plus ``rows``, each row with its 1-based ``rank``.

    Rows are spliced in as stored (no decode/re-encode): ``{"rank":N,`` replaces each row's
    opening brace.
    """
    header = _ENCODER.encode(
        BoardHeader(
            board=board,
            status=status,
            session=session,
            trading_day=trading_day,
            as_of_ms=as_of_ms,
            metric=_METRIC[board],
        )
    )
    rows = b",".join(
        b'{"rank":%d,%s' % (rank, item.payload[1:])
        for rank, item in enumerate(ranked if status is BoardStatus.LIVE else (), start=1)
    )
    return header[:-1] + b',"rows":[' + rows + b"]}"
