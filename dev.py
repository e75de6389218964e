#!/usr/bin/env python3
"""The project's commands: ``python3 dev.py <task> [args...]``.

This file is the single place that knows how to install, check, test and run the project, so
the Makefile, CI (``.ci/run``) and the README all delegate to it. It uses only the standard
library and runs with any Python >= 3.11 on a machine that has nothing else: the first task
that needs uv installs it with pip.

Every task prints each command before running it and exits non-zero when a step fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# websockets (and aiohttp with trust_env) honour proxy variables even for ws://127.0.0.1, so
# every child gets loopback on the bypass list, whatever proxy the machine sets.
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

# pytest's exit code when it collected nothing; CI must never pass on zero tests.
_PYTEST_NO_TESTS = 5


class TaskFailed(Exception):
    """A step of a task failed; carries the exit code to hand back to the shell."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        present = [item.strip() for item in env.get(name, "").split(",") if item.strip()]
        merged = present + [host for host in _LOOPBACK if host not in present]
        env[name] = ",".join(merged)
    return env


def _run(command: Sequence[str], *, check: bool = True, quiet: bool = False) -> int:
    """Run ``command`` from the repository root, echoing it first."""
    if not quiet:
        print("$ " + " ".join(command), file=sys.stderr, flush=True)
    try:
        completed = subprocess.run(  # noqa: S603 - commands are built here, never from input
            list(command),
            cwd=ROOT,
            env=_child_env(),
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise TaskFailed(f"cannot run {command[0]!r}: {exc.strerror}", 127) from exc
    if check and completed.returncode != 0:
        raise TaskFailed(
            f"`{' '.join(command)}` failed with exit code {completed.returncode}",
            completed.returncode,
        )
    return completed.returncode


def _probe(command: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    """Run ``command`` silently and return its result, or None when it cannot start."""
    try:
        return subprocess.run(  # noqa: S603 - fixed commands only
            list(command),
            cwd=ROOT,
            env=_child_env(),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# uv


_uv_command: list[str] | None = None
_installed = False


def _find_uv() -> list[str] | None:
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    # `pip install --user uv` puts it in the user scripts dir, often not on PATH.
    script_dirs = [sysconfig.get_path("scripts")]
    with contextlib.suppress(KeyError):
        script_dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    for scripts in script_dirs:
        candidate = Path(scripts) / ("uv.exe" if os.name == "nt" else "uv")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    as_module = [sys.executable, "-m", "uv"]
    probe = _probe([*as_module, "--version"])
    if probe is not None and probe.returncode == 0:
        return as_module
    return None


def uv() -> list[str]:
    """Return the command that runs uv, installing uv with pip when it is missing."""
    global _uv_command  # noqa: PLW0603 - memoised once per process
    if _uv_command is not None:
        return _uv_command
    found = _find_uv()
    if found is None:
        _say("uv not found; installing it with pip")
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "uv"]
        if _run(pip, check=False) != 0 and _run([*pip, "--user"], check=False) != 0:
            raise TaskFailed(
                "could not install uv with pip; install it yourself "
                "(https://docs.astral.sh/uv/getting-started/installation/) and retry"
            )
        found = _find_uv()
        if found is None:
            raise TaskFailed("uv was installed by pip but cannot be found; add it to PATH")
    _uv_command = found
    return found


def _uv_run(*args: str) -> list[str]:
    # `install` already synced with --locked; --no-sync keeps `uv run` from re-resolving.
    return [*uv(), "run", "--no-sync", *args]


# --------------------------------------------------------------------------------------------
# tasks


def task_install(args: Sequence[str], *, quiet: bool = False) -> None:
    """Install uv when missing, then the locked environment (`uv sync --locked`)."""
    global _installed  # noqa: PLW0603 - install runs once per process
    if _installed:
        return
    command = [*uv(), "sync", "--locked"]
    if quiet:
        command.append("--quiet")
    _run([*command, *args])
    _installed = True


def task_lint(args: Sequence[str]) -> None:
    """Ruff: lint rules and the format check (no files are changed)."""
    task_install([], quiet=True)
    _run(_uv_run("ruff", "check", *args, "."))
    _run(_uv_run("ruff", "format", "--check", *args, "."))


def task_format(args: Sequence[str]) -> None:
    """Ruff: sort imports and reformat every file in place."""
    task_install([], quiet=True)
    _run(_uv_run("ruff", "check", "--select", "I", "--fix", *args, "."))
    _run(_uv_run("ruff", "format", *args, "."))


def task_typecheck(args: Sequence[str]) -> None:
    """Mypy in strict mode over packages/, services/ and tests/ (config in pyproject)."""
    task_install([], quiet=True)
    _run(_uv_run("mypy", *args))


def task_lock_check(args: Sequence[str]) -> None:
    """Fail when uv.lock is out of date with the pyproject files (`uv lock --check`)."""
    _run([*uv(), "lock", "--check", *args])


# `test` runs the suite on this many pytest-xdist workers at most: half of the suite's wall time
# is spent waiting on servers and subprocesses, so two workers on two cores nearly halve it.
_TEST_WORKERS_MAX = 4


def _test_workers(args: Sequence[str]) -> list[str]:
    """The ``-n`` option for `test`: ``MDP_TEST_WORKERS``, else the cores (at most four).

    Nothing when the arguments already choose (``-n``, ``--numprocesses``, ``-p no:xdist``),
    and none for 0 or 1 worker: one pytest process runs the tests in order, as ``uv run pytest``
    does.
    """
    if any(
        arg in {"--numprocesses", "no:xdist"} or arg.startswith(("-n", "--numprocesses="))
        for arg in args
    ):
        return []
    wanted = os.environ.get("MDP_TEST_WORKERS", "").strip()
    try:
        workers = int(wanted) if wanted else min(os.cpu_count() or 1, _TEST_WORKERS_MAX)
    except ValueError as exc:
        raise TaskFailed(f"MDP_TEST_WORKERS must be a whole number; it was {wanted!r}") from exc
    return ["-n", str(workers)] if workers > 1 else []


def task_test(args: Sequence[str]) -> None:
    """Install, then run pytest on parallel workers; extra arguments go to pytest.

    Zero tests is a failure.
    """
    task_install([], quiet=True)
    code = _run(_uv_run("pytest", *_test_workers(args), *args), check=False)
    if code == _PYTEST_NO_TESTS:
        raise TaskFailed(
            "pytest collected no tests (exit code 5); a run without tests never passes",
        )
    if code != 0:
        raise TaskFailed(f"pytest failed with exit code {code}", code)


def _mdp_subcommand(name: str, args: Sequence[str]) -> None:
    task_install([], quiet=True)
    probe = _probe(_uv_run("mdp", "--help"))
    if probe is None or probe.returncode != 0:
        raise TaskFailed(
            f"`mdp {name}` is not available yet: the `mdp` command does not run "
            "(services/platform has no working entry point)",
            2,
        )
    if name not in probe.stdout:
        raise TaskFailed(
            f"`mdp {name}` is not available yet: `mdp --help` lists no {name!r} command", 2
        )
    _run(_uv_run("mdp", name, *args))


def task_bench(args: Sequence[str]) -> None:
    """Run the end-to-end benchmark (`uv run mdp bench`); extra arguments go to it."""
    _mdp_subcommand("bench", args)


def task_demo(args: Sequence[str]) -> None:
    """Run the one-command demo (`uv run mdp demo`); extra arguments go to it."""
    _mdp_subcommand("demo", args)


def _tools() -> None:
    # tools/ holds the standard-library scripts for images and releases.
    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)


def task_images(args: Sequence[str]) -> None:
    """Print every service image's dependency closure, input digest and tag (--json, --otel)."""
    unknown = set(args) - {"--json", "--otel"}
    if unknown:
        raise TaskFailed(f"unknown options {sorted(unknown)}; use --json and/or --otel", 2)
    _tools()
    import mdp_images  # noqa: PLC0415 - found through tools/ on sys.path

    report = mdp_images.images(ROOT, uv(), otel="--otel" in args)
    print(mdp_images.render(report, as_json="--json" in args))


def task_release(args: Sequence[str]) -> None:
    """Release what changed since its last release (--dry-run, --bump NAME=LEVEL, --commit)."""
    _tools()
    import mdp_images  # noqa: PLC0415 - found through tools/ on sys.path
    import mdp_release  # noqa: PLC0415 - same

    levels: dict[str, str] = {}
    rest = list(args)
    dry_run = "--dry-run" in rest
    commit = "--commit" in rest
    rest = [a for a in rest if a not in {"--dry-run", "--commit"}]
    while rest:
        option = rest.pop(0)
        if option != "--bump" or not rest:
            raise TaskFailed(f"unknown option {option!r}; see docs/dev/releasing.md", 2)
        name, _, level = rest.pop(0).partition("=")
        if level not in mdp_release.LEVELS:
            raise TaskFailed(f"--bump {name}={level}: use one of {mdp_release.LEVELS}", 2)
        levels[mdp_images.normalize(name)] = level
    try:
        plan = (mdp_release.plan if dry_run else mdp_release.release)(ROOT, levels)
    except mdp_release.ReleaseError as error:
        raise TaskFailed(f"release refused:\n{error}") from error
    if not plan.versions:
        print("nothing changed since the last release")
        return
    for name, (old, new) in sorted(plan.versions.items()):
        print(f"{name}: {old} -> {new} ({plan.reasons[name]})")
    if dry_run:
        return
    _run([*uv(), "lock"])
    if commit:
        tags = [mdp_release.tag_name(name, new) for name, (_, new) in sorted(plan.versions.items())]
        _run(["git", "add", "-A", "packages", "services", "deploy", "uv.lock", "releases.json"])
        _run(["git", "commit", "-m", "Release " + ", ".join(tags)])
        for tag in tags:
            _run(["git", "tag", tag])


def task_release_check(args: Sequence[str]) -> None:
    """Fail when a library changed since its release without a bump or an Unreleased entry."""
    del args
    _tools()
    import mdp_release  # noqa: PLC0415 - found through tools/ on sys.path

    problems = mdp_release.check(ROOT)
    if problems:
        raise TaskFailed("\n".join(problems))
    print("every changed library has a version bump or an Unreleased changelog entry")


def task_deploy_check(args: Sequence[str]) -> None:
    """hadolint, ansible-lint, manifest validation, deptry; then a real image build.

    The image build is the tests marked `image` (buildah), which `dev.py test` leaves out.
    """
    task_install([], quiet=True)
    _run(_uv_run("python", "tools/mdp_checks.py", *args))
    if not args:
        code = _run(_uv_run("pytest", "-m", "image", "-q", "tests/deploy"), check=False)
        if code == _PYTEST_NO_TESTS:
            raise TaskFailed("no test carries the `image` marker; the image build checks nothing")
        if code != 0:
            raise TaskFailed(f"the image build test failed with exit code {code}", code)


# `rerun`: every restart or timing integration test, this many times, within this many seconds.
_RERUN_COUNT = 5
#: 585 s on a slow machine of 2026-12-07 (44 tests): the budget catches a test that hangs or
#: slows down for good, not a slow host.
_RERUN_BUDGET_SECONDS = 900


def task_rerun(args: Sequence[str]) -> None:
    """Repeat every restart or timing integration test (marker `restart`) to catch flakes."""
    task_install([], quiet=True)
    count = os.environ.get("MDP_RERUN_COUNT", str(_RERUN_COUNT))
    command = _uv_run(
        # -x: the first failure is reported at once, its traceback included, instead of the
        # budget running out on the rounds after it.
        "pytest",
        "-m",
        "restart",
        "--count",
        count,
        "-p",
        "no:randomly",
        "-q",
        "-x",
        *args,
        "tests",
    )
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    try:
        completed = subprocess.run(  # noqa: S603 - commands are built here, never from input
            command,
            cwd=ROOT,
            env=_child_env(),
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=_RERUN_BUDGET_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise TaskFailed(
            f"the reruns took more than {_RERUN_BUDGET_SECONDS} s; a restart test became slow"
        ) from exc
    if completed.returncode == _PYTEST_NO_TESTS:
        raise TaskFailed("no test carries the `restart` marker; the rerun checks nothing")
    if completed.returncode != 0:
        raise TaskFailed(
            f"a restart or timing test failed in {count} runs (exit code {completed.returncode})",
            completed.returncode,
        )


def task_mutate(args: Sequence[str]) -> None:
    """Mutation testing (mutmut) of the listed modules; --check is CI's bounded run."""
    task_install([], quiet=True)
    _tools()
    import mdp_mutation  # noqa: PLC0415 - found through tools/ on sys.path

    code = mdp_mutation.main(ROOT, args)
    if code != 0:
        raise TaskFailed("mutation testing failed (see above)", code)


def task_ci(args: Sequence[str]) -> None:
    """Everything CI checks: lint, type, lock, release, deploy; tests, reruns, mutation check."""
    task_install([])
    task_lint([])
    task_typecheck([])
    task_lock_check([])
    task_release_check([])
    task_deploy_check([])
    task_test(args)
    task_rerun([])
    task_mutate(["--check"])


def task_help(args: Sequence[str]) -> None:
    """Show this list."""
    del args
    print("usage: python3 dev.py <task> [args...]\n\ntasks:")
    for name, function in TASKS.items():
        summary = (function.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<13} {summary}")


TASKS: dict[str, Callable[[Sequence[str]], None]] = {
    "install": task_install,
    "lint": task_lint,
    "format": task_format,
    "typecheck": task_typecheck,
    "lock-check": task_lock_check,
    "test": task_test,
    "bench": task_bench,
    "demo": task_demo,
    "images": task_images,
    "release": task_release,
    "release-check": task_release_check,
    "deploy-check": task_deploy_check,
    "mutate": task_mutate,
    "rerun": task_rerun,
    "ci": task_ci,
    "help": task_help,
}


def main(argv: Sequence[str]) -> int:
    """Run the task named by ``argv[0]`` with the remaining arguments."""
    if sys.version_info < (3, 11):  # noqa: UP036 - the guard is for old interpreters
        _say("Python >= 3.11 is required")
        return 2
    if not argv or argv[0] in {"-h", "--help"}:
        task_help([])
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    task = TASKS.get(name)
    if task is None:
        _say(f"unknown task {name!r}; run `python3 dev.py help`")
        return 2
    try:
        task(rest)
    except TaskFailed as failure:
        _say(f"{name}: {failure}")
        return failure.code or 1
    except KeyboardInterrupt:
        _say(f"{name}: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
