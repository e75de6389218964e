"""Versions come from package metadata, never from a literal that a release would leave stale.

Each ``__version__`` is ``importlib.metadata.version(<distribution>)``, and no string in
``packages/*/src`` or ``services/*/src`` spells a release number (``X.Y.Z``): a version written
by hand is the one ``dev.py release`` does not bump.
"""

from __future__ import annotations

import ast
import re
from importlib import import_module
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
RELEASE = re.compile(r"(?<![\d.])\d+\.\d+\.\d+(?![\d.])")

#: Literals that look like a release number but are not ours to bump.
NOT_OUR_VERSIONS = frozenset({
    "text/plain; version=0.0.4; charset=utf-8",  # the Prometheus text exposition format
})  # fmt: skip

#: Still written by hand here; the WDS session change of issue 20 reads it from metadata, after
#: which this entry is obsolete (the check is a subset test, so it does not fail then).
PENDING = frozenset({"mdp-wds/0.1.0"})


def _docstrings(tree: ast.AST) -> set[int]:
    """Docstrings may cite a dependency's version (``websockets 14``): prose, not a value."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def release_literals(path: Path) -> list[tuple[int, str]]:
    """String constants in ``path`` (docstrings aside) holding an ``X.Y.Z`` number."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and RELEASE.search(node.value)
        and node.value not in NOT_OUR_VERSIONS
    ]


def test_the_scan_finds_release_numbers_and_not_addresses_or_dates(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Needs websockets 14.0.1."""\nA = "mdp-x/1.2.3"\nB = "127.0.0.1"\n'
        'C = "2026-12-02"\nD = "0.2.10"\nE = "1.2"\n'
    )
    assert [value for _, value in release_literals(sample)] == ["mdp-x/1.2.3", "0.2.10"]


def test_no_source_spells_a_release_number() -> None:
    found = {
        value: f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(ROOT.glob("*/*/src/**/*.py"))
        for line, value in release_literals(path)
    }
    unexpected = {value: where for value, where in found.items() if value not in PENDING}
    assert unexpected == {}, "read it with importlib.metadata.version() instead"


def _packages() -> list[tuple[str, str]]:
    """(import name, distribution) of every member whose ``__init__`` exports ``__version__``."""
    members = []
    for init in sorted(ROOT.glob("*/*/src/*/__init__.py")):
        if "__version__" in init.read_text():
            text = (init.parents[2] / "pyproject.toml").read_text()
            name = re.search(r'^name = "([^"]+)"', text, re.MULTILINE)
            assert name is not None, init
            members.append((init.parent.name, name.group(1)))
    return members


@pytest.mark.parametrize(("module", "distribution"), _packages())
def test_dunder_version_is_the_installed_distribution_version(
    module: str, distribution: str
) -> None:
    assert import_module(module).__version__ == version(distribution)
