"""Decoded events are invisible to the cyclic garbage collector (they can be in no cycle)."""

from __future__ import annotations

import gc

import msgspec

from mdp_core.envelope import decode_event_batch, encode_envelope
from mdp_core.events import EVENT_TYPES

_WIRE = [
    b'{"ev":"T","sym":"AAPL","x":4,"i":"1","p":190.5,"s":100,"c":[12,37],"t":1700000000000}',
    b'{"ev":"A","sym":"AAPL","v":10,"av":900,"vw":190.1,"o":190.0,"h":190.6,"l":189.9,'
    b'"c":190.5,"s":1700000000000,"e":1700000001000}',
    b'{"ev":"Q","sym":"AAPL","bp":190.4,"bs":3,"ap":190.6,"as":2,"i":[1],"t":1700000000000}',
    b'{"ev":"LULD","T":"AAPL","h":200.0,"l":180.0,"i":[17],"t":1700000000000}',
]


def test_every_event_type_is_untracked() -> None:
    """A tracked event type would put tens of thousands of objects a second before the GC."""
    assert all(not cls.__struct_config__.gc for cls in EVENT_TYPES.values())


def test_decoded_events_are_not_tracked() -> None:
    body = encode_envelope(
        kind="mixed", source="test", batch="b1", received_ns=1,
        events=[msgspec.Raw(wire) for wire in _WIRE],
    )  # fmt: skip
    batch = decode_event_batch(body)
    assert batch.errors == []
    assert len(batch.events) == len(_WIRE)
    assert not any(gc.is_tracked(event) for event in batch.events)
