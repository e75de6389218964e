"""One duration naming convention for settings (docs/dev/design.md, "Conventions").

A duration is in seconds and says so: the field ends in ``_seconds`` and its variable in
``_SECONDS``. ``_ms``/``_MS`` is kept for an integer the code hands on in milliseconds (the AMQP
``x-message-ttl`` of ``MDP_MDQ_TTL_MS``), and ``_days`` for a count of calendar or trading days
(a day is not 86,400 seconds across a DST change or a market holiday). No other unit (``_s``,
minutes, hours) and no field whose unit differs from its variable's.

The same holds in the code: no identifier (variable, attribute, parameter, keyword argument such
as a log key, function, class or constant) in ``packages/``, ``services/``, ``bench/``,
``tools/`` or ``dev.py`` ends in ``_s``; a duration is ``_seconds`` and a rate ``_per_second``.
A name another program reads (a key of a published or stored document) keeps its spelling and
is listed in ``WIRE_NAMES`` with its reason.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest

from mdp_core.settings import CommonSettings, describe
from mdp_platform.reference import settings_classes

UNIT = re.compile(r"_(seconds|ms|s|sec|secs|minutes|mins|min|hours|hrs|days)$")
ALLOWED = frozenset({"seconds", "ms", "days"})

ROOT = Path(__file__).parents[1]
SCANNED = ("packages", "services", "bench", "tools")
SECONDS_SUFFIX = re.compile(r"_s$", re.IGNORECASE)

#: ``(file, name)`` pairs allowed to end in ``_s``, each with its reason. Only names that are
#: the spelling of a wire or stored format belong here: renaming them would break a reader.
WIRE_NAMES: dict[tuple[str, str], str] = {
    ("packages/mdp-analyzers/src/mdp_analyzers/top_trades.py", "window_s"): (
        "field of the msgspec struct encoded as the `trades:top` widget document (WDC and the "
        "WDS clients read its `window_s` key; docs/reference/cache-keys.md)"
    ),
}


def _unit(name: str) -> str | None:
    found = UNIT.search(name.lower())
    return found.group(1) if found else None


@pytest.mark.parametrize(
    ("name", "unit"),
    [("flush_interval_seconds", "seconds"), ("ttl_ms", "ms"), ("MDP_X_WAIT_S", "s"),
     ("news_window_minutes", "minutes"), ("batch_messages", None), ("rate_per_second", None)],
)  # fmt: skip
def test_the_unit_is_read_from_the_suffix(name: str, unit: str | None) -> None:
    assert _unit(name) == unit


def test_every_duration_setting_is_in_seconds_or_integer_milliseconds_and_says_so() -> None:
    offenders: list[str] = []
    for cls in {CommonSettings, *settings_classes()}:
        hints = typing.get_type_hints(cls)
        for doc in describe(cls):
            field_unit, env_unit = _unit(doc.name), _unit(doc.env)
            where = f"{cls.__qualname__}.{doc.name} ({doc.env})"
            if field_unit != env_unit:
                offenders.append(f"{where}: field and variable name different units")
            elif field_unit is not None and field_unit not in ALLOWED:
                offenders.append(f"{where}: durations are _seconds (or integer _ms, or _days)")
            elif field_unit == "ms" and hints[doc.name] is not int:
                offenders.append(f"{where}: milliseconds are integers")
    assert offenders == [], "\n".join(offenders)


def _identifiers(tree: ast.AST) -> list[tuple[int, str]]:
    """Every name the code defines or uses, with its line: variables, attributes, parameters,
    keyword arguments, functions, classes and imported names."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        match node:
            case ast.Name(id=name) | ast.Attribute(attr=name) | ast.arg(arg=name):
                found.append((node.lineno, name))
            case ast.keyword(arg=str(name)):
                found.append((node.lineno, name))
            case ast.FunctionDef(name=name) | ast.AsyncFunctionDef(name=name):
                found.append((node.lineno, name))
            case ast.ClassDef(name=name):
                found.append((node.lineno, name))
            case ast.alias(name=name, asname=asname):
                found.extend((node.lineno, n.rsplit(".", 1)[-1]) for n in (name, asname) if n)
    return found


def seconds_names(path: Path) -> list[tuple[int, str]]:
    """The identifiers of ``path`` that end in ``_s`` (or ``_S``), with their lines."""
    tree = ast.parse(path.read_text(), str(path))
    return sorted(
        {(line, name) for line, name in _identifiers(tree) if SECONDS_SUFFIX.search(name)}
    )


def _scanned_files() -> list[Path]:
    files = [ROOT / "dev.py"]
    for folder in SCANNED:
        files += sorted(p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)
    return files


def test_the_identifier_scan_finds_s_suffixes_in_every_position(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "WAIT_S = 1.0\n"
        "def pause(timeout_s: float) -> None: ...\n"
        "self._lock_wait_s = 2\n"
        "log.info('flushed', took_s=0.1)\n"
        "from x import BUCKETS_S as buckets\n"
        "class Frame_s: ...\n"
        "rate_per_s = n / elapsed\n"
        "took_seconds, ttl_ms, status, items = 1, 2, 3, 4\n"
        "d = {'interval_s': 1}\n"
    )
    assert [line for line, _ in seconds_names(sample)] == [1, 2, 3, 4, 5, 6, 7]


def test_no_identifier_ends_in_s_for_seconds() -> None:
    offenders: list[str] = []
    allowed_seen: set[tuple[str, str]] = set()
    for path in _scanned_files():
        where = path.relative_to(ROOT).as_posix()
        for line, name in seconds_names(path):
            if (where, name) in WIRE_NAMES:
                allowed_seen.add((where, name))
            else:
                offenders.append(f"{where}:{line}: {name}")
    assert offenders == [], "a duration ends in _seconds, a rate in _per_second:\n" + "\n".join(
        offenders
    )
    assert allowed_seen == set(WIRE_NAMES), "WIRE_NAMES lists a name the code no longer has"
