"""The workspace keeps its promises: pins, scripts, changelogs, typed markers, membership.

Each rule is a function that takes a repository root and returns the list of problems it
finds, one readable sentence each. The real tree must give none; a synthetic tree with one
planted drift per rule proves each check actually catches what it claims to.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

REPO_ROOT = Path(__file__).resolve().parent.parent
PRIVATE_CLASSIFIER = "Private :: Do Not Upload"
WORKSPACE_PREFIX = "mdp-"

_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*(?:;.*)?$"
)
_PIN = re.compile(r"^==\s*(?P<version>[^\s,*]+)$")
_CHANGELOG_HEADING = re.compile(r"^##\s+\[?v?(?P<version>[0-9][^\]\s]*)\]?(?:\s|$)", re.MULTILINE)


def normalize(name: str) -> str:
    """Normalize a distribution name as PEP 503 does (case, runs of ``-_.``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Project:
    """One workspace member, read from its ``pyproject.toml``."""

    folder: Path
    kind: str  # "package" or "service"
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        """The normalized distribution name."""
        return normalize(str(self.metadata.get("name", self.folder.name)))

    @property
    def version(self) -> str:
        """The version declared in ``[project]``."""
        return str(self.metadata.get("version", ""))

    @property
    def import_name(self) -> str:
        """The import package name the uv_build backend expects by default."""
        return self.name.replace("-", "_")

    def requirements(self) -> Iterable[str]:
        """Every runtime requirement, optional extras included."""
        yield from self.metadata.get("dependencies", [])
        for extra in self.metadata.get("optional-dependencies", {}).values():
            yield from extra


def load_projects(root: Path) -> list[Project]:
    """Read every ``packages/*`` and ``services/*`` project under ``root``."""
    projects = []
    for kind, folder_name in (("package", "packages"), ("service", "services")):
        for pyproject in sorted((root / folder_name).glob("*/pyproject.toml")):
            with pyproject.open("rb") as handle:
                data = tomllib.load(handle)
            projects.append(Project(pyproject.parent, kind, data.get("project", {})))
    return projects


def _parse_requirement(requirement: str) -> tuple[str, str]:
    match = _REQUIREMENT.match(requirement)
    if match is None:
        return normalize(requirement), ""
    return normalize(match["name"]), match["spec"].strip()


def check_pins(root: Path) -> list[str]:
    """Services pin each ``mdp-*`` dependency with ``==`` its current version.

    Packages require siblings with a range (never ``==``) that admits the sibling's version.
    """
    projects = load_projects(root)
    versions = {project.name: project.version for project in projects}
    problems = []
    for project in projects:
        for requirement in project.requirements():
            name, spec = _parse_requirement(requirement)
            if not name.startswith(WORKSPACE_PREFIX):
                continue
            where = f"{project.kind} {project.name} ({project.folder.name})"
            if name not in versions:
                problems.append(f"{where} depends on {name}, which is not in the workspace")
                continue
            pin = _PIN.match(spec)
            if project.kind == "package":
                # Libraries take siblings with a compatible range: a patch of one library must
                # not force a release of every other.
                if pin is not None or not spec:
                    problems.append(
                        f"{where} must require {name} with a compatible range such as "
                        f"'>=0.2.0,<0.3' (found {spec or 'no version'!r})"
                    )
                elif versions[name] not in SpecifierSet(spec):
                    problems.append(
                        f"{where} requires {name}{spec}, which excludes its version "
                        f"{versions[name]}"
                    )
                continue
            if pin is None:
                problems.append(
                    f"{where} must pin {name} with '==' (found {spec or 'no version'!r}); "
                    f"its version is {versions[name]}"
                )
                continue
            if pin["version"] != versions[name]:
                problems.append(
                    f"{where} pins {name}=={pin['version']} but {name} is at version "
                    f"{versions[name]}"
                )
    return problems


def check_services(root: Path) -> list[str]:
    """Each service has exactly one console script and the never-upload classifier."""
    problems = []
    for project in load_projects(root):
        if project.kind != "service":
            continue
        scripts = project.metadata.get("scripts", {})
        if len(scripts) != 1:
            problems.append(
                f"service {project.name} must have exactly one console script; "
                f"it has {len(scripts)} ({', '.join(sorted(scripts)) or 'none'})"
            )
        if PRIVATE_CLASSIFIER not in project.metadata.get("classifiers", []):
            problems.append(f"service {project.name} lacks the {PRIVATE_CLASSIFIER!r} classifier")
    return problems


def changelog_version(text: str) -> str | None:
    """The newest released version in a changelog: its first ``## <version>`` heading."""
    match = _CHANGELOG_HEADING.search(text)
    return match["version"] if match else None


def check_packages(root: Path) -> list[str]:
    """Each library has a README, ``py.typed`` and a changelog whose newest entry is current."""
    problems = []
    for project in load_projects(root):
        if project.kind != "package":
            continue
        where = f"package {project.name}"
        if not (project.folder / "README.md").is_file():
            problems.append(f"{where} has no README.md")
        if not (project.folder / "src" / project.import_name / "py.typed").is_file():
            problems.append(f"{where} has no src/{project.import_name}/py.typed")
        changelog = project.folder / "CHANGELOG.md"
        if not changelog.is_file():
            problems.append(f"{where} has no CHANGELOG.md")
            continue
        newest = changelog_version(changelog.read_text(encoding="utf-8"))
        if newest is None:
            problems.append(f"{where}: CHANGELOG.md has no '## <version>' entry")
        elif newest != project.version:
            problems.append(
                f"{where}: the newest CHANGELOG.md entry is {newest} but pyproject.toml says "
                f"{project.version}"
            )
    return problems


def check_workspace(root: Path) -> list[str]:
    """The root workspace includes every project folder and maps each one as a source."""
    with (root / "pyproject.toml").open("rb") as handle:
        config = tomllib.load(handle).get("tool", {}).get("uv", {})
    members = config.get("workspace", {}).get("members", [])
    excluded = config.get("workspace", {}).get("exclude", [])
    sources = {normalize(name): spec for name, spec in config.get("sources", {}).items()}
    problems = []
    for project in load_projects(root):
        relative = project.folder.relative_to(root).as_posix()
        covered = any(fnmatch.fnmatchcase(relative, pattern) for pattern in members)
        if not covered or any(fnmatch.fnmatchcase(relative, pattern) for pattern in excluded):
            problems.append(f"{relative} is not a member of [tool.uv.workspace]")
        if sources.get(project.name) != {"workspace": True}:
            problems.append(
                f"{project.name} is not mapped to {{ workspace = true }} in the root "
                "[tool.uv.sources]"
            )
    return problems


def check_licenses(root: Path) -> list[str]:
    """Every project ships the repository's LICENSE in its wheel and sdist."""
    problems = []
    license_text = (root / "LICENSE").read_bytes() if (root / "LICENSE").is_file() else None
    if license_text is None:
        return ["the repository has no LICENSE"]
    for project in load_projects(root):
        where = f"{project.kind} {project.name}"
        copy = project.folder / "LICENSE"
        if not copy.is_file() or copy.read_bytes() != license_text:
            problems.append(f"{where}: LICENSE is missing or differs from the repository's")
        if project.metadata.get("license-files") != ["LICENSE"]:
            problems.append(f'{where}: pyproject.toml lacks license-files = ["LICENSE"]')
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "licenses": check_licenses,
    "pins": check_pins,
    "services": check_services,
    "packages": check_packages,
    "workspace": check_workspace,
}


# --------------------------------------------------------------------------------------------
# The real tree


def test_the_workspace_has_packages_and_services() -> None:
    kinds = {project.kind for project in load_projects(REPO_ROOT)}
    assert kinds == {"package", "service"}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_real_workspace_passes(check: str) -> None:
    problems = CHECKS[check](REPO_ROOT)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# A synthetic tree, to prove each check catches its drift


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _write_package(root: Path, name: str, version: str, deps: Iterable[str] = ()) -> Path:
    folder = root / "packages" / name
    module = folder / "src" / name.replace("-", "_")
    module.mkdir(parents=True)
    (module / "py.typed").write_text("")
    (folder / "README.md").write_text(f"# {name}\n")
    (folder / "CHANGELOG.md").write_text(f"# Changelog\n\n## Unreleased\n\n## {version}\n\n- x\n")
    (folder / "LICENSE").write_text("the license\n")
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\nlicense-files = ["LICENSE"]\n'
        f"dependencies = {_toml_list(deps)}\n"
    )
    return folder


def _write_service(
    root: Path,
    folder_name: str,
    deps: Iterable[str],
    *,
    scripts: Iterable[str] = ("svc",),
    private: bool = True,
) -> Path:
    folder = root / "services" / folder_name
    folder.mkdir(parents=True)
    classifiers = ["Typing :: Typed"] + ([PRIVATE_CLASSIFIER] if private else [])
    script_lines = "".join(f'{script} = "x.__main__:main"\n' for script in scripts)
    (folder / "LICENSE").write_text("the license\n")
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "mdp-{folder_name}"\nversion = "1.0.0"\nlicense-files = ["LICENSE"]\n'
        f"classifiers = {_toml_list(classifiers)}\n"
        f"dependencies = {_toml_list(deps)}\n\n[project.scripts]\n{script_lines}"
    )
    return folder


def _write_root(root: Path, members: Iterable[str], sources: Iterable[str]) -> None:
    (root / "LICENSE").write_text("the license\n")
    lines = "".join(f"{name} = {{ workspace = true }}\n" for name in sources)
    (root / "pyproject.toml").write_text(
        f"[tool.uv.workspace]\nmembers = {_toml_list(members)}\n\n[tool.uv.sources]\n{lines}"
    )


@pytest.fixture
def good_tree(tmp_path: Path) -> Path:
    _write_package(tmp_path, "mdp-core", "0.3.0")
    _write_package(tmp_path, "mdp-cache", "0.2.0", ["mdp-core>=0.3.0,<0.4", "redis>=5"])
    _write_service(tmp_path, "listener", ["mdp-core==0.3.0", "mdp-cache == 0.2.0", "massive"])
    _write_root(tmp_path, ["packages/*", "services/*"], ["mdp-core", "mdp-cache", "mdp-listener"])
    return tmp_path


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_consistent_tree_has_no_problems(good_tree: Path) -> None:
    assert {name: check(good_tree) for name, check in CHECKS.items()} == {
        name: [] for name in CHECKS
    }


def test_a_stale_service_pin_is_reported_with_service_package_pin_and_version(
    good_tree: Path,
) -> None:
    _rewrite(good_tree / "packages/mdp-core/pyproject.toml", '"0.3.0"', '"0.4.0"')
    _rewrite(good_tree / "packages/mdp-core/CHANGELOG.md", "## 0.3.0", "## 0.4.0")
    problems = check_pins(good_tree)
    assert any("mdp-listener" in p and "mdp-core==0.3.0" in p and "0.4.0" in p for p in problems), (
        problems
    )
    # The package whose range excludes the new version is caught as well.
    assert any(
        p.startswith("package mdp-cache") and "excludes its version 0.4.0" in p for p in problems
    ), problems


def test_a_service_range_instead_of_a_pin_is_reported(good_tree: Path) -> None:
    _rewrite(good_tree / "services/listener/pyproject.toml", "mdp-core==0.3.0", "mdp-core>=0.3")
    assert check_pins(good_tree) == [
        "service mdp-listener (listener) must pin mdp-core with '==' (found '>=0.3'); "
        "its version is 0.3.0"
    ]


def test_a_package_range_on_a_sibling_is_required(good_tree: Path) -> None:
    _rewrite(
        good_tree / "packages/mdp-cache/pyproject.toml", "mdp-core>=0.3.0,<0.4", "mdp-core>=0.3"
    )
    assert check_pins(good_tree) == []
    _rewrite(good_tree / "packages/mdp-cache/pyproject.toml", "mdp-core>=0.3", "mdp-core==0.3.0")
    assert check_pins(good_tree) == [
        "package mdp-cache (mdp-cache) must require mdp-core with a compatible range such as "
        "'>=0.2.0,<0.3' (found '==0.3.0')"
    ]


def test_a_missing_or_different_license_is_reported(good_tree: Path) -> None:
    (good_tree / "packages/mdp-core/LICENSE").write_text("another license\n")
    _rewrite(good_tree / "services/listener/pyproject.toml", 'license-files = ["LICENSE"]\n', "")
    assert check_licenses(good_tree) == [
        "package mdp-core: LICENSE is missing or differs from the repository's",
        'service mdp-listener: pyproject.toml lacks license-files = ["LICENSE"]',
    ]


def test_a_dependency_on_an_unknown_workspace_name_is_reported(good_tree: Path) -> None:
    _rewrite(good_tree / "services/listener/pyproject.toml", '"massive"', '"mdp-ghost==1.0"')
    assert check_pins(good_tree) == [
        "service mdp-listener (listener) depends on mdp-ghost, which is not in the workspace"
    ]


@pytest.mark.parametrize(
    ("scripts", "private", "expected"),
    [
        ((), True, "exactly one console script; it has 0 (none)"),
        (("a", "b"), True, "exactly one console script; it has 2 (a, b)"),
        (("a",), False, "lacks the 'Private :: Do Not Upload' classifier"),
    ],
)
def test_service_shape_drifts_are_reported(
    good_tree: Path, scripts: tuple[str, ...], private: bool, expected: str
) -> None:
    _write_service(good_tree, "scanner", [], scripts=scripts, private=private)
    problems = check_services(good_tree)
    assert len(problems) == 1
    assert "mdp-scanner" in problems[0]
    assert expected in problems[0]


def test_a_changelog_behind_the_pyproject_version_is_reported(good_tree: Path) -> None:
    _rewrite(good_tree / "packages/mdp-core/pyproject.toml", '"0.3.0"', '"0.3.1"')
    assert check_packages(good_tree) == [
        "package mdp-core: the newest CHANGELOG.md entry is 0.3.0 but pyproject.toml says 0.3.1"
    ]


def test_a_changelog_ahead_of_the_pyproject_version_is_reported(good_tree: Path) -> None:
    _rewrite(good_tree / "packages/mdp-core/CHANGELOG.md", "## 0.3.0", "## [0.4.0] - 2026-11-23")
    assert check_packages(good_tree) == [
        "package mdp-core: the newest CHANGELOG.md entry is 0.4.0 but pyproject.toml says 0.3.0"
    ]


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("README.md", "package mdp-core has no README.md"),
        ("src/mdp_core/py.typed", "package mdp-core has no src/mdp_core/py.typed"),
        ("CHANGELOG.md", "package mdp-core has no CHANGELOG.md"),
    ],
)
def test_missing_package_files_are_reported(good_tree: Path, missing: str, expected: str) -> None:
    (good_tree / "packages/mdp-core" / missing).unlink()
    assert check_packages(good_tree) == [expected]


def test_a_changelog_without_versions_is_reported(good_tree: Path) -> None:
    (good_tree / "packages/mdp-core/CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n")
    assert check_packages(good_tree) == [
        "package mdp-core: CHANGELOG.md has no '## <version>' entry"
    ]


def test_a_folder_outside_the_workspace_members_is_reported(good_tree: Path) -> None:
    _write_root(good_tree, ["packages/*"], ["mdp-core", "mdp-cache", "mdp-listener"])
    assert check_workspace(good_tree) == [
        "services/listener is not a member of [tool.uv.workspace]"
    ]


def test_an_excluded_folder_is_reported(good_tree: Path) -> None:
    _rewrite(
        good_tree / "pyproject.toml",
        "\n\n[tool.uv.sources]",
        '\nexclude = ["packages/mdp-cache"]\n\n[tool.uv.sources]',
    )
    assert check_workspace(good_tree) == [
        "packages/mdp-cache is not a member of [tool.uv.workspace]"
    ]


def test_a_project_missing_from_the_root_sources_is_reported(good_tree: Path) -> None:
    _write_root(good_tree, ["packages/*", "services/*"], ["mdp-core", "mdp-listener"])
    assert check_workspace(good_tree) == [
        "mdp-cache is not mapped to { workspace = true } in the root [tool.uv.sources]"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# C\n\n## 1.2.3\n\n## 1.2.2\n", "1.2.3"),
        ("# C\n\n## Unreleased\n\n## [1.2.3] - 2026-01-02\n", "1.2.3"),
        ("# C\n\n## v2.0.0 (2026-01-02)\n", "2.0.0"),
        ("# C\n\n### 1.0.0\n", None),
    ],
)
def test_changelog_version_reads_the_newest_heading(text: str, expected: str | None) -> None:
    assert changelog_version(text) == expected
