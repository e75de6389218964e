"""The processor's /metrics is the sum of its workers: counters, labels and histogram buckets."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mdp_processor.__main__ import metrics_of
from mdp_processor.metrics import FAMILIES
from mdp_processor.stats import ProcessorStats
from mdp_runtime.metrics import exposition, service_registry
from mdp_runtime.process import WorkerStatus


def _worker(index: int, alive: bool, stats: ProcessorStats, **extra: Any) -> WorkerStatus:
    counters = {**stats.snapshot(), "ready": alive, **extra}
    return WorkerStatus(index, f"w-{index}", alive, 100 + index, 0, None, None, counters)


def test_the_parent_serves_the_sum_of_its_workers() -> None:
    one, two = ProcessorStats(), ProcessorStats()
    one.events.update({"T": 5, "A": 2})
    two.events.update({"T": 7})
    one.bad_events["future"] += 1
    for seconds in (0.0002, 0.003):
        one.lag_event.add(seconds)
    for seconds in (0.003, 0.2, 30.0):
        two.lag_event.add(seconds)
    statuses = [_worker(0, True, one, stale_dropped=3), _worker(1, False, two, stale_dropped=4)]
    text = exposition(service_registry("processor", "1", FAMILIES, lambda: metrics_of(statuses)))
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}

    applied = {s.labels["ev"]: s.value for s in families["mdp_processor_events_applied"].samples}
    assert applied == {"T": 12, "A": 2}
    assert families["mdp_processor_stale_dropped"].samples[0].value == 7
    assert [(s.labels, s.value) for s in families["mdp_processor_bad_events"].samples] == [
        ({"kind": "future"}, 1)
    ]
    lag = {
        (s.name.rsplit("_", 1)[-1], s.labels.get("le")): s.value
        for s in families["mdp_processor_event_to_write_seconds"].samples
    }
    assert lag[("bucket", "0.0005")] == 1
    assert lag[("bucket", "0.005")] == 3
    assert lag[("bucket", "0.25")] == 4
    assert lag[("bucket", "10.0")] == 4
    assert lag[("bucket", "+Inf")] == 5
    assert lag[("count", None)] == 5
    assert lag[("sum", None)] == pytest.approx(30.2062)
    gauges = {name: families[f"mdp_processor_{name}"].samples[0].value
              for name in ("workers", "workers_alive", "workers_ready")}  # fmt: skip
    assert gauges == {"workers": 2, "workers_alive": 1, "workers_ready": 1}
