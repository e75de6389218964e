"""``dev.py test`` runs the suite on parallel workers unless told otherwise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

DEV_PY = Path(__file__).resolve().parents[1] / "dev.py"


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mdp_dev_tasks", DEV_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("cores", "expected"),
    [(None, []), (1, []), (2, ["-n", "2"]), (4, ["-n", "4"]), (64, ["-n", "4"])],
)
def test_the_workers_follow_the_cores_up_to_four(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, cores: int | None, expected: list[str]
) -> None:
    monkeypatch.delenv("MDP_TEST_WORKERS", raising=False)
    monkeypatch.setattr(dev.os, "cpu_count", lambda: cores)
    assert dev._test_workers([]) == expected


@pytest.mark.parametrize(
    ("wanted", "expected"), [("0", []), ("1", []), ("3", ["-n", "3"]), (" 6 ", ["-n", "6"])]
)
def test_mdp_test_workers_sets_the_count(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, wanted: str, expected: list[str]
) -> None:
    monkeypatch.setenv("MDP_TEST_WORKERS", wanted)
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 2)
    assert dev._test_workers(["-k", "heartbeat"]) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "0"],
        ["-n0"],
        ["-nauto"],
        ["--numprocesses", "3"],
        ["--numprocesses=3"],
        ["-q", "-p", "no:xdist"],
    ],
)
def test_arguments_that_choose_the_workers_win(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("MDP_TEST_WORKERS", "3")
    assert dev._test_workers(args) == []


def test_other_arguments_keep_the_workers(dev: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MDP_TEST_WORKERS", raising=False)
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 2)
    assert dev._test_workers(["--no-header", "-q", "-k", "not slow", "tests/unit"]) == ["-n", "2"]


def test_a_worker_count_that_is_not_a_number_is_refused(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MDP_TEST_WORKERS", "two")
    with pytest.raises(
        dev.TaskFailed, match="MDP_TEST_WORKERS must be a whole number; it was 'two'"
    ):
        dev._test_workers([])
