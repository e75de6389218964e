"""Lag percentiles, the emission map, /proc readers and the report rendering of ``mdp bench``."""

from __future__ import annotations

import dataclasses
import os

import pytest

from mdp_platform.bench.board import check_board
from mdp_platform.bench.processes import ProcessTree, read_cpu_seconds, read_hwm_kib
from mdp_platform.bench.report import (
    PhaseResult,
    delta,
    flatten,
    pick,
    progress_line,
    render_table,
    sum_matching,
)
from mdp_platform.bench.run import BenchError, parse_mix, processor_env, topics_of, with_database
from mdp_platform.bench.stats import EmissionMap, LagSummary, p99_by_second, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([], 0.5) == 0.0


def test_percentile_rejects_a_quantile_outside_0_1() -> None:
    with pytest.raises(ValueError, match="quantile"):
        percentile([1.0], 1.5)


def test_lag_summary_sorts_and_reports_max() -> None:
    summary = LagSummary.of([30.0, 10.0, 20.0, 1000.0])
    assert summary.count == 4
    assert summary.p50_ms == 20.0
    assert summary.p99_ms == 1000.0
    assert summary.max_ms == 1000.0
    assert LagSummary.of([]) == LagSummary(0, 0.0, 0.0, 0.0, 0.0)


def test_emission_map_uses_the_first_chunk_that_reached_the_event_time() -> None:
    emission = EmissionMap([(1_000, 5_000_000_000), (2_000, 6_000_000_000)])
    assert emission.wall_ns(500) == 5_000_000_000
    assert emission.wall_ns(1_000) == 5_000_000_000
    assert emission.wall_ns(1_001) == 6_000_000_000
    assert emission.wall_ns(2_001) is None
    assert emission.lag_ms(1_500, 6_250_000_000) == 250.0
    assert emission.lag_ms(9_999, 1) is None


def test_cpu_and_memory_readers_see_this_process() -> None:
    spent = read_cpu_seconds(os.getpid())
    total = 0
    for i in range(300_000):  # burn a little CPU so the counter must move
        total += i * i
    assert total > 0
    assert read_cpu_seconds(os.getpid()) >= spent > 0.0
    peak = read_hwm_kib(os.getpid())
    assert peak > 1_000
    sample = ProcessTree([os.getpid()]).sample()
    assert sample.processes >= 1
    assert sample.cpu_seconds >= spent
    assert sample.hwm_kib >= peak


def test_readers_return_zero_for_a_process_that_does_not_exist() -> None:
    assert read_cpu_seconds(2**22 + 12345) == 0.0
    assert read_hwm_kib(2**22 + 12345) == 0
    assert ProcessTree([2**22 + 12345]).sample().processes == 0


def test_flatten_delta_pick_and_sums() -> None:
    before = flatten({"queue": {"published_events": {"A": 5, "T": 10}}, "ok": True, "x": [1]})
    after = flatten({"queue": {"published_events": {"A": 15, "T": 30}}, "ok": True})
    assert before == {"queue.published_events.A": 5.0, "queue.published_events.T": 10.0, "ok": 1.0}
    change = delta(after, before)
    assert sum_matching(change, "queue.published_events") == 30.0
    assert pick(change, "missing", "queue.published_events.A") == 10.0
    assert pick(change, "missing") is None


def _phase(name: str, offered: float | None) -> PhaseResult:
    return PhaseResult(
        name=name,
        seconds=10.0,
        offered_rate=offered,
        rates={"simulator": 10_000.0, "listener": 9_990.0, "processor": None, "clients": 50.0},
        end_to_end_rate=None,
        lag_event_to_redis=LagSummary.of([5.0, 7.0]),
        lag_event_to_client=LagSummary.of([]),
        lag_board_to_client=LagSummary.of([3.0]),
        processor_lag={"lag_receipt_p50_seconds": 0.25, "lag_receipt_p99_seconds": 0.5},
        drops={"listener buffer_full (outbox)": 0.0},
        cpu_per_100k={"listener": 0.81},
        processor_flushes=(1_234.0, 56.0) if offered is None else None,
    )


def test_table_shows_each_stage_missing_stages_lags_drops_cpu_and_the_check() -> None:
    table = render_table(
        [_phase("fixed", 10_000.0), _phase("saturation", None)],
        {"listener": 58.0},
        [("top_volume", True, "matches"), ("top_gainers", False, "1 missing")],
    )
    assert "fixed @10,000/s" in table
    assert "processor ev/s" in table
    assert "missing" in table
    assert "5/7/7/7" in table
    assert "250/500" in table
    assert "lost listener buffer_full (outbox)" in table
    flushes = next(line for line in table.splitlines() if line.startswith("processor flushes"))
    assert flushes.split()[-3:] == ["-", "1,234", "(56)"]  # fixed: not reported; saturation
    assert "0.81" in table
    assert "listener 58" in table
    assert "top_volume     PASS" in table
    assert "top_gainers    FAIL  1 missing" in table


def test_progress_line_names_the_phase_and_every_stage() -> None:
    line = progress_line("fixed", 3.0, 20.0, {"simulator": 10_000.0, "processor": None})
    assert line.startswith("[fixed    3/20s]")
    assert "simulator 10,000" in line
    assert "processor -" in line


def test_mix_and_topics() -> None:
    assert parse_mix("a, t") == ("A", "T")
    assert topics_of(("A", "T")) == ("A.*", "AM.*", "LULD.*", "T.*")
    with pytest.raises(BenchError):
        parse_mix("A,X")
    with pytest.raises(BenchError):
        parse_mix("")
    assert with_database("redis://127.0.0.1:6379/0", 13) == "redis://127.0.0.1:6379/13"


def test_check_board_with_fewer_candidates_than_places_wants_them_all() -> None:
    expected = [("A", 3.0), ("B", 2.0)]
    assert check_board("top_gappers", expected, expected, size=100).ok
    assert not check_board("top_gappers", expected, expected[:1], size=100).ok


def test_processor_env_uses_the_names_the_processor_settings_declare() -> None:
    env = processor_env(3, "http://127.0.0.1:9999")
    assert env["MDP_WORKERS"] == "3"
    assert env["MDP_MASSIVE_REST_URL"] == "http://127.0.0.1:9999"


def test_p99_by_second_puts_each_lag_in_the_second_it_arrived() -> None:
    start = 5_000_000_000
    timed = [
        (start, 900.0),  # first instant of second 0
        (start + 999_999_999, 100.0),  # last instant of second 0
        (start + 1_000_000_000, 40.0),  # first instant of second 1
        (start - 1, 7_000.0),  # before the phase: left out
        (start + 3_000_000_000, 8_000.0),  # at the end: left out
    ]
    assert p99_by_second(timed, start, start + 3_000_000_000) == [900.0, 40.0, None]
    # A phase shorter than a second still has its one second.
    assert p99_by_second([], start, start + 10) == [None]


def test_table_lists_each_phase_p99_by_second() -> None:
    seconds = dataclasses.replace(
        _phase("fixed", 10_000.0), client_p99_by_second_ms=(5_400.0, None, 80.5)
    )
    table = render_table([seconds, _phase("saturation", None)], {}, [])
    assert "event->client p99 ms by second (fixed): 5,400 - 80" in table
    assert "(saturation)" not in table


def test_a_watched_symbols_own_emission_dates_its_lag() -> None:
    """Bars of one second all end on it: the first chunk that reached that time dates only
    the first of them; a later one (here 2 s later, at a trickle) is dated by its own."""
    chunks = [(1_000, 10_000_000_000), (2_000, 11_000_000_000)]
    emission = EmissionMap(chunks, {("AAPL", 1_000): 12_000_000_000})
    seen = 12_050_000_000
    assert emission.lag_ms(1_000, seen, "AAPL") == 50.0
    # Another symbol, or no symbol: the chunk map.
    assert emission.lag_ms(1_000, seen, "MSFT") == 2_050.0
    assert emission.lag_ms(1_000, seen) == 2_050.0
    # The same symbol at a time it was not noted at: the chunk map too.
    assert emission.lag_ms(2_000, seen, "AAPL") == 1_050.0
