"""Board documents and rows on the wire: typed fields inside, the same bytes outside.

The header's board, status and session are the ``Board``/``BoardStatus``/``Session`` enums and
the trading days are dates (as ``ReferenceData.trading_day``); clients still read the enum
values and ISO dates they always did. The literals below are the bytes the str-typed fields
produced before the change.
"""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from mdp_analyzers.board import (
    Board,
    BoardHeader,
    BoardStatus,
    Row,
    SessionFigures,
    build_row,
    compose_board,
    encode_row,
)
from mdp_analyzers.state import RankedMember
from mdp_cache.records import DailyBar, ReferenceData
from mdp_core.calendar import Session
from mdp_testing.conformance import aggregate, at_ms

DAY = date(2026, 3, 4)


def _row() -> Row:
    bar = msgspec.structs.replace(
        aggregate("AAA", at_ms(DAY, 10, 0), close=1.25, accumulated_volume=1_234),
        day_vwap=1.2,
        average_size=33.0,
        official_open=0.5,
    )
    prev = DailyBar(
        day=date(2026, 3, 3), open=0.41, high=0.52, low=0.33, close=0.5, volume=77, vwap=0.44
    )
    reference = ReferenceData(
        symbol="AAA", trading_day=DAY, prev_day=prev, avg_volume=7.0, free_float=123_456
    )
    pre = SessionFigures(first_ms=1, high=1.1, high_ms=2, low=0.9, low_ms=3)
    row, _ = build_row(
        bar,
        DAY,
        reference=reference,
        session_open=0.5,
        halted=False,
        news=True,
        sessions=(pre, None, None),
    )
    return row


def test_a_row_carries_its_day_as_a_date_and_encodes_it_as_the_iso_date() -> None:
    row = _row()
    assert row.trading_day == DAY
    payload = encode_row(row)
    assert payload.startswith(b'{"symbol":"AAA","trading_day":"2026-03-04","price":1.25,')
    assert payload.endswith(b',"day_high":1.1,"day_low":0.9,"rvol_tod":null}')
    assert msgspec.json.decode(payload, type=Row) == row  # a stored row reads back whole


def test_a_row_stored_with_a_bad_day_is_refused_on_decode() -> None:
    payload = encode_row(_row()).replace(b'"2026-03-04"', b'"2026-13-04"')
    with pytest.raises(msgspec.ValidationError, match="trading_day"):
        msgspec.json.decode(payload, type=Row)


@pytest.mark.parametrize(
    ("board", "status", "session", "header"),
    [
        (
            Board.TOP_GAINERS,
            BoardStatus.LIVE,
            Session.REGULAR,
            b'{"board":"top_gainers","status":"live","session":"regular",'
            b'"trading_day":"2026-03-04","as_of_ms":7,"metric":"pct_change_since_open",',
        ),
        (
            Board.TOP_VOLUME,
            BoardStatus.PRE_OPEN,
            Session.PRE_MARKET,
            b'{"board":"top_volume","status":"pre_open","session":"pre_market",'
            b'"trading_day":"2026-03-04","as_of_ms":7,"metric":"accumulated_volume",',
        ),
        (
            Board.TOP_GAPPERS,
            BoardStatus.LIVE,
            Session.AFTER_HOURS,
            b'{"board":"top_gappers","status":"live","session":"after_hours",'
            b'"trading_day":"2026-03-04","as_of_ms":7,"metric":"pct_change",',
        ),
    ],
)
def test_board_headers_are_the_enum_values_and_the_iso_date(
    board: Board, status: BoardStatus, session: Session, header: bytes
) -> None:
    payload = encode_row(_row())
    document = compose_board(
        board,
        [RankedMember("AAA", 1.0, payload)],
        trading_day=DAY,
        session=session,
        as_of_ms=7,
        status=status,
    )
    rows = b'[{"rank":1,' + payload[1:] + b"]" if status is BoardStatus.LIVE else b"[]"
    assert document == header + b'"rows":' + rows + b"}"
    decoded = msgspec.json.decode(document.replace(b',"rows":' + rows, b""), type=BoardHeader)
    assert (decoded.board, decoded.status, decoded.session) == (board, status, session)
    assert decoded.trading_day == DAY
