"""Mutation testing of the modules that decide what traders see and who may see it.

``python3 dev.py mutate [module...]`` runs mutmut 3 over each listed module with only the fast
unit tests mapped to it, and records the result in ``tests/mutation/record.json``;
``python3 dev.py mutate --check`` is what CI runs. Why mutmut and how to read the results:
``docs/dev/testing.md#mutation-testing``.

mutmut names a mutant after the module path of its file relative to where it runs, less a
leading ``src.``, and imports the mutated copy from ``mutants/src``. The workspace keeps each
package under ``packages/<dist>/src/<package>``, so every module runs in a small staging folder
(``build/mutation/<name>/``) holding ``src/<package>`` (a link to the real package) and
``tests`` (a link to the real tests). mutmut copies both into ``mutants/`` and the tests then
import the mutated package ahead of the editable install.

The record keeps, per module, a fingerprint of what decides the score (the module's source, its
mapped tests, the shared test configuration, its equivalent-mutant list and the mutmut version).
``--check`` re-measures every module whose fingerprint moved, most recently recorded cost first,
within a time budget, and fails when a module scores below the threshold or when a moved module
does not fit in the budget (record it locally and commit the record). A clean clone needs
neither git history nor a remote.

Standard library only, like dev.py.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

THRESHOLD = 0.85
RECORD = Path("tests/mutation/record.json")
EQUIVALENTS = Path("tests/mutation/equivalent.toml")
STAGING = Path("build/mutation")
# Shared test inputs that shape every module's verdicts. tests/conftest.py is left out on
# purpose: it changes with every new fixture, and re-measuring the whole list for each would not
# fit CI; after a change to its Hypothesis profiles or the mutation cache reset, run
# `python3 dev.py mutate` for the whole list.
SHARED_INPUTS = ("packages/mdp-testing/src/mdp_testing/strategies.py",)

# Statuses mutmut gives a mutant (mutmut.stats.status_by_exit_code) that count as caught.
_KILLED_CODES = {1, 3, 36, 24, -24, 152, 255, 37}


@dataclasses.dataclass(frozen=True)
class Module:
    """One module under mutation: its file, optionally some functions of it, and its tests."""

    name: str
    src: str  # the folder that holds the import package, e.g. packages/mdp-core/src
    package: str  # the import package, e.g. mdp_core
    file: str  # path inside the package, e.g. envelope.py
    tests: tuple[str, ...]
    # mutmut key patterns (fnmatch) of the functions that count; empty means the whole file.
    functions: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """The module's file, relative to the repository root."""
        return f"{self.src}/{self.package}/{self.file}"

    @property
    def dotted(self) -> str:
        """The module's import name."""
        return f"{self.package}.{self.file.removesuffix('.py').replace('/', '.')}"


_AN = "packages/mdp-analyzers/src"
_CORE = "packages/mdp-core/src"
_CACHE = "packages/mdp-cache/src"
_UA = "tests/unit/mdp_analyzers"

MODULES: dict[str, Module] = {
    m.name: m
    for m in (
        Module(
            "board",
            _AN,
            "mdp_analyzers",
            "board.py",
            (f"{_UA}/test_board_edges.py", f"{_UA}/test_leaderboard.py"),
        ),
        Module(
            "leaderboard",
            _AN,
            "mdp_analyzers",
            "leaderboard.py",
            (
                f"{_UA}/test_board_edges.py",
                f"{_UA}/test_leaderboard.py",
                f"{_UA}/test_leaderboard_rules.py",
                f"{_UA}/test_session_figures.py",
            ),
        ),
        Module(
            "top_trades",
            _AN,
            "mdp_analyzers",
            "top_trades.py",
            (f"{_UA}/test_routing_and_trades.py", f"{_UA}/test_top_trades.py"),
        ),
        Module("news", _AN, "mdp_analyzers", "news.py", (f"{_UA}/test_news.py",)),
        Module(
            "daily_range", _AN, "mdp_analyzers", "daily_range.py", (f"{_UA}/test_daily_range.py",)
        ),
        Module(
            "halts",
            _AN,
            "mdp_analyzers",
            "halts.py",
            (f"{_UA}/test_halts.py", f"{_UA}/test_routing_and_trades.py"),
        ),
        Module(
            "unusual_volume",
            _AN,
            "mdp_analyzers",
            "unusual_volume.py",
            (f"{_UA}/test_unusual_volume.py",),
        ),
        Module(
            "news_movers",
            _AN,
            "mdp_analyzers",
            "news_movers.py",
            (f"{_UA}/test_news_movers.py",),
        ),
        Module(
            "halt_alerts",
            _AN,
            "mdp_analyzers",
            "halt_alerts.py",
            (f"{_UA}/test_halt_alerts.py",),
        ),
        Module(
            "envelope",
            _CORE,
            "mdp_core",
            "envelope.py",
            ("tests/unit/mdp_core/test_envelope.py",),
        ),
        Module(
            "wire",
            _CORE,
            "mdp_core",
            "wire.py",
            ("tests/unit/mdp_core/test_wire.py", "tests/unit/mdp_core/test_nested_json.py"),
        ),
        Module(
            "calendar", _CORE, "mdp_core", "calendar.py", ("tests/unit/mdp_core/test_calendar.py",)
        ),
        Module("token", _CORE, "mdp_core", "token.py", ("tests/unit/mdp_core/test_token.py",)),
        Module(
            "wdc_widgets",
            _CACHE,
            "mdp_cache",
            "widgets.py",
            ("tests/unit/mdp_cache/test_widgets.py",),
            # The write rules on the Python path; the Lua path runs in Redis
            # (tests/integration/test_cache_widgets.py), out of mutmut's reach.
            functions=("*ǁWidgetWriterǁ_send_plain__*",),
        ),
        Module(
            "wdc_versions",
            _CACHE,
            "mdp_cache",
            "versions.py",
            ("tests/unit/mdp_cache/test_widgets.py",),
            # The rule only, as before the move out of widgets.py (the digest helper is hashlib).
            functions=("*.x_supersedes__*",),
        ),
        Module(
            "wdc_lattice",
            _CACHE,
            "mdp_cache",
            "lattice.py",
            ("tests/unit/mdp_cache/test_lattice.py",),
        ),
        Module(
            "wds_access",
            "services/widget-service/src",
            "mdp_wds",
            "access.py",
            ("tests/unit/mdp_wds/test_access.py",),
        ),
        Module(
            "wds_session",
            "services/widget-service/src",
            "mdp_wds",
            "session_protocol.py",
            ("tests/unit/mdp_wds/test_session_protocol.py",),
        ),
        Module(
            "wds_resp",
            "services/widget-service/src",
            "mdp_wds",
            "resp.py",
            ("tests/unit/mdp_wds/test_resp.py",),
        ),
        Module(
            "scp_jws",
            "services/control-plane/src",
            "mdp_scp",
            "jws.py",
            ("tests/unit/mdp_scp/test_jws.py",),
        ),
        Module(
            "scp_passwords",
            "services/control-plane/src",
            "mdp_scp",
            "passwords.py",
            ("tests/unit/mdp_scp/test_passwords.py", "tests/unit/mdp_scp/test_password_rules.py"),
        ),
        Module(
            "scp_throttle",
            "services/control-plane/src",
            "mdp_scp",
            "login_throttle.py",
            ("tests/unit/mdp_scp/test_login_throttle.py", "tests/unit/mdp_scp/test_sessions.py"),
        ),
        Module(
            "scp_sessions",
            "services/control-plane/src",
            "mdp_scp",
            "sessions.py",
            ("tests/unit/mdp_scp/test_sessions.py", "tests/unit/mdp_scp/test_session_rules.py"),
            # The signing rules and the secrets compare; the stored sessions: ``scp_session_store``.
            functions=("*ǁSignerǁ*", "*x_same_secret__*"),
        ),
        Module(
            "scp_session_store",
            "services/control-plane/src",
            "mdp_scp",
            "sessions.py",
            ("tests/unit/mdp_scp/test_session_store.py",),
            # The sessions themselves, stored in the SCP's database (SQLite in the tests).
            functions=("*ǁSessionǁ*", "*ǁSessionStoreǁ*", "*x__digest__*"),
        ),
        Module(
            "processor_dedupe",
            "services/processor/src",
            "mdp_processor",
            "processor.py",
            ("tests/unit/mdp_processor/test_processor_dedupe.py",),
            functions=("*ǁProcessorǁingest__*", "*ǁProcessorǁ_remember__*", "*ǁProcessorǁflush__*"),
        ),
        Module(
            "composition",
            "services/processor/src",
            "mdp_processor",
            "composition.py",
            ("tests/unit/mdp_processor/test_composition.py",),
            # When boards are composed and what a failed composition leaves to send: the
            # thread's lifecycle is covered by tests/integration/test_composer_thread.py.
            functions=("*ǁCompositionǁ*", "*x_valid_writes__*", "*x__coalesced__*"),
        ),
    )
}


class MutationError(Exception):
    """A mutation run could not start or finish."""


@dataclasses.dataclass
class Result:
    """The outcome of one module's run."""

    name: str
    fingerprint: str
    total: int
    equivalent: int
    killed: int
    survivors: list[str]
    seconds: float

    @property
    def score(self) -> float:
        """Killed over non-equivalent mutants (1.0 when there are none)."""
        counted = self.total - self.equivalent
        return 1.0 if counted == 0 else self.killed / counted

    def as_json(self) -> dict[str, object]:
        """The module's entry in the record."""
        return {
            "fingerprint": self.fingerprint,
            "total": self.total,
            "equivalent": self.equivalent,
            "killed": self.killed,
            "score": round(self.score, 4),
            "survivors": self.survivors,
            "seconds": round(self.seconds, 1),
        }


def equivalents(root: Path) -> dict[str, dict[str, str]]:
    """Equivalent mutants per module: mutant name -> one-line reason."""
    path = root / EQUIVALENTS
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: dict(table) for name, table in data.items()}


def _mutmut_version(root: Path) -> str:
    for dist in (root / ".venv").glob("lib/python*/site-packages/mutmut-*.dist-info"):
        return dist.name
    return "mutmut-unknown"


def fingerprint(root: Path, module: Module) -> str:
    """A digest of everything that decides the module's score."""
    digest = hashlib.sha256()
    digest.update(repr(dataclasses.astuple(module)).encode())
    digest.update(_mutmut_version(root).encode())
    digest.update(json.dumps(equivalents(root).get(module.name, {}), sort_keys=True).encode())
    for relative in (module.path, *module.tests, *SHARED_INPUTS):
        path = root / relative
        digest.update(relative.encode())
        digest.update(path.read_bytes() if path.exists() else b"<absent>")
    return digest.hexdigest()


def load_record(root: Path) -> dict[str, dict[str, object]]:
    """The committed results, by module name."""
    path = root / RECORD
    if not path.exists():
        return {}
    loaded: dict[str, dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def save_record(root: Path, record: dict[str, dict[str, object]]) -> None:
    """Write the results back, sorted, one key per line (small diffs)."""
    path = root / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _stage(root: Path, module: Module) -> Path:
    stage = root / STAGING / module.name
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "src").mkdir(parents=True)
    (stage / "src" / module.package).symlink_to(root / module.src / module.package)
    (stage / "tests").symlink_to(root / "tests")
    tests = [t for t in module.tests if (root / t).exists()]
    if not tests:
        raise MutationError(f"{module.name}: none of its tests exist: {module.tests}")
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_ini = dict(pyproject["tool"]["pytest"]["ini_options"])
    pytest_ini.pop("pythonpath", None)  # tools/ is not staged; no mapped test needs it
    pytest_ini["testpaths"] = ["tests"]
    lines = [
        "[tool.mutmut]",
        f"source_paths = [{json.dumps(f'src/{module.package}')}]",
        f"only_mutate = [{json.dumps(f'src/{module.package}/{module.file}')}]",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-m", "not integration"]',
        "",
        "[tool.pytest.ini_options]",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in pytest_ini.items()]
    (stage / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return stage


def _mutmut(root: Path) -> list[str]:
    found = root / ".venv" / "bin" / "mutmut"
    if not found.exists():
        raise MutationError("mutmut is not installed; run `python3 dev.py install`")
    command = [str(found)]
    nice = shutil.which("nice")
    return [nice, "-n", "15", *command] if nice else command


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Derandomized and without an example database: a verdict must not depend on luck.
    env["MDP_HYPOTHESIS_PROFILE"] = "mutation"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run(root: Path, module: Module, *, children: int, quiet: bool = False) -> Result:
    """Mutate one module, run its tests against every mutant and collect the verdicts."""
    stage = _stage(root, module)
    started = time.monotonic()
    log = stage / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        completed = subprocess.run(  # noqa: S603 - fixed command
            [*_mutmut(root), "run", "--max-children", str(children), *module.functions],
            cwd=stage,
            env=_child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    seconds = time.monotonic() - started
    meta = stage / "mutants" / "src" / module.package / f"{module.file}.meta"
    if completed.returncode != 0 or not meta.exists():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise MutationError(
            f"{module.name}: mutmut failed (exit {completed.returncode}); log {log}:\n{tail}"
        )
    codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    if module.functions:
        codes = {
            key: code
            for key, code in codes.items()
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in module.functions)
        }
    equivalent = equivalents(root).get(module.name, {})
    unknown = sorted(set(equivalent) - set(codes))
    if unknown and not quiet:
        print(f"{module.name}: equivalent entries that are no longer mutants: {unknown}")
    killed = sum(
        1 for key, code in codes.items() if code in _KILLED_CODES and key not in equivalent
    )
    survivors = sorted(
        key for key, code in codes.items() if code not in _KILLED_CODES and key not in equivalent
    )
    return Result(
        name=module.name,
        fingerprint=fingerprint(root, module),
        total=len(codes),
        equivalent=sum(1 for key in codes if key in equivalent),
        killed=killed,
        survivors=survivors,
        seconds=seconds,
    )


def table(record: dict[str, dict[str, object]], names: Sequence[str]) -> str:
    """The Markdown table of docs/dev/testing.md for ``names``."""
    rows = [
        "| module | mutants | equivalent | killed | score | survivors |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        entry = record.get(name)
        if entry is None:
            rows.append(f"| {name} | not measured | | | | |")
            continue
        survivors = entry["survivors"]
        assert isinstance(survivors, list)
        rows.append(
            f"| {name} | {entry['total']} | {entry['equivalent']} | {entry['killed']} | "
            f"{float(str(entry['score'])):.0%} | {len(survivors)} |"
        )
    return "\n".join(rows)


def survivors_text(record: dict[str, dict[str, object]], names: Sequence[str]) -> str:
    """The surviving mutants per module, grouped by function (for docs/dev/testing.md)."""
    lines = []
    for name in names:
        survivors = record.get(name, {}).get("survivors")
        if not isinstance(survivors, list) or not survivors:
            continue
        by_function: dict[str, list[str]] = {}
        for mutant in survivors:
            function, _, number = str(mutant).rpartition("__mutmut_")
            by_function.setdefault(function.rpartition(".")[2], []).append(number)
        listed = "; ".join(
            f"`{function}` {', '.join(sorted(numbers, key=int))}"
            for function, numbers in sorted(by_function.items())
        )
        lines.append(f"- **{name}**: {listed}")
    return "\n".join(lines)


def _plan_check(
    root: Path, names: list[str], record: dict[str, dict[str, object]], budget: float
) -> tuple[list[str], list[str]]:
    """For ``--check``: the modules to measure now, and the failures known already."""
    failures: list[str] = []
    # A module never measured (no entry at all) is reported, not run: a first measurement of a
    # heavy module does not fit CI. Record it locally with `python3 dev.py mutate <module>`.
    for name in (n for n in names if n not in record):
        print(f"mutation check: {name} has no recorded result yet (not checked)")
    names = [n for n in names if n in record]
    stale = [n for n in names if record[n].get("fingerprint") != fingerprint(root, MODULES[n])]
    for name in (n for n in names if n not in stale):
        score = float(str(record[name]["score"]))
        if score < THRESHOLD:
            failures.append(f"{name}: recorded score {score:.0%} is below {THRESHOLD:.0%}")
    print(f"mutation check: {len(names) - len(stale)} module(s) as recorded, {len(stale)} changed")
    stale.sort(key=lambda n: float(str(record.get(n, {}).get("seconds", 60.0))))
    spent = 0.0
    to_run = []
    for name in stale:
        cost = float(str(record.get(name, {}).get("seconds", 60.0)))
        if spent + cost > budget:
            failures.append(
                f"{name}: changed since its recorded mutation result and does not fit in the "
                f"{budget:.0f} s budget; run `python3 dev.py mutate {name}` and commit {RECORD}"
            )
            continue
        spent += cost
        to_run.append(name)
    return to_run, failures


def main(root: Path, args: Sequence[str]) -> int:  # noqa: C901, PLR0912 - a small CLI
    """``mutate [--check] [--budget SECONDS] [--children N] [--table] [module...]``."""
    rest = list(args)
    check = "--check" in rest
    show_table = "--table" in rest
    rest = [a for a in rest if a not in {"--check", "--table"}]
    budget = 240.0
    children = max(1, min(2, os.cpu_count() or 1))
    names: list[str] = []
    while rest:
        arg = rest.pop(0)
        if arg == "--budget" and rest:
            budget = float(rest.pop(0))
        elif arg == "--children" and rest:
            children = int(rest.pop(0))
        elif arg in MODULES:
            names.append(arg)
        else:
            print(f"unknown argument {arg!r}; modules: {', '.join(MODULES)}", file=sys.stderr)
            return 2
    names = names or list(MODULES)
    record = load_record(root)
    if show_table:
        print(table(record, names))
        survivors = survivors_text(record, names)
        if survivors:
            print("\nSurviving mutants (function: mutant numbers; see `mutmut show NAME`):\n")
            print(survivors)
        return 0
    failures: list[str] = []
    if check:
        names, failures = _plan_check(root, names, record, budget)
    for name in names:
        print(f"mutating {name} ({MODULES[name].path}) ...", flush=True)
        try:
            result = run(root, MODULES[name], children=children)
        except MutationError as error:
            failures.append(str(error))
            continue
        print(
            f"  {name}: {result.killed}/{result.total - result.equivalent} killed "
            f"({result.score:.0%}), {result.equivalent} equivalent, {result.seconds:.0f} s",
            flush=True,
        )
        for survivor in result.survivors:
            print(f"    survived: {survivor}")
        if result.score < THRESHOLD:
            failures.append(f"{name}: score {result.score:.0%} is below {THRESHOLD:.0%}")
        if not check:
            record = load_record(root)  # another run may have recorded a module meanwhile
            record[name] = result.as_json()
            save_record(root, record)
    if failures:
        print("\n".join(["mutation check failed:", *failures]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent, sys.argv[1:]))
