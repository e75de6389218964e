"""Figures that merge as a lattice: the text form MDC stores and the merge it applies.

A row's *figures* (session highs and lows, the session's first bar, the regular-session open)
are facts about every event of a symbol, not about the latest one, so no single replica's row
can be trusted to hold them all. MDC therefore keeps, beside each row, the lattice join of every
figure any replica ever offered, and refuses to store a row whose figures do not include that
join (see :class:`~mdp_cache.ops.PutMerged`). This module is the Python twin of the merge the
Lua script does; both must agree byte for byte.

Text form: terms ``name<op>a@b`` joined by ``,`` in ascending name order, where ``a`` and ``b``
are decimal numbers exactly as Python's ``repr`` writes them (so a stored figure round-trips
without loss) and ``op`` says how two terms of one name merge:

* ``+``: the greater ``a`` wins; at equal ``a`` the smaller ``b`` (a high and the earliest time
  it was reached);
* ``-``: the smaller ``a`` wins; at equal ``a`` the smaller ``b`` (a low and its earliest time,
  the earliest bar and its open).

The join is commutative, associative and idempotent, so any order, duplication or split of
offers across replicas gives the same text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal

__all__ = ["MAX", "MIN", "Term", "join", "join_terms", "parse", "render"]

Op = Literal["+", "-"]

MAX: Final[Op] = "+"
"""Greater first component wins (then the smaller second)."""
MIN: Final[Op] = "-"
"""Smaller first component wins (then the smaller second)."""

#: One figure: how it merges, its value and its tie-breaker (both numbers as their text).
Term = tuple[Op, str, str]


def _key(term: Term) -> tuple[float, float]:
    op, a, b = term
    return (-float(a) if op == MAX else float(a), float(b))


def join_terms(left: Term, right: Term) -> Term:
    """The winner of two terms of one name (``left`` on an exact tie: they are equal)."""
    if left[0] != right[0]:
        # A name changed its merge rule: keep the newer rule's term (never happens in practice).
        return right
    return right if _key(right) < _key(left) else left


def parse(text: str) -> dict[str, Term]:
    """The terms of a figures text (an empty text has none).

    Raises:
        ValueError: the text is not in the form described in the module docstring.
    """
    terms: dict[str, Term] = {}
    if not text:
        return terms
    for part in text.split(","):
        # The name ends at the first sign (numbers may hold one in an exponent, names never).
        cut = min((i for i in (part.find(MAX), part.find(MIN)) if i > 0), default=-1)
        a, at, b = part[cut + 1 :].partition("@")
        if cut < 0 or not at:
            msg = f"not a figures term: {part[:40]!r}"
            raise ValueError(msg)
        float(a), float(b)  # both must be numbers
        terms[part[:cut]] = (MAX if part[cut] == MAX else MIN, a, b)
    return terms


def render(terms: Mapping[str, Term]) -> str:
    """The canonical text of ``terms`` (names ascending)."""
    return ",".join(f"{name}{op}{a}@{b}" for name, (op, a, b) in sorted(terms.items()))


def join(*texts: str) -> str:
    """The lattice join of figures texts, in canonical form."""
    merged: dict[str, Term] = {}
    for text in texts:
        _join_into(merged, parse(text).items())
    return render(merged)


def _join_into(merged: dict[str, Term], terms: Iterable[tuple[str, Term]]) -> None:
    for name, term in terms:
        old = merged.get(name)
        merged[name] = term if old is None else join_terms(old, term)
