"""The snapshot-to-families collector: labels, wildcards, both histogram forms, missing figures."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mdp_core.telemetry import Metrics
from mdp_runtime.metrics import Family, exposition, flat_histogram, metric_prefix, service_registry


def _scrape(
    families: tuple[Family, ...], snapshot: Mapping[str, object]
) -> dict[str, list[Sample]]:
    text = exposition(service_registry("svc", "9", families, lambda: snapshot)).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_counter_labels_come_from_key_value_keys_and_plain_keys() -> None:
    families = (
        Family("reconnects", "counter", "h", "counters.reconnects", ("reason",)),
        Family("dropped", "counter", "h", "queue.dropped", ("reason",)),
        Family("pairs", "counter", "h", "pairs", ("a", "b")),
    )
    snapshot = {
        "counters": {"reconnects": {"total": 3, "reason=closed": 2, "reason=stale": 1}},
        "queue": {"dropped": {"outbox_full": 4, "note": "not a number"}},
        "pairs": {"a=1,b=2": 7, "b=3": 1},
    }
    found = _scrape(families, snapshot)
    assert [(s.labels, s.value) for s in found["mdp_svc_reconnects"]] == [
        ({"reason": "closed"}, 2.0),
        ({"reason": "stale"}, 1.0),
    ]
    assert [(s.name, s.labels) for s in found["mdp_svc_dropped"]] == [
        ("mdp_svc_dropped_total", {"reason": "outbox_full"})
    ]
    assert [(s.labels, s.value) for s in found["mdp_svc_pairs"]] == [
        ({"a": "1", "b": "2"}, 7.0),
        ({"a": "", "b": "3"}, 1.0),
    ]


def test_an_unlabelled_family_reads_a_number_or_a_counter_total_and_is_zero_when_missing() -> None:
    families = (
        Family("kicks", "counter", "h", "counters.kicks"),
        Family("up", "gauge", "h", "up"),
        Family("never", "counter", "h", "not.there"),
    )
    found = _scrape(families, {"counters": {"kicks": {"total": 2}}, "up": True})
    assert found["mdp_svc_kicks"][0].value == 2.0
    assert found["mdp_svc_up"][0].value == 1.0
    assert found["mdp_svc_never"][0].value == 0.0


def test_a_wildcard_path_takes_the_rest_of_each_matching_key_as_the_label() -> None:
    families = (Family("events", "counter", "h", "events_*", ("ev",)),)
    found = _scrape(families, {"events": 9, "events_A": 5, "events_T": 4, "bad_events_x": 1})
    assert sorted((s.labels["ev"], s.value) for s in found["mdp_svc_events"]) == [
        ("A", 5.0),
        ("T", 4.0),
    ]


def test_histograms_come_from_a_latency_summary_and_from_flat_figures_alike() -> None:
    metrics = Metrics("svc")
    latency = metrics.latency("lag", "s")
    for seconds in (0.0004, 0.02, 0.02, 30.0):
        latency.record(seconds)
    flat = flat_histogram("hist_lag", (0.0005, 0.025), (1, 3), latency.summary().sum, 4)
    families = (
        Family("nested_seconds", "histogram", "h", "latencies.lag"),
        Family("flat_seconds", "histogram", "h", "hist_lag"),
    )
    found = _scrape(families, {**metrics.snapshot(), **flat})
    nested = {s.labels.get("le"): s.value for s in found["mdp_svc_nested_seconds"]}
    assert nested["0.0005"] == 1.0
    assert nested["0.025"] == 3.0
    assert nested["10.0"] == 3.0
    assert nested["+Inf"] == 4.0
    flat_found = {(s.name, s.labels.get("le")): s.value for s in found["mdp_svc_flat_seconds"]}
    assert flat_found[("mdp_svc_flat_seconds_bucket", "0.025")] == 3.0
    assert flat_found[("mdp_svc_flat_seconds_bucket", "+Inf")] == 4.0
    assert flat_found[("mdp_svc_flat_seconds_count", None)] == 4.0
    assert flat_found[("mdp_svc_flat_seconds_sum", None)] == pytest.approx(30.0404)


def test_flat_histograms_of_two_workers_add_up_key_by_key() -> None:
    one = flat_histogram("h", (0.1, 1.0), (1, 2), 0.6, 2)
    two = flat_histogram("h", (0.1, 1.0), (0, 3), 1.5, 3)
    summed = {key: one[key] + two[key] for key in one}
    found = _scrape((Family("h_seconds", "histogram", "h", "h"),), summed)
    assert {
        s.labels.get("le"): s.value for s in found["mdp_svc_h_seconds"] if "le" in s.labels
    } == {
        "0.1": 1.0,
        "1.0": 5.0,
        "+Inf": 5.0,
    }


def test_duplicate_family_names_are_refused() -> None:
    families = (Family("a", "gauge", "h", "x"), Family("a", "gauge", "h", "y"))
    with pytest.raises(ValueError, match="duplicate"):
        service_registry("svc", "1", families, dict)


@pytest.mark.parametrize(
    ("service", "prefix"),
    [
        ("listener", "mdp_listener"),
        ("mdp-news-listener", "mdp_news_listener"),
        ("scanner", "mdp_scanner"),
    ],
)
def test_metric_prefix_drops_a_leading_mdp_and_sanitizes(service: str, prefix: str) -> None:
    assert metric_prefix(service) == prefix
