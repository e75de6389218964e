"""What each service image is built from, and a digest of exactly that.

An image holds two layers of our own making: the service's locked third-party packages
(``uv export --package <dist> --no-emit-workspace``) and the workspace members in the service's
dependency closure. This module names both, copies the second into a build stage
(``stage``, run by ``deploy/docker/service.Dockerfile`` inside the image build) and digests
both (``report``, run by ``python3 dev.py images``), so an image is rebuilt, tagged anew and
rolled out only when something it is really built from changed.

Standard library only: the Dockerfile runs it with the bare base image's Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = Path("deploy/docker/service.Dockerfile")
THIS_FILE = Path("tools/mdp_images.py")
LICENSE = Path("LICENSE")
GROUPS = ("packages", "services")
# Never part of an image: caches, build output, and the changelog (release notes, not code).
_SKIPPED_DIRS = frozenset(
    {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist", ".venv"}
)
_SKIPPED_FILES = frozenset({"CHANGELOG.md"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
DIGEST_LENGTH = 12


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Member:
    """One workspace member: a library under packages/ or a service under services/."""

    name: str
    folder: Path  # relative to the repository root
    version: str
    deps: tuple[str, ...]  # workspace members it requires, extras included

    @property
    def kind(self) -> str:
        """``package`` or ``service``."""
        return "package" if self.folder.parts[0] == "packages" else "service"


def load_members(root: Path) -> dict[str, Member]:
    """Every member of the workspace under ``root``, by normalized distribution name."""
    raw: dict[str, tuple[Path, str, list[str]]] = {}
    for group in GROUPS:
        for pyproject in sorted((root / group).glob("*/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            requirements = list(project.get("dependencies", []))
            for extra in project.get("optional-dependencies", {}).values():
                requirements.extend(extra)
            folder = pyproject.parent.relative_to(root)
            raw[normalize(project["name"])] = (folder, str(project["version"]), requirements)
    members = {}
    for name, (folder, version, requirements) in raw.items():
        deps = set()
        for requirement in requirements:
            match = _REQUIREMENT_NAME.match(requirement)
            if match and normalize(match[1]) in raw and normalize(match[1]) != name:
                deps.add(normalize(match[1]))
        members[name] = Member(name, folder, version, tuple(sorted(deps)))
    return members


def closure(members: dict[str, Member], name: str) -> list[str]:
    """``name`` and every member it depends on, directly or not, sorted by name."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(members[current].deps)
    return sorted(seen)


def dependents(members: dict[str, Member], name: str) -> list[str]:
    """Every member whose closure contains ``name`` (``name`` itself excluded), sorted."""
    return sorted(m for m in members if m != name and name in closure(members, m))


def member_files(root: Path, folder: Path) -> Iterator[Path]:
    """The files of one member that go into an image, relative to ``root``, in sorted order."""
    for path in sorted((root / folder).rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or _SKIPPED_DIRS.intersection(relative.parts):
            continue
        if path.name in _SKIPPED_FILES or path.name.endswith(_SKIPPED_SUFFIXES):
            continue
        yield relative


def service_member(members: dict[str, Member], service_folder: str) -> Member:
    """The member built from ``services/<service_folder>``."""
    for member in members.values():
        if member.folder == Path("services", service_folder):
            return member
    raise KeyError(f"no service in services/{service_folder}")


def image_files(root: Path, service_folder: str) -> list[Path]:
    """Every workspace file the image of one service is built from, the recipe included."""
    members = load_members(root)
    service = service_member(members, service_folder)
    files = [DOCKERFILE, THIS_FILE, LICENSE]
    for name in closure(members, service.name):
        files.extend(member_files(root, members[name].folder))
    return files


def find_uv() -> list[str]:
    """The command that runs uv: ``$UV`` (set by ``uv run``), ``uv`` on PATH, or a module."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return [found]
    for python in dict.fromkeys([sys.executable, shutil.which("python3") or "python3"]):
        probe = subprocess.run(  # noqa: S603 - a fixed probe
            [python, "-m", "uv", "--version"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    raise RuntimeError("uv is needed and was not found (install it: pip install uv)")


def locked_requirements(root: Path, dist: str, uv: Sequence[str], *, otel: bool = False) -> str:
    """The locked third-party requirements of one service, as its image installs them."""
    command = [
        *uv,
        "export",
        "--package",
        dist,
        "--frozen",
        "--no-emit-workspace",
        "--no-default-groups",
        "--no-header",
        "--no-annotate",
    ]
    if otel:
        command += ["--extra", "otel"]
    completed = subprocess.run(  # noqa: S603 - a fixed uv command
        command, cwd=root, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {completed.stderr.strip()}")
    return completed.stdout


def image_digest(root: Path, service_folder: str, requirements: str) -> str:
    """SHA-256 over the recipe, every closure file (path and content) and the requirements."""
    digest = hashlib.sha256()
    for relative in image_files(root, service_folder):
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((root / relative).read_bytes()).digest())
    digest.update(b"requirements\0" + requirements.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Image:
    """What ``python3 dev.py images`` reports for one service."""

    folder: str
    image: str
    version: str
    closure: list[str]
    digest: str

    @property
    def tag(self) -> str:
        """Immutable by construction: the service version and the digest of every input."""
        return f"{self.version}-{self.digest[:DIGEST_LENGTH]}"


def images(root: Path, uv: Sequence[str], *, otel: bool = False) -> list[Image]:
    """One entry per service, in folder order."""
    members = load_members(root)
    result = []
    for member in sorted(members.values(), key=lambda m: m.folder):
        if member.kind != "service":
            continue
        requirements = locked_requirements(root, member.name, uv, otel=otel)
        result.append(
            Image(
                folder=member.folder.name,
                image=member.name,
                version=member.version,
                closure=closure(members, member.name),
                digest=image_digest(root, member.folder.name, requirements),
            )
        )
    return result


def render(report: Sequence[Image], *, as_json: bool = False) -> str:
    """The report as ``python3 dev.py images`` prints it (``as_json`` for the playbook)."""
    if as_json:
        return json.dumps([{**asdict(image), "tag": image.tag} for image in report], indent=2)
    lines = []
    for image in report:
        lines.append(f"{image.image}:{image.tag}  (services/{image.folder})")
        lines.append(f"  closure: {', '.join(image.closure)}")
        lines.append(f"  digest:  sha256:{image.digest}")
    return "\n".join(lines)


def stage(root: Path, service_folder: str, destination: Path) -> list[str]:
    """Copy the closure members of one service to ``destination``; return their folders."""
    members = load_members(root)
    service = service_member(members, service_folder)
    folders = []
    for name in closure(members, service.name):
        folder = members[name].folder
        folders.append(folder.as_posix())
        for relative in member_files(root, folder):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, target)
    return folders


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stage_parser = commands.add_parser("stage", help="copy one service's closure members")
    stage_parser.add_argument("service", help="folder under services/")
    stage_parser.add_argument("destination", type=Path)
    report_parser = commands.add_parser("report", help="closure and digest of every image")
    report_parser.add_argument("--json", action="store_true", help="machine-readable output")
    report_parser.add_argument("--otel", action="store_true", help="images built with OTEL=1")
    report_parser.add_argument(
        "--uv", default="uv", help="the command running uv (split like a shell)"
    )
    args = parser.parse_args(argv)
    if args.command == "stage":
        for folder in stage(ROOT, args.service, args.destination):
            print(folder)
        return 0
    print(render(images(ROOT, shlex.split(args.uv), otel=args.otel), as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
