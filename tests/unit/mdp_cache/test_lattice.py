"""The figures lattice: text form and join laws (the Lua twin is checked against real Redis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_cache import lattice

NAMES = ("pmh", "pml", "pmf", "rgh", "op")
PRICES = st.sampled_from([0.5, 1.0, 1e-05, 2.5, 10.0, 10.25, 123456.789, 1e9])
TIMES = st.integers(0, 5)


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Figures texts over a few names, one merge rule per name (as the analyzer writes them)."""
    terms: dict[str, lattice.Term] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True)):
        op = lattice.MAX if name.endswith("h") else lattice.MIN
        terms[name] = (op, repr(draw(PRICES)), str(draw(TIMES)))
    return lattice.render(terms)


def test_render_is_canonical_and_parse_round_trips() -> None:
    terms: dict[str, lattice.Term] = {
        "rgh": (lattice.MAX, "10.5", "3"),
        "op": (lattice.MIN, "1772629200000", "1e-05"),
    }
    text = lattice.render(terms)
    assert text == "op-1772629200000@1e-05,rgh+10.5@3"
    assert lattice.parse(text) == terms
    assert lattice.parse("") == {}


@pytest.mark.parametrize("bad", ["x", "a+1", "+1@2", "a+x@1", "a-1@y", "a*1@2"])
def test_parse_refuses_what_is_not_a_term(bad: str) -> None:
    with pytest.raises(ValueError, match=r"figures term|could not convert"):
        lattice.parse(bad)


def test_max_takes_the_greater_value_then_the_earlier_time() -> None:
    assert lattice.join("h+10.0@5", "h+10.5@9") == "h+10.5@9"
    assert lattice.join("h+10.5@9", "h+10.0@5") == "h+10.5@9"
    assert lattice.join("h+10.5@9", "h+10.5@4") == "h+10.5@4"


def test_min_takes_the_smaller_value_then_the_earlier_second() -> None:
    assert lattice.join("l-10.0@5", "l-9.5@9") == "l-9.5@9"
    assert lattice.join("l-9.5@9", "l-9.5@4") == "l-9.5@4"
    # The regular open: the earliest bar, and at one start the smaller open.
    assert lattice.join("op-100@10.5", "op-99@11.0") == "op-99@11.0"
    assert lattice.join("op-100@10.5", "op-100@10.25") == "op-100@10.25"


def test_numbers_compare_as_numbers_not_text() -> None:
    assert lattice.join("h+9.0@1", "h+10.0@1") == "h+10.0@1"
    assert lattice.join("l-1e-05@1", "l-0.5@1") == "l-1e-05@1"


def test_names_union_in_order() -> None:
    assert lattice.join("b+1.0@1", "a-2.0@0") == "a-2.0@0,b+1.0@1"


@given(texts(), texts(), texts())
def test_join_is_a_semilattice(a: str, b: str, c: str) -> None:
    assert lattice.join(a, b) == lattice.join(b, a)
    assert lattice.join(lattice.join(a, b), c) == lattice.join(a, lattice.join(b, c))
    assert lattice.join(a, a) == lattice.join(a)
    assert lattice.join(lattice.join(a, b), a) == lattice.join(a, b)


# Pinned by mutation testing (issue 21).


def test_an_exact_tie_keeps_the_left_term_as_written() -> None:
    left: lattice.Term = ("+", "1", "2")
    right: lattice.Term = ("+", "1.0", "2.0")
    assert lattice.join_terms(left, right) == left
    assert lattice.join_terms(right, left) == right
    other_rule: lattice.Term = ("-", "0", "0")
    assert lattice.join_terms(left, other_rule) == other_rule  # the rule changed: the newer wins


def test_a_sign_inside_an_exponent_does_not_end_the_name() -> None:
    assert lattice.parse("high+1e+05@2,low-2E-3@1e-07") == {
        "high": ("+", "1e+05", "2"),
        "low": ("-", "2E-3", "1e-07"),
    }


def test_a_refused_term_is_quoted_up_to_40_characters() -> None:
    bad = "x" * 50
    with pytest.raises(ValueError, match=r"^not a figures term: ") as refused:
        lattice.parse(bad)
    assert str(refused.value) == f"not a figures term: {'x' * 40!r}"
