"""Reading quote records for the alert analyzers: each record once, each refusal every time."""

from __future__ import annotations

import pytest

from mdp_analyzers.alerts import decode_quote_seen
from mdp_core.errors import InvalidJson, OutOfRange

RECORD = (
    b'{"symbol":"ACME","trading_day":"2026-03-04","price":4.8,"open":4.5,'
    b'"start_ms":1000,"end_ms":2000,"accumulated_volume":12000,"rvol_tod":2.5}'
)


def test_a_record_is_read_once_for_every_analyzer_that_asks() -> None:
    first = decode_quote_seen(RECORD)
    again = decode_quote_seen(bytes(bytearray(RECORD)))  # equal bytes, another object
    assert again is first
    assert (first.symbol, first.price, first.open, first.end_ms) == ("ACME", 4.8, 4.5, 2000)
    assert (first.accumulated_volume, first.rvol_tod, first.pct_change) == (12000, 2.5, None)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"{not json", InvalidJson),
        (RECORD.replace(b'"price":4.8', b'"price":-4.8'), OutOfRange),
        (RECORD.replace(b'"rvol_tod":2.5', b'"rvol_tod":-1'), OutOfRange),
        # A symbol no feed name can hold, and times the calendar cannot place.
        (RECORD.replace(b'"ACME"', b'"AC ME"'), InvalidJson),
        (RECORD.replace(b'"ACME"', b'"ACME:X"'), InvalidJson),
        (RECORD.replace(b'"ACME"', b'"ABCDEFGHIJKLMNOPQ"'), InvalidJson),
        (RECORD.replace(b'"end_ms":2000', b'"end_ms":1000000000000000'), InvalidJson),
        (RECORD.replace(b'"start_ms":1000', b'"start_ms":-1'), InvalidJson),
    ],
)
def test_a_refused_record_is_refused_every_time(payload: bytes, error: type[Exception]) -> None:
    for _ in range(2):  # not remembered: each analyzer counts its own refusal
        with pytest.raises(error):
            decode_quote_seen(payload)


def test_the_last_placeable_time_and_the_longest_symbol_are_read() -> None:
    edge = RECORD.replace(b'"ACME"', b'"ABCDEFGHIJKLMNOP"').replace(
        b'"end_ms":2000', b'"end_ms":32503680000000'
    )
    seen = decode_quote_seen(edge)
    assert (seen.symbol, seen.end_ms) == ("ABCDEFGHIJKLMNOP", 32_503_680_000_000)
    with pytest.raises(InvalidJson):
        decode_quote_seen(edge.replace(b"32503680000000", b"32503680000001"))
