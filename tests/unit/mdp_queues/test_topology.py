from __future__ import annotations

import pytest

from mdp_core.events import EVENT_TYPES
from mdp_queues import NEWS_KIND, Topology


def test_every_market_event_type_has_its_own_queue() -> None:
    topology = Topology()
    kinds = {ev for ev in EVENT_TYPES if ev != "status"}
    assert topology.event_kinds == kinds
    names = [q.name for q in topology.queues]
    assert len(names) == len(set(names))
    assert topology.for_kind("T").name == "mdq.trades"  # type: ignore[union-attr]
    assert topology.for_kind("XYZ") is None


def test_prefix_applies_to_every_queue() -> None:
    topology = Topology(prefix="tenant.")
    assert all(q.name.startswith("tenant.mdq.") for q in topology.queues)
    assert topology.by_name("tenant.mdq.news") is topology.news


def test_arguments_bound_memory_and_age() -> None:
    topology = Topology(ttl_ms=5000, news_ttl_ms=900_000, max_length_bytes=1024)
    trades = topology.for_kind("T")
    assert trades is not None
    assert trades.arguments == {
        "x-message-ttl": 5000,
        "x-max-length-bytes": 1024,
        "x-overflow": "drop-head",
    }
    assert topology.news.kind == NEWS_KIND
    assert topology.news.arguments["x-message-ttl"] == 900_000
    assert trades.ttl_seconds == 5.0


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Topology(ttl_ms=0)
    with pytest.raises(KeyError, match="no queue"):
        Topology().by_name("nope")
