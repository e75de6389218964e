"""A real image build with Debian's buildah, and its layer cache keeping the promise.

The usual registries cannot be reached here, so the base is made on the spot: a minimal
Debian bookworm (Python 3.11) from the Debian archive with debootstrap, and a scratch image
holding the uv binary this machine runs. The recipe itself is unchanged; only its
``PYTHON_IMAGE`` and ``UV_IMAGE`` arguments point at these two. Everything lives in a private
buildah storage under the test's temporary directory (chroot isolation, no daemon; the
overlay driver where the kernel allows it, else vfs, which copies every layer whole and is
many times slower).

Locally the test skips when buildah or debootstrap is missing; CI installs both and fails
without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mdp_images

ROOT = Path(__file__).parents[2]
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# Not in `dev.py test`: `dev.py deploy-check` runs it (`-m image`) beside the other image checks.
pytestmark = [pytest.mark.slow, pytest.mark.image, pytest.mark.timeout(900)]


def _missing_tools() -> list[str]:
    return [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]


def _run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed commands built by this test
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} failed ({completed.returncode}):\n"
        f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    )
    return completed.stdout + completed.stderr


def _uv_binary() -> str:
    uv = mdp_images.find_uv()
    if len(uv) == 1:
        return uv[0]
    probe = [uv[0], "-c", "import uv; print(uv.find_uv_bin())"]
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603


@dataclass(frozen=True)
class Engine:
    """A private buildah storage with the two base images in it."""

    env: dict[str, str]
    storage: list[str]

    def buildah(self, *args: str, cwd: Path | None = None) -> str:
        return _run(["buildah", *self.storage, *args], self.env, cwd)

    def build(self, tree: Path, service: str, tag: str) -> tuple[str, str]:
        """Build one service from ``tree``; return the image id and the build log."""
        iid = tree / f"{tag.replace('/', '_').replace(':', '_')}.iid"
        log = self.buildah(
            "bud",
            "--format", "docker",
            "--layers",
            "--file", "deploy/docker/service.Dockerfile",
            "--build-arg", "PYTHON_IMAGE=localhost/mdp-python:bookworm",
            "--build-arg", "UV_IMAGE=localhost/mdp-uv:local",
            "--build-arg", f"SERVICE={service}",
            "--iidfile", str(iid),
            "--tag", tag,
            ".",
            cwd=tree,
        )  # fmt: skip
        return iid.read_text().strip(), log

    def run(self, image: str, *command: str) -> str:
        container = self.buildah("from", image).strip().splitlines()[-1]
        try:
            return self.buildah("run", container, "--", *command)
        finally:
            self.buildah("rm", container)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    missing = _missing_tools()
    if os.geteuid() != 0:
        missing.append("root (debootstrap)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs {', '.join(missing)} (.ci/run); it is missing")
        pytest.skip(f"needs {', '.join(missing)} (apt-get install buildah debootstrap)")
    work = tmp_path_factory.mktemp("buildah")
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot", "TMPDIR": str(work)}
    storage = ["--root", str(work / "storage"), "--runroot", str(work / "run")]
    probe = subprocess.run(  # noqa: S603 - a fixed probe
        ["buildah", *storage, "--storage-driver", "overlay", "images"],  # noqa: S607
        env=env,
        capture_output=True,
        check=False,
    )
    storage += ["--storage-driver", "overlay" if probe.returncode == 0 else "vfs"]
    rootfs = work / "rootfs"
    _run(
        ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", SUITE,
         str(rootfs), MIRROR],
        env,
    )  # fmt: skip
    the_engine = Engine(env, storage)
    base = the_engine.buildah("from", "scratch").strip().splitlines()[-1]
    the_engine.buildah("copy", base, str(rootfs), "/")
    if HOST_CA_BUNDLE.is_file():
        # This machine's trust store (it may carry an egress proxy's CA) for uv's downloads.
        the_engine.buildah("copy", base, str(HOST_CA_BUNDLE), str(HOST_CA_BUNDLE))
        the_engine.buildah("config", "--env", f"SSL_CERT_FILE={HOST_CA_BUNDLE}", base)
    the_engine.buildah("commit", base, "localhost/mdp-python:bookworm")
    the_engine.buildah("rm", base)
    uv_image = the_engine.buildah("from", "scratch").strip().splitlines()[-1]
    the_engine.buildah("copy", uv_image, _uv_binary(), "/uv")
    the_engine.buildah("commit", uv_image, "localhost/mdp-uv:local")
    the_engine.buildah("rm", uv_image)
    yield the_engine
    subprocess.run(["buildah", *storage, "rm", "--all"], env=env, check=False)  # noqa: S603, S607
    subprocess.run(["buildah", *storage, "rmi", "--all", "--force"], env=env, check=False)  # noqa: S603, S607
    shutil.rmtree(work / "storage", ignore_errors=True)


def _copy_context(destination: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "dist", "build")
    for name in ("pyproject.toml", "uv.lock", "LICENSE", ".dockerignore"):
        shutil.copy2(ROOT / name, destination / name)
    for folder in ("packages", "services", "tools", "deploy"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    return destination


def _edit(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")


def _cached_steps(log: str) -> list[str]:
    """The steps of the build log, each followed by whether it came from the cache."""
    lines = log.splitlines()
    steps = []
    for index, line in enumerate(lines):
        if " STEP " in line:
            following = lines[index + 1] if index + 1 < len(lines) else ""
            steps.append(("cached " if "Using cache" in following else "built ") + line)
    return steps


def test_the_wds_image_builds_runs_and_holds_only_its_closure(
    engine: Engine, tmp_path: Path
) -> None:
    tree = _copy_context(tmp_path)
    image, _ = engine.build(tree, "widget-service", "localhost/mdp-wds:test")

    members = mdp_images.load_members(ROOT)
    version = engine.run(image, "/app/.venv/bin/service", "--version")
    assert version.strip() == f"mdp-wds {members['mdp-wds'].version}"
    assert engine.run(image, "id", "-u").strip() == "10001"
    listed = engine.run(
        image,
        "/app/.venv/bin/python",
        "-c",
        "import importlib.metadata as m; "
        "print('\\n'.join(sorted(d.metadata['Name'] for d in m.distributions())))",
    )
    ours = {name for name in listed.split() if name.startswith("mdp-")}
    assert ours == set(mdp_images.closure(members, "mdp-wds"))
    assert "aio-pika" not in listed.split()  # the processors' broker client is not in the WDS
    license_text = engine.run(image, "cat", "/usr/share/licenses/mdp/LICENSE")
    assert license_text.strip() == (ROOT / "LICENSE").read_text().strip()

    # A change in a package the WDS does not contain: the very same image, every layer cached.
    _edit(tree / "packages/mdp-sim/src/mdp_sim/__init__.py")
    again, log = engine.build(tree, "widget-service", "localhost/mdp-wds:after-sim")
    assert again == image, "\n".join(_cached_steps(log))

    # A change in one it contains: a new image, but the third-party layer is reused.
    _edit(tree / "packages/mdp-cache/src/mdp_cache/__init__.py")
    changed, log = engine.build(tree, "widget-service", "localhost/mdp-wds:after-cache")
    assert changed != image
    steps = _cached_steps(log)
    (third_party,) = [s for s in steps if "--require-hashes" in s]
    (members_step,) = [s for s in steps if "--no-sources" in s]
    assert third_party.startswith("cached "), "\n".join(steps)
    assert members_step.startswith("built "), "\n".join(steps)
