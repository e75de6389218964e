"""The sustained-rate search of ``mdp bench``: the rates it offers, the ones it calls sustained."""

from __future__ import annotations

import pytest

from mdp_platform.__main__ import build_parser
from mdp_platform.bench.run import _search_lines
from mdp_platform.bench.sustained import SearchStep, SustainedSearch, share_within


def _kept(asked: float) -> SearchStep:
    return SearchStep(asked, asked, asked)


def test_rates_rise_by_the_factor_until_a_step_falls_behind() -> None:
    search = SustainedSearch(start=1_000.0, factor=2.0, max_steps=10)
    offered = []
    while (rate := search.next_rate()) is not None:
        offered.append(rate)
        # The processors write 4,000 ev/s at most.
        search.record(SearchStep(rate, rate, min(rate, 4_000.0)))
    assert offered == [1_000.0, 2_000.0, 4_000.0, 8_000.0]


def test_the_search_ends_after_max_steps_even_when_every_step_kept_up() -> None:
    search = SustainedSearch(start=10.0, factor=1.5, max_steps=3)
    while (rate := search.next_rate()) is not None:
        search.record(_kept(rate))
    assert [s.asked for s in search.steps] == [10.0, 15.0, 22.5]
    search.with_lags([10.0, 10.0, 10.0])
    assert search.best() == 2
    assert search.ceiling() == "all 3 steps sustained (the most the search asks)"


@pytest.mark.parametrize(
    ("processor", "kept_up"),
    [(900.0, True), (899.9, False), (1_000.0, True), (0.0, False)],
)
def test_a_step_kept_up_when_the_processors_wrote_90_percent_of_what_was_produced(
    processor: float, kept_up: bool
) -> None:
    assert SearchStep(1_000.0, 1_000.0, processor).kept_up is kept_up


@pytest.mark.parametrize(("simulator", "offered"), [(950.0, True), (949.9, False), (1_200.0, True)])
def test_a_step_the_simulator_could_not_produce_does_not_count(
    simulator: float, offered: bool
) -> None:
    step = SearchStep(1_000.0, simulator, simulator)
    assert step.offered is offered
    assert step.kept_up is offered


def test_a_step_over_the_latency_bound_was_not_sustained_however_fast_it_wrote() -> None:
    search = SustainedSearch(start=100.0, lag_bound_ms=500.0)
    for rate in (100.0, 120.0, 144.0):
        search.record(_kept(rate))
    search.with_lags([500.0, 500.1, 20.0])
    assert [search.sustained(s) for s in search.steps] == [True, False, True]
    # The step above the one that fell behind was still writing its backlog: not counted.
    assert search.best() == 0
    assert search.ceiling() == (
        "at 120 ev/s asked event->Redis p99 was 500 ms, over the 500 ms bound"
    )


def test_a_step_without_a_latency_sample_was_not_sustained() -> None:
    search = SustainedSearch(start=100.0)
    search.record(_kept(100.0))
    search.with_lags([None])
    assert search.best() is None
    assert "no sample" in search.ceiling()


def test_the_ceiling_names_what_stopped_the_search() -> None:
    search = SustainedSearch(start=1_000.0)
    search.record(_kept(1_000.0))
    search.record(SearchStep(1_200.0, 1_190.0, 900.0))
    search.with_lags([50.0, 2_000.0])
    assert search.best() == 0
    assert search.ceiling() == "at 1,200 ev/s asked the processors wrote 900 of 1,190 ev/s"
    simulator_bound = SustainedSearch(start=1_000.0)
    simulator_bound.record(SearchStep(1_000.0, 500.0, 500.0))
    simulator_bound.with_lags([5.0])
    assert simulator_bound.next_rate() is None
    assert simulator_bound.ceiling() == "at 1,000 ev/s asked the simulator produced 500 ev/s"
    assert SustainedSearch(start=1.0).ceiling() == "not run"


def test_latencies_must_come_one_per_step() -> None:
    search = SustainedSearch(start=1.0)
    search.record(_kept(1.0))
    with pytest.raises(ValueError, match="1 steps"):
        search.with_lags([1.0, 2.0])


@pytest.mark.parametrize(
    "settings",
    [
        {"start": 0.0},
        {"start": 1.0, "factor": 1.0},
        {"start": 1.0, "max_steps": 0},
        {"start": 1.0, "lag_bound_ms": 0.0},
    ],
)
def test_a_search_that_could_not_end_or_start_is_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="the search needs"):
        SustainedSearch(**settings)  # type: ignore[arg-type]  # floats for int fields are the point


def test_the_summary_line_marks_the_steps_that_were_not_sustained() -> None:
    report = {
        "rate": 24_000.0,
        "ceiling": "at 28,800 ev/s asked ...",
        "steps": [
            {"asked": 20_000.0, "sustained": True},
            {"asked": 24_000.0, "sustained": True},
            {"asked": 28_800.0, "sustained": False},
        ],
    }
    assert _search_lines(report) == [
        "sustained rate: 24,000 ev/s; stopped at 28,800 ev/s asked ...; "
        "steps offered: 20,000 24,000 28,800(x)"
    ]
    assert _search_lines({**report, "rate": None})[0].startswith("sustained rate: none;")
    assert _search_lines(None) == []


def test_the_bench_command_line_takes_the_search_options() -> None:
    args = build_parser().parse_args(["bench", "--search-seconds", "0", "--search-start", "5e4"])
    assert (args.search_seconds, args.search_start) == (0.0, 50_000.0)
    defaults = build_parser().parse_args(["bench"])
    assert (defaults.search_seconds, defaults.search_start) == (5.0, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--search-seconds", "-1"],
        ["--search-seconds", "nan"],
        ["--search-start", "0"],
        ["--search-start", "inf"],
        ["--rate", "nan"],
    ],
)
def test_bad_search_options_are_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", *argv])
    assert "expected" in capsys.readouterr().err


def test_argparse_is_what_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    # The parser names the option and the reason (argparse's error, exit status 2).
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["bench", "--search-seconds", "x"])
    assert exc.value.code == 2
    assert "--search-seconds" in capsys.readouterr().err


def test_the_share_within_the_bound_comes_from_the_window_of_the_histogram() -> None:
    change = {"hist_lag_receipt_count": 200.0, "hist_lag_receipt_bucket_1.0": 198.0}
    assert share_within(change, 1.0) == 0.99
    assert share_within({**change, "hist_lag_receipt_bucket_0.5": 50.0}, 0.5) == 0.25
    # No bucket at the bound, or no write in the window: not known.
    assert share_within(change, 0.75) is None
    assert share_within({**change, "hist_lag_receipt_count": 0.0}, 1.0) is None
    assert share_within({}, 1.0) is None


@pytest.mark.parametrize(
    ("in_bound", "kept_up"), [(0.99, True), (0.9899, False), (None, True), (1.0, True)]
)
def test_a_step_whose_writes_fell_behind_the_bound_did_not_keep_up(
    in_bound: float | None, kept_up: bool
) -> None:
    step = SearchStep(1_000.0, 1_000.0, 1_000.0, in_bound=in_bound)
    assert step.kept_up is kept_up
    search = SustainedSearch(start=1_000.0)
    search.record(step)
    assert (search.next_rate() is not None) is kept_up


def test_the_ceiling_names_writes_out_of_time_and_latencies_keep_that_share() -> None:
    search = SustainedSearch(start=1_000.0)
    search.record(_kept(1_000.0))
    search.record(SearchStep(1_200.0, 1_200.0, 1_200.0, in_bound=0.5))
    search.with_lags([50.0, 60.0])
    assert search.steps[1].in_bound == 0.5
    assert search.best() == 0
    assert search.ceiling() == (
        "at 1,200 ev/s asked the processors wrote 50.0% of their events within 1,000 ms of receipt"
    )
