"""The built library wheels stand alone: installed outside the repo, they import and agree.

`uv build --all-packages` builds every project, each wheel and sdist carrying the
repository's LICENSE; the library wheels (``packages/*``) then go
into a fresh virtual environment in a temporary directory, with their third-party
dependencies from the package index, and an isolated interpreter (``-I``: no cwd, no
PYTHONPATH, no user site) imports each one from that venv and reports ``__version__``.
Nothing of the workspace (editable installs, ``.pth`` files, ``[tool.uv.sources]``) can leak in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

_IMPORT_AND_REPORT = """
import importlib, json, sys
report = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    report[name] = {"version": module.__version__, "file": module.__file__}
print(json.dumps(report))
"""


def _projects(folder: str) -> dict[str, str]:
    versions = {}
    for pyproject in sorted((REPO_ROOT / folder).glob("*/pyproject.toml")):
        with pyproject.open("rb") as handle:
            project = tomllib.load(handle)["project"]
        versions[project["name"]] = project["version"]
    return versions


def _uv() -> str:
    # `uv run` exports UV, the path of the uv binary that runs us.
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to build the wheels and was not found", pytrace=False)
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    return env


def _run(command: list[str], cwd: Path) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed commands built by this test
        command, cwd=cwd, env=_env(), capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} failed ({completed.returncode}):\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


def _wheel_for(dist: Path, name: str, version: str) -> Path:
    stem = name.replace("-", "_")
    matches = sorted(dist.glob(f"{stem}-{version}-*.whl"))
    assert len(matches) == 1, f"expected one wheel for {name} {version}, found {matches}"
    return matches[0]


def test_library_wheels_install_and_import_outside_the_workspace(tmp_path: Path) -> None:
    uv = _uv()
    libraries = _projects("packages")
    services = _projects("services")
    dist = tmp_path / "dist"

    _run([uv, "build", "--all-packages", "--quiet", "-o", str(dist)], cwd=REPO_ROOT)
    license_text = (REPO_ROOT / "LICENSE").read_bytes()
    for name, version in {**libraries, **services}.items():
        wheel = _wheel_for(dist, name, version)  # every project builds a wheel
        stem = f"{name.replace('-', '_')}-{version}"
        with zipfile.ZipFile(wheel) as archive:
            assert archive.read(f"{stem}.dist-info/licenses/LICENSE") == license_text, wheel.name
            metadata = archive.read(f"{stem}.dist-info/METADATA").decode()
        assert "License-File: LICENSE" in metadata, wheel.name
        with tarfile.open(dist / f"{stem}.tar.gz") as sdist:
            member = sdist.extractfile(f"{stem}/LICENSE")
            assert member is not None
            assert member.read() == license_text, f"{stem}.tar.gz"

    work = tmp_path / "outside"
    work.mkdir()
    venv = work / "venv"
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    _run(
        [
            uv,
            "venv",
            "--quiet",
            "--python",
            f"{sys.version_info[0]}.{sys.version_info[1]}",
            str(venv),
        ],
        cwd=work,
    )
    wheels = [str(_wheel_for(dist, name, version)) for name, version in libraries.items()]
    _run([uv, "pip", "install", "--quiet", "--python", str(python), *wheels], cwd=work)

    imports = [name.replace("-", "_") for name in libraries]
    output = _run([str(python), "-I", "-c", _IMPORT_AND_REPORT, *imports], cwd=work)
    report = json.loads(output)

    assert {name: report[name.replace("-", "_")]["version"] for name in libraries} == libraries
    for module, details in report.items():
        location = Path(details["file"]).resolve()
        assert location.is_relative_to(venv.resolve()), f"{module} imported from {location}"
        assert not location.is_relative_to(REPO_ROOT), f"{module} came from the workspace"
