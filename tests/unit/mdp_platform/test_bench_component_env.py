"""``mdp bench --component-env``: one component's setting, checked before the run, recorded."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mdp_platform.bench.config import (
    BENCH_COMPONENTS,
    BenchConfig,
    BenchError,
    ComponentEnv,
    parse_component_env,
)
from mdp_platform.bench.run import _component_env, _config_from_args, _header
from mdp_platform.bench.services import build_services, with_component_env
from mdp_platform.options import add_bench_options

REDIS = "redis://127.0.0.1:6399/0"


def _services(*overrides: str, tmp_path: Path) -> dict[str, dict[str, str]]:
    config = BenchConfig(
        redis_url=REDIS,
        workers=2,
        component_env=tuple(parse_component_env(text) for text in overrides),
    )
    built = build_services(config, Path("/nowhere/bin"), tmp_path, prefix="b.", key="k", secret="s")
    return {name: service.env for name, service in built.items()}


def test_the_shape_is_component_colon_name_equals_value() -> None:
    assert parse_component_env("processor:MDP_FLUSH_BUSY_FRACTION=1") == ComponentEnv(
        "processor", "MDP_FLUSH_BUSY_FRACTION", "1"
    )
    # The value is everything after the first '=' (a URL or a list may hold more).
    assert parse_component_env("wds:MDP_X=a=b:c") == ComponentEnv("wds", "MDP_X", "a=b:c")
    assert parse_component_env(" scanner : MDP_LOG_LEVEL=INFO") == ComponentEnv(
        "scanner", "MDP_LOG_LEVEL", "INFO"
    )
    assert parse_component_env("listener:MDP_X=") == ComponentEnv("listener", "MDP_X", "")


@pytest.mark.parametrize(
    "text", ["processor", "processor:MDP_X", "MDP_X=1", ":MDP_X=1", "processor:=1", ""]
)
def test_another_shape_is_refused_with_the_expected_one(text: str) -> None:
    with pytest.raises(BenchError, match="COMPONENT:NAME=VALUE"):
        parse_component_env(text)


def test_a_component_the_bench_does_not_run_is_refused_naming_those_it_does() -> None:
    with pytest.raises(BenchError, match=r"\(listener, processor, scanner, wds\); was 'simulator'"):
        parse_component_env("simulator:MDP_X=1")
    assert BENCH_COMPONENTS == ("listener", "processor", "scanner", "wds")


def test_an_override_reaches_its_component_only(tmp_path: Path) -> None:
    envs = _services(
        "processor:MDP_FLUSH_BUSY_FRACTION=1",
        "processor:MDP_LOG_LEVEL=INFO",
        tmp_path=tmp_path,
    )
    assert envs["processor"]["MDP_FLUSH_BUSY_FRACTION"] == "1"
    assert envs["processor"]["MDP_LOG_LEVEL"] == "INFO"  # a default of the clean environment
    for name in ("scanner", "wds", "listener"):
        assert "MDP_FLUSH_BUSY_FRACTION" not in envs[name]
        assert envs[name]["MDP_LOG_LEVEL"] == "WARNING"


def test_without_overrides_the_environments_are_unchanged(tmp_path: Path) -> None:
    envs = _services(tmp_path=tmp_path)
    # The components a run starts are exactly those --component-env can name.
    assert sorted(envs) == sorted(BENCH_COMPONENTS)
    assert envs["processor"]["MDP_WORKERS"] == "2"
    assert "MDP_FLUSH_BUSY_FRACTION" not in envs["processor"]


def test_a_variable_the_component_does_not_read_is_refused(tmp_path: Path) -> None:
    # The scanner has no flush pacing: a typo or a wrong component fails before the run.
    with pytest.raises(BenchError, match="scanner:MDP_FLUSH_BUSY_FRACTION: the scanner has no"):
        _services("scanner:MDP_FLUSH_BUSY_FRACTION=1", tmp_path=tmp_path)
    with pytest.raises(BenchError, match="no such setting"):
        _services("processor:MDP_FLUSH_BUSY_FRACTON=1", tmp_path=tmp_path)


def test_a_value_the_component_would_refuse_is_refused_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(BenchError, match="MDP_FLUSH_BUSY_FRACTION must be"):
        _services("processor:MDP_FLUSH_BUSY_FRACTION=2", tmp_path=tmp_path)
    with pytest.raises(BenchError, match="MDP_FLUSH_BUSY_FRACTION must be"):
        _services("processor:MDP_FLUSH_BUSY_FRACTION=fast", tmp_path=tmp_path)


def test_what_the_benchmark_sets_itself_is_refused_naming_its_option(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="sets this itself; use --workers"):
        _services("processor:MDP_WORKERS=4", tmp_path=tmp_path)
    with pytest.raises(BenchError, match="sets this itself; use --partitions"):
        _services("listener:MDP_MDQ_PARTITIONS=4", tmp_path=tmp_path)
    with pytest.raises(BenchError, match=r"sets this itself$"):
        _services("wds:MDP_HEALTH_PORT=1", tmp_path=tmp_path)


def test_a_secret_is_refused_because_the_report_records_overrides(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="a secret cannot be given"):
        _services("wds:MDP_WDS_TOKEN_SECRET=" + "x" * 40, tmp_path=tmp_path)


def test_a_variable_given_twice_is_refused_even_with_the_same_value() -> None:
    twice = (
        ComponentEnv("processor", "MDP_LOG_LEVEL", "WARNING"),
        ComponentEnv("processor", "MDP_LOG_LEVEL", "WARNING"),
    )
    with pytest.raises(BenchError, match="given more than once"):
        with_component_env("processor", {"MDP_LOG_LEVEL": "WARNING"}, (), twice)


def test_the_command_line_reaches_the_config_and_the_report() -> None:
    parser = argparse.ArgumentParser()
    add_bench_options(parser)
    args = parser.parse_args(
        [
            "--redis-url",
            REDIS,
            "--component-env",
            "processor:MDP_FLUSH_BUSY_FRACTION=1",
            "--component-env",
            "processor:MDP_FLUSH_INTERVAL_SECONDS=0.025",
            "--component-env",
            "wds:MDP_LOG_LEVEL=INFO",
        ]
    )
    config = _config_from_args(args)
    assert config.component_env == (
        ComponentEnv("processor", "MDP_FLUSH_BUSY_FRACTION", "1"),
        ComponentEnv("processor", "MDP_FLUSH_INTERVAL_SECONDS", "0.025"),
        ComponentEnv("wds", "MDP_LOG_LEVEL", "INFO"),
    )
    assert _component_env(config) == {
        "processor": {"MDP_FLUSH_BUSY_FRACTION": "1", "MDP_FLUSH_INTERVAL_SECONDS": "0.025"},
        "wds": {"MDP_LOG_LEVEL": "INFO"},
    }
    assert _header(config).splitlines()[1] == (
        "component settings: processor:MDP_FLUSH_BUSY_FRACTION=1, "
        "processor:MDP_FLUSH_INTERVAL_SECONDS=0.025, wds:MDP_LOG_LEVEL=INFO"
    )
    plain = _config_from_args(parser.parse_args(["--redis-url", REDIS]))
    assert plain.component_env == ()
    assert _component_env(plain) == {}
    assert len(_header(plain).splitlines()) == 1


def test_the_processor_accepts_the_simulated_day_ahead_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    # Before the --start time of day the simulated session is hours ahead of the wall clock;
    # the processor's own default (300 s) would drop every event of the run.
    env = _services(tmp_path=tmp_path)
    assert env["processor"]["MDP_FUTURE_TOLERANCE_SECONDS"] == "86400"
    assert "MDP_FUTURE_TOLERANCE_SECONDS" not in env["scanner"]
    given = _services("processor:MDP_FUTURE_TOLERANCE_SECONDS=600", tmp_path=tmp_path)
    assert given["processor"]["MDP_FUTURE_TOLERANCE_SECONDS"] == "600"
