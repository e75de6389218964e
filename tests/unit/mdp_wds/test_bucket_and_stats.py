from prometheus_client.parser import text_string_to_metric_families

from mdp_wds.bucket import TokenBucket
from mdp_wds.stats import WdsStats


def test_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 token refilled
    assert bucket.take(0.5) is True  # 1.0 token
    assert bucket.take(100.0) is True
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]  # capped at burst


def test_bucket_ignores_time_going_backwards() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)


def test_prometheus_text_has_labelled_counters_and_a_cumulative_histogram() -> None:
    stats = WdsStats(clients=3)
    stats.disconnects["too_slow"] += 2
    stats.violations["bad_origin"] += 1
    for seconds in (0.0005, 0.02, 0.02, 30.0):
        stats.lag.observe(seconds)
    text = stats.prometheus().decode()
    parsed = {family.name: family for family in text_string_to_metric_families(text)}
    assert parsed["mdp_wds_clients"].type == "gauge"
    assert parsed["mdp_wds_clients"].samples[0].value == 3
    assert parsed["mdp_wds_disconnects"].type == "counter"
    assert [(s.name, s.labels, s.value) for s in parsed["mdp_wds_disconnects"].samples] == [
        ("mdp_wds_disconnects_total", {"reason": "too_slow"}, 2)
    ]
    assert [(s.labels, s.value) for s in parsed["mdp_wds_violations"].samples] == [
        ({"reason": "bad_origin"}, 1)
    ]
    lag = parsed["mdp_wds_delivery_lag_seconds"]
    assert lag.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in lag.samples if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 1
    assert buckets["0.025"] == 3
    assert buckets["10.0"] == 3
    assert buckets["+Inf"] == 4
    assert all(family.documentation for family in parsed.values())
    assert stats.as_dict()["disconnects"] == {"too_slow": 2}
