"""Each service image is built from its own closure, and its digest moves only with it.

The digests are computed on a scratch copy of the tree, edited the way a developer would; the
layer-by-layer simulation replays the image recipe's two install steps on this machine (no
container engine or base image can be had here) and runs the service's console script from
the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mdp_images

ROOT = Path(__file__).parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())


def _uv() -> list[str]:
    return mdp_images.find_uv()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    return env


def _copy_tree(destination: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "LICENSE"):
        shutil.copy2(ROOT / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "dist", "build")
    for folder in ("packages", "services", "tools", "deploy"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    return destination


def _fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _digests(root: Path) -> dict[str, str]:
    return {image.folder: image.digest for image in mdp_images.images(root, _uv())}


def _touch(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="module")
def before(scratch: Path) -> dict[str, str]:
    return _digests(scratch)


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {folder for folder in before if before[folder] != after[folder]}


def test_the_closures_follow_the_declared_dependencies() -> None:
    members = mdp_images.load_members(ROOT)
    assert mdp_images.closure(members, "mdp-wds") == [
        "mdp-cache",
        "mdp-core",
        "mdp-runtime",
        "mdp-wds",
    ]
    assert "mdp-sim" not in mdp_images.closure(members, "mdp-processor")
    assert mdp_images.dependents(members, "mdp-sim") == ["mdp-platform"]


def test_the_digests_are_stable_and_distinct(scratch: Path, before: dict[str, str]) -> None:
    assert set(before) == set(SERVICES)
    assert _digests(scratch) == before
    assert len(set(before.values())) == len(before)


def test_a_change_in_mdp_sim_moves_only_the_images_that_contain_it(
    tmp_path: Path, before: dict[str, str]
) -> None:
    tree = _copy_tree(_fresh(tmp_path, "sim-edit"))
    _touch(tree / "packages/mdp-sim/src/mdp_sim/__init__.py")
    assert _changed(before, _digests(tree)) == {"platform"}


def test_a_change_in_mdp_analyzers_moves_the_processors_and_scanner_only(
    tmp_path: Path, before: dict[str, str]
) -> None:
    tree = _copy_tree(_fresh(tmp_path, "analyzers-edit"))
    _touch(tree / "packages/mdp-analyzers/src/mdp_analyzers/__init__.py")
    changed = _changed(before, _digests(tree))
    assert changed == {"processor", "news-processor", "scanner", "platform"}
    assert not {"widget-service", "listener"} & changed


def test_caches_and_changelogs_are_not_inputs(tmp_path: Path, before: dict[str, str]) -> None:
    tree = _copy_tree(_fresh(tmp_path, "noise"))
    cache = tree / "packages/mdp-core/src/mdp_core/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    _touch(tree / "packages/mdp-core/CHANGELOG.md")
    assert _changed(before, _digests(tree)) == set()


def test_the_recipe_and_a_locked_dependency_move_the_right_images(
    tmp_path: Path, before: dict[str, str]
) -> None:
    tree = _copy_tree(_fresh(tmp_path, "recipe"))
    _touch(tree / "deploy/docker/service.Dockerfile")
    assert _changed(before, _digests(tree)) == set(SERVICES)

    tree = _copy_tree(_fresh(tmp_path, "lock"))
    lock = tree / "uv.lock"
    # Another hash for the locked finlight-client wheel: only the news listener installs it.
    text = lock.read_text(encoding="utf-8")
    start = text.index('name = "finlight-client"')
    hash_at = text.index("sha256:", start) + len("sha256:")
    lock.write_text(text[:hash_at] + "0" * 64 + text[hash_at + 64 :], encoding="utf-8")
    assert _changed(before, _digests(tree)) == {"news-listener", "platform"}


def test_the_third_party_layer_names_no_workspace_member() -> None:
    requirements = mdp_images.locked_requirements(ROOT, "mdp-processor", _uv())
    names = {line.split("==")[0] for line in requirements.splitlines() if "==" in line}
    assert "aio-pika" in names
    assert not {name for name in names if name.startswith("mdp-")}
    with_otel = mdp_images.locked_requirements(ROOT, "mdp-processor", _uv(), otel=True)
    assert "opentelemetry-sdk==" in with_otel
    assert "opentelemetry-sdk==" not in requirements


def _run(command: list[str], cwd: Path) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed commands built by this test
        command, cwd=cwd, env=_env(), capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} failed ({completed.returncode}):\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", ["processor", "widget-service"])
def test_the_image_layers_replayed_here_run_the_service(tmp_path: Path, service: str) -> None:
    """The recipe's builder stage, step by step, without a container engine."""
    uv = _uv()
    src = tmp_path / "src"
    folders = mdp_images.stage(ROOT, service, src)
    members = mdp_images.load_members(ROOT)
    dist = mdp_images.service_member(members, service).name
    staged = {p.relative_to(src).as_posix() for p in src.glob("*/*") if p.is_dir()}
    assert staged == set(folders)
    assert "packages/mdp-sim" not in staged

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(mdp_images.locked_requirements(ROOT, dist, uv), encoding="utf-8")
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    _run([*uv, "venv", "--quiet", "--python", version, str(venv)], cwd=tmp_path)
    _run(
        [*uv, "pip", "install", "--quiet", "--python", python, "--require-hashes", "--no-deps",
         "-r", str(requirements)],
        cwd=tmp_path,
    )  # fmt: skip
    _run(
        [*uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "--no-sources",
         *folders],
        cwd=src,
    )  # fmt: skip
    # Nothing is missing: every requirement of every installed distribution is satisfied.
    _run([*uv, "pip", "check", "--python", python], cwd=tmp_path)
    installed = _run([*uv, "pip", "list", "--python", python, "--format", "freeze"], cwd=tmp_path)
    ours = {line.split("==")[0] for line in installed.splitlines() if line.startswith("mdp-")}
    assert ours == set(mdp_images.closure(members, dist))
    output = _run([str(venv / "bin" / dist), "--version"], cwd=tmp_path)
    assert output.strip() == f"{dist} {members[dist].version}"
