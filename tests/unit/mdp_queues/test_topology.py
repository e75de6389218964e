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


def test_a_partitioned_topology_has_one_queue_per_type_and_partition() -> None:
    topology = Topology(prefix="t.", partitions=4)
    trades = topology.partitions_of("T")
    assert [q.name for q in trades] == [f"t.mdq.trades.p{n}" for n in range(4)]
    assert [q.partition for q in trades] == [0, 1, 2, 3]
    assert all(q.kind == "T" for q in trades)
    # News is never partitioned; unknown types have no queue at all.
    assert topology.news.name == "t.mdq.news"
    assert topology.news.partition is None
    assert topology.partitions_of("XYZ") == ()
    assert topology.for_kind("XYZ", "AAPL") is None
    assert len(topology.market_queues) == 4 * len(topology.event_kinds)
    assert topology.by_name("t.mdq.trades.p3") is trades[3]


def test_a_symbol_lands_in_the_same_partition_for_every_type_and_process() -> None:
    topology = Topology(partitions=8)
    # CRC-32 of the symbol: pinned, because listeners and processors on other machines (and
    # other versions) must agree on it.
    assert [topology.partition(s) for s in ("AAPL", "MSFT", "TSLA", "")] == [
        0xB665575C % 8,
        0xECE5B27B % 8,
        0x56C6A60F % 8,
        0,
    ]
    for symbol in ("AAPL", "BRK.B", "ZVZZT"):
        numbers = {topology.for_kind(kind, symbol).partition for kind in topology.event_kinds}  # type: ignore[union-attr]
        assert numbers == {topology.partition(symbol)}


def test_one_partition_is_the_unpartitioned_topology() -> None:
    one = Topology(partitions=1)
    assert not one.partitioned
    assert one.for_kind("T", "AAPL") is one.for_kind("T")
    assert [q.name for q in one.queues] == [q.name for q in Topology().queues]


@pytest.mark.parametrize("partitions", [0, -1, 257])
def test_partitions_out_of_range_are_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match=r"partitions must be within 1\.\.256"):
        Topology(partitions=partitions)
