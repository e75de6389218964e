"""Independent releases, proved on scratch copies of the real tree.

A release bumps only the libraries whose files changed since their recorded release and what
depends on them; it refuses a library without changelog notes; CI's check catches a change
that has neither notes nor a bump. Each scenario starts from a copy where everything has just
been released, so only the edit made by the test is pending.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

import mdp_images
import mdp_release

ROOT = Path(__file__).resolve().parent.parent


def _copy_tree(destination: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "LICENSE", "releases.json"):
        shutil.copy2(ROOT / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "dist", "build")
    for folder in ("packages", "services", "deploy"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    return destination


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for folder in ("packages", "services", "deploy")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


def _versions(root: Path) -> dict[str, str]:
    return {name: m.version for name, m in mdp_images.load_members(root).items()}


def _dependencies(root: Path, folder: str) -> list[str]:
    project = tomllib.loads((root / folder / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def _note(root: Path, library: str, text: str) -> None:
    changelog = root / "packages" / library / "CHANGELOG.md"
    body = changelog.read_text(encoding="utf-8")
    at = body.index("\n## ") + 1
    changelog.write_text(f"{body[:at]}## Unreleased\n\n{text}\n\n{body[at:]}", encoding="utf-8")


def _edit(root: Path, relative: str) -> None:
    path = root / relative
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tree with every pending change released."""
    root = _copy_tree(tmp_path_factory.mktemp("released"))
    for name, member in mdp_images.load_members(root).items():
        pending = member.kind == "package" and name in mdp_release.changed_members(root)
        if pending and mdp_release.unreleased_notes(root, member) is None:
            _note(root, name, "### Fixed\n\n- Pending work.")
    mdp_release.release(root)
    assert mdp_release.changed_members(root) == {}
    assert mdp_release.check(root) == []
    return root


@pytest.fixture
def tree(released: Path, tmp_path: Path) -> Path:
    destination = tmp_path / "tree"
    shutil.copytree(released, destination)
    return destination


def test_a_fix_in_one_library_releases_it_and_its_dependents_only(tree: Path) -> None:
    before_versions = _versions(tree)
    _edit(tree, "packages/mdp-sim/src/mdp_sim/__init__.py")
    _note(tree, "mdp-sim", "### Fixed\n\n- A fix.")
    before = _snapshot(tree)

    plan = mdp_release.release(tree)

    old_sim, old_platform = before_versions["mdp-sim"], before_versions["mdp-platform"]
    assert plan.versions == {
        "mdp-sim": (old_sim, mdp_release.bump(old_sim, "patch")),
        "mdp-platform": (old_platform, mdp_release.bump(old_platform, "patch")),
    }
    after = _snapshot(tree)
    touched = {path for path in after if after[path] != before.get(path)}
    assert touched == {
        "packages/mdp-sim/pyproject.toml",
        "packages/mdp-sim/CHANGELOG.md",
        "services/platform/pyproject.toml",
    }
    new_sim = plan.versions["mdp-sim"][1]
    assert f"mdp-sim=={new_sim}" in _dependencies(tree, "services/platform")
    changelog = (tree / "packages/mdp-sim/CHANGELOG.md").read_text()
    assert f"## {new_sim}\n\n### Fixed\n\n- A fix." in changelog
    assert "## Unreleased" not in changelog
    state = json.loads((tree / "releases.json").read_text())["members"]
    assert state["mdp-sim"]["version"] == new_sim
    assert state["mdp-sim"]["tag"] == f"mdp-sim/v{new_sim}"
    assert mdp_release.changed_members(tree) == {}
    assert {k: v for k, v in _versions(tree).items() if k not in plan.versions} == {
        k: v for k, v in before_versions.items() if k not in plan.versions
    }


def test_a_fix_in_core_keeps_the_libraries_and_bumps_every_service(tree: Path) -> None:
    _edit(tree, "packages/mdp-core/src/mdp_core/__init__.py")
    _note(tree, "mdp-core", "### Fixed\n\n- A fix.")
    kustomization = tree / "deploy/k8s/base/kustomization.yaml"

    plan = mdp_release.release(tree)

    members = mdp_images.load_members(tree)
    libraries = {name for name, m in members.items() if m.kind == "package"}
    services = {name for name, m in members.items() if m.kind == "service"}
    assert set(plan.versions) == {"mdp-core"} | services
    assert not (set(plan.versions) & (libraries - {"mdp-core"}))
    new_core = plan.versions["mdp-core"][1]
    for name in services:
        folder = members[name].folder.as_posix()
        assert f"mdp-core=={new_core}" in _dependencies(tree, folder), name
    # The per-service image tags follow the service versions.
    text = kustomization.read_text()
    for name in ("mdp-processor", "mdp-wds"):
        assert f"- name: {name}\n" in text
        block = text[text.index(f"- name: {name}\n") :].split("- name:", 2)[1]
        assert f'newTag: "{plan.versions[name][1]}"' in block


def test_a_breaking_change_widens_the_siblings_ranges_and_releases_them(tree: Path) -> None:
    _edit(tree, "packages/mdp-core/src/mdp_core/__init__.py")
    _note(tree, "mdp-core", "### Removed\n\n- An old function.")
    old = _versions(tree)["mdp-core"]

    plan = mdp_release.release(tree)

    new = plan.versions["mdp-core"][1]
    assert new == mdp_release.bump(old, "major")
    assert new.split(".")[:2] != old.split(".")[:2]
    range_ = mdp_release.compatible_range(new)
    for library in ("mdp-cache", "mdp-analyzers", "mdp-queues", "mdp-runtime", "mdp-sim"):
        assert library in plan.versions, library
        assert f"mdp-core{range_}" in _dependencies(tree, f"packages/{library}")
        changelog = (tree / f"packages/{library}/CHANGELOG.md").read_text()
        assert f"- Accepts mdp-core {range_}." in changelog
    assert mdp_release.changed_members(tree) == {}


def test_a_change_without_notes_is_refused_and_nothing_is_written(tree: Path) -> None:
    _edit(tree, "packages/mdp-sim/src/mdp_sim/__init__.py")
    _edit(tree, "packages/mdp-cache/src/mdp_cache/__init__.py")
    _note(tree, "mdp-cache", "### Fixed\n\n- A fix.")
    before = _snapshot(tree)
    state = (tree / "releases.json").read_text()

    with pytest.raises(mdp_release.ReleaseError) as refused:
        mdp_release.release(tree)

    assert str(refused.value) == (
        "mdp-sim changed since its last release but its CHANGELOG.md has no entry under "
        "'## Unreleased'"
    )
    assert _snapshot(tree) == before
    assert (tree / "releases.json").read_text() == state


def test_the_ci_check_wants_notes_or_a_bump_for_a_changed_library(tree: Path) -> None:
    assert mdp_release.check(tree) == []
    _edit(tree, "packages/mdp-queues/README.md")
    (problem,) = mdp_release.check(tree)
    assert problem.startswith("mdp-queues: files changed since mdp-queues/v")
    _note(tree, "mdp-queues", "### Changed\n\n- Docs.")
    assert mdp_release.check(tree) == []


def test_a_service_change_needs_no_notes_and_releases_it_and_what_pins_it(tree: Path) -> None:
    _edit(tree, "services/scanner/src/mdp_scanner/__init__.py")
    assert mdp_release.check(tree) == []
    plan = mdp_release.release(tree)
    assert set(plan.versions) == {"mdp-scanner", "mdp-platform"}  # the platform embeds it
    assert mdp_release.changed_members(tree) == {}


def test_a_service_pinned_by_one_named_before_it_releases_that_one_too(tree: Path) -> None:
    """mdp-platform sorts before mdp-wds, which it pins: the order of names must not matter."""
    _edit(tree, "services/widget-service/src/mdp_wds/__init__.py")
    plan = mdp_release.release(tree)
    assert set(plan.versions) == {"mdp-wds", "mdp-platform"}
    assert plan.reasons["mdp-platform"] == "mdp-wds released"
    new_wds = plan.versions["mdp-wds"][1]
    assert f"mdp-wds=={new_wds}" in _dependencies(tree, "services/platform")
    assert mdp_release.changed_members(tree) == {}


def test_the_lock_follows_a_release(tree: Path) -> None:
    _edit(tree, "packages/mdp-sim/src/mdp_sim/__init__.py")
    _note(tree, "mdp-sim", "### Fixed\n\n- A fix.")
    mdp_release.release(tree)
    uv = mdp_images.find_uv()
    subprocess.run([*uv, "lock", "--quiet"], cwd=tree, check=True)  # noqa: S603
    subprocess.run([*uv, "lock", "--check", "--quiet"], cwd=tree, check=True)  # noqa: S603
    lock = (tree / "uv.lock").read_text()
    new_sim = _versions(tree)["mdp-sim"]
    at = lock.index('name = "mdp-sim"\n')
    assert lock[at:].split("\n", 2)[1] == f'version = "{new_sim}"'


@pytest.mark.parametrize(
    ("version", "level", "expected"),
    [
        ("0.2.0", "patch", "0.2.1"),
        ("0.2.3", "minor", "0.3.0"),
        ("0.2.3", "major", "0.3.0"),
        ("1.4.2", "major", "2.0.0"),
        ("1.4.2", "minor", "1.5.0"),
    ],
)
def test_bump(version: str, level: str, expected: str) -> None:
    assert mdp_release.bump(version, level) == expected


@pytest.mark.parametrize(
    ("notes", "version", "expected"),
    [
        ("### Fixed\n\n- x", "0.2.0", "patch"),
        ("### Added\n\n- x", "0.2.0", "patch"),
        ("### Added\n\n- x", "1.2.0", "minor"),
        ("### Removed\n\n- x", "0.2.0", "major"),
        ("### Changed\n\n- BREAKING: x", "1.0.0", "major"),
        ("### Changed\n\n- **Breaking:** x", "0.3.0", "major"),
        ("### Changed\n\n- **Breaking for stored data:** x", "1.0.0", "major"),
        ("### Fixed\n\n- a non-breaking fix; breaking nothing", "1.0.0", "patch"),
    ],
)
def test_level_from_notes(notes: str, version: str, expected: str) -> None:
    assert mdp_release.level_from_notes(notes, version) == expected


@pytest.mark.parametrize(
    ("specifier", "version", "expected"),
    [
        (">=0.2.0,<0.3", "0.2.9", True),
        (">=0.2.0,<0.3", "0.3.0", False),
        (">=0.2.1,<0.3", "0.2.0", False),
        ("==0.2.0", "0.2.0", True),
        ("==0.2.0", "0.2.1", False),
        ("~=0.2.0", "0.2.5", True),
        ("~=0.2.0", "0.3.0", False),
    ],
)
def test_admits(specifier: str, version: str, expected: bool) -> None:
    assert mdp_release.admits(specifier, version) is expected


def test_compatible_range() -> None:
    assert mdp_release.compatible_range("0.2.1") == ">=0.2.1,<0.3"
    assert mdp_release.compatible_range("1.4.0") == ">=1.4.0,<2"
    assert mdp_release.admits(mdp_release.compatible_range("1.4.0"), "1.9.9")
