"""A per-symbol name from the catalogue is made once and is always the template's."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_cache import keys
from mdp_cache.keys import (
    ALL_FEEDS,
    ALL_KEYS,
    FEED_QUOTE,
    FEED_SCANNER_TOP_GAINERS,
    KEY_REF_SNAPSHOT,
    KEY_TT_WINDOW,
)

TEMPLATES: list[keys.Feed | keys.Key] = [*ALL_FEEDS, *ALL_KEYS]
PER_SYMBOL = [t for t in TEMPLATES if set(re.findall(r"\{(\w+)\}", t.template)) == {"symbol"}]
SYMBOLS = st.text(st.characters(whitelist_categories=("Lu", "Nd")), min_size=1, max_size=8)


@given(st.sampled_from(PER_SYMBOL), SYMBOLS)
def test_of_is_the_name_with_that_symbol(template: keys.Feed | keys.Key, symbol: str) -> None:
    assert template.of(symbol) == template.name(symbol=symbol)
    assert template.of(symbol) == template.name(symbol=symbol)  # remembered, still equal


def test_every_per_symbol_template_is_covered() -> None:
    assert FEED_QUOTE in PER_SYMBOL
    assert KEY_TT_WINDOW in PER_SYMBOL
    assert len(PER_SYMBOL) >= 8


def test_a_name_is_made_once() -> None:
    first = FEED_QUOTE.of("ACME")
    assert first == "quote:ACME"
    assert FEED_QUOTE.of("ACME") is first
    assert KEY_TT_WINDOW.of("ACME") == "mdp:tt:{ACME}:window"


@pytest.mark.parametrize("template", [FEED_SCANNER_TOP_GAINERS, KEY_REF_SNAPSHOT])
def test_a_template_not_named_by_a_symbol_alone_refuses(template: keys.Feed | keys.Key) -> None:
    with pytest.raises(KeyError, match="not named by a symbol alone"):
        template.of("ACME")


def test_past_the_bound_names_are_made_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "_REMEMBERED_SYMBOLS", 0)
    first = FEED_QUOTE.of("ZZNEW1")
    assert first == "quote:ZZNEW1"
    again = FEED_QUOTE.of("ZZNEW1")
    assert again == first
    assert again is not first  # not remembered


@pytest.mark.parametrize("name", ["quote:AAPL\n", "scanner:top_gainers\n", "quote:\n"])
def test_a_final_newline_is_not_a_name_of_the_feed(name: str) -> None:
    # `$` matches before a final newline: the WDS subscribed such names in Redis.
    feed = FEED_QUOTE if name.startswith("quote:") else FEED_SCANNER_TOP_GAINERS
    assert not feed.matches(name)
    assert feed.matches(name.rstrip("\n")) == (name != "quote:\n")
