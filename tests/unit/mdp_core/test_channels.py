"""The Massive channel list has one source (mdp_core.events); the listener and simulator use it."""

from __future__ import annotations

from mdp_core.events import EVENT_TYPES, MARKET_EVENT_TYPES, SYMBOL_FIELDS
from mdp_listener.settings import KNOWN_CHANNELS
from mdp_sim.massive_ws import SYMBOL_KEYS, TOPIC_PREFIXES


def test_the_listener_and_the_simulator_use_the_core_list_itself() -> None:
    assert KNOWN_CHANNELS is MARKET_EVENT_TYPES
    assert TOPIC_PREFIXES is MARKET_EVENT_TYPES
    assert SYMBOL_KEYS is SYMBOL_FIELDS


def test_the_channels_are_the_stocks_cluster_event_codes() -> None:
    assert frozenset({"A", "AM", "T", "Q", "LULD", "NOI", "FMV", "LV"}) == MARKET_EVENT_TYPES
    assert "status" in EVENT_TYPES
    assert "status" not in MARKET_EVENT_TYPES


def test_the_ticker_key_of_each_event_comes_from_its_model() -> None:
    assert dict(SYMBOL_FIELDS) == {
        "A": "sym",
        "AM": "sym",
        "FMV": "sym",
        "LULD": "T",
        "LV": "sym",
        "NOI": "T",
        "Q": "sym",
        "T": "sym",
    }
