"""The halt book against a reference: newer record wins (time, then SHA-1), recency bounds.

Pinned by mutation testing (issue 21).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.halts import LULD_HALT, LULD_RESUME, HaltBook, HaltRecord, halt_op
from mdp_cache.keys import KEY_HALTS
from mdp_cache.ops import RankedMember
from mdp_testing.conformance import luld

T0 = 1_772_000_000_000


def _sha(payload: bytes) -> str:
    return hashlib.sha1(payload).hexdigest()  # noqa: S324 - the backends' tie-break, not security


_step = st.one_of(
    st.tuples(
        st.just("note"),
        st.sampled_from(["A", "B"]),
        st.integers(min_value=0, max_value=3),
        st.sampled_from([(LULD_HALT,), (LULD_RESUME,), (), (LULD_HALT, LULD_RESUME)]),
    ),
    st.tuples(
        st.just("row"),
        st.sampled_from(["A", "B"]),
        st.integers(min_value=0, max_value=3),
        st.sampled_from([(True,), (False,), ()]),
    ),
)


@given(st.lists(_step, max_size=20))
def test_the_book_keeps_what_the_backends_keep(steps: list[tuple[str, str, int, Any]]) -> None:
    book = HaltBook()
    kept: dict[str, tuple[int, bytes, bool]] = {}
    for kind, symbol, second, detail in steps:
        at = T0 + second * 1000
        if kind == "note":
            event = luld(symbol, at, *detail)
            halted = None if not detail else LULD_HALT in detail
            changed = book.note(event)
            if halted is None:
                assert changed is False
                continue
            payload = halt_op(symbol, at, HaltRecord(halted, at, 11.0, 9.0)).payload
            rows = None
        else:
            if not detail:
                rows = [RankedMember(symbol, float(at), b"not json")]
                assert book.merge(rows) == set()
                continue
            halted = detail[0]
            payload = msgspec.json.encode(HaltRecord(halted, at, 1.0, 0.5))
            changed = symbol in book.merge(
                [RankedMember(symbol, float(at), b"{"), RankedMember(symbol, float(at), payload)]
            )
        old = kept.get(symbol)
        wins = old is None or at > old[0] or (at == old[0] and _sha(payload) > _sha(old[1]))
        if wins:
            kept[symbol] = (at, payload, halted)
        assert changed == (wins and (old is None or old[2] != halted))
        for name in ("A", "B"):
            record = kept.get(name)
            assert book.version(name) == (0 if record is None else record[0])
            assert book.halted(name) == (record is not None and record[2])
    assert set(book.active()) == {name for name, (_, _, halted) in kept.items() if halted}


def test_recency_is_seconds_from_now_offset_by_128_and_clamped() -> None:
    book = HaltBook()
    assert book.recency("A", T0) == 0
    book.note(luld("A", T0, LULD_HALT))
    assert book.recency("A", T0) == 128
    assert book.recency("A", T0 - 1_000) == 129
    assert book.recency("A", T0 - 1_999) == 129
    assert book.recency("A", T0 + 1) == 127
    assert book.recency("A", T0 - 127_000) == 255
    assert book.recency("A", T0 - 500_000) == 255
    assert book.recency("A", T0 + 127_000) == 1
    assert book.recency("A", T0 + 126_000) == 2
    assert book.recency("A", T0 + 500_000) == 1


def test_halt_rows_carry_the_catalogue_ttl_and_band_updates_write_nothing() -> None:
    book = HaltBook()
    assert book.note(luld("A", T0)) is False
    assert book.take_ops() == []
    assert book.note(luld("A", T0, LULD_HALT)) is True
    (op,) = book.take_ops()
    assert (op.member, op.version, op.ttl) == ("A", T0, KEY_HALTS.ttl)
    assert msgspec.json.decode(op.payload, type=HaltRecord) == HaltRecord(True, T0, 11.0, 9.0)
    assert book.take_ops() == []


def test_a_halt_counts_only_from_its_own_news_time_on() -> None:
    book = HaltBook()
    book.note(luld("AAA", T0, LULD_HALT))
    assert book.halted("AAA")
    assert book.halted("AAA", T0)  # news at the boundary counts
    assert not book.halted("AAA", T0 + 1)  # a later trading day's start: the pause is over
    assert not book.halted("BBB", 0)
    book.note(luld("AAA", T0 + 5, LULD_RESUME))
    assert not book.halted("AAA", T0)
    first = HaltBook()
    first.note(luld("AAA", 0, LULD_HALT))  # news at the epoch: from 0 on by default
    assert first.halted("AAA")
