"""The broker node list and the cluster declaration of the topology (pure; no broker)."""

from __future__ import annotations

import pytest

from mdp_queues import QueueSettings, Topology, broker_urls

A = "amqp://u:p@a:5672/"
B = "amqps://u:p@b:5671/v"


def test_one_url_is_one_node_and_a_list_keeps_its_order() -> None:
    assert broker_urls(A) == (A,)
    assert broker_urls(f"{A}, {B}") == (A, B)
    assert broker_urls(f"{B},{A}") == (B, A)
    assert broker_urls([B, A]) == (B, A)


@pytest.mark.parametrize(
    "value", ["", ",", f"{A},", f"{A},,{B}", [], "redis://a:6379/0", f"{A},http://b/"]
)
def test_an_empty_item_or_another_scheme_is_refused_without_echoing_the_url(
    value: str | list[str],
) -> None:
    with pytest.raises(ValueError, match="broker URL") as caught:
        broker_urls(value)
    assert "u:p" not in str(caught.value)  # credentials stay out of the message


def test_cluster_queues_are_transient_spread_and_otherwise_identical() -> None:
    single = Topology(partitions=2)
    cluster = Topology(partitions=2, cluster=True)
    assert [q.name for q in single.queues] == [q.name for q in cluster.queues]
    for one, spread in zip(single.queues, cluster.queues, strict=True):
        assert one.durable
        assert not spread.durable
        assert spread.arguments == {**one.arguments, "x-queue-master-locator": "min-masters"}
        assert "x-queue-master-locator" not in one.arguments
        assert (one.ttl_ms, one.partition) == (spread.ttl_ms, spread.partition)


def test_the_cluster_setting_reaches_the_topology() -> None:
    assert QueueSettings(cluster=True).topology().cluster
    assert not QueueSettings().topology().cluster
