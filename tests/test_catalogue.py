"""Only the catalogue (mdp_cache.keys) spells Redis keys and channels; everything else asks it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mdp_cache.keys import ALL_FEEDS, ALL_KEYS

ROOT = Path(__file__).parents[1]
CATALOGUE = ROOT / "packages" / "mdp-cache" / "src" / "mdp_cache" / "keys.py"
_PREFIXES = sorted({f.template.split("{")[0].split(":")[0] + ":" for f in ALL_FEEDS} | {"mdp:"})
KEY_LIKE = re.compile(rf"^({'|'.join(re.escape(p) for p in _PREFIXES)})[\w{{}}*:.-]*$")


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def key_literals(path: Path) -> list[tuple[int, str]]:
    """String constants in ``path`` that look like a catalogue key or channel."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and KEY_LIKE.match(node.value)
    ]


def test_the_detector_sees_keys_and_ignores_prose(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Writes quote:{symbol}."""\nA = "quote:ACME"\nB = "mdp:x:y"\nC = "quoted text"\n'
    )
    assert [value for _, value in key_literals(sample)] == ["quote:ACME", "mdp:x:y"]


def test_no_code_outside_the_catalogue_spells_a_key() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for folder in ("packages", "services")
        for path in sorted((ROOT / folder).glob("*/src/**/*.py"))
        if path != CATALOGUE
        for line, value in key_literals(path)
    ]
    assert offenders == [], "use mdp_cache.keys instead of literals:\n" + "\n".join(offenders)


def test_every_internal_key_is_namespaced_and_no_feed_collides_with_one() -> None:
    assert all(key.template.startswith("mdp:") for key in ALL_KEYS)
    assert not any(feed.template.startswith("mdp:") for feed in ALL_FEEDS)
    templates = [f.template for f in ALL_FEEDS] + [k.template for k in ALL_KEYS]
    assert len(templates) == len(set(templates))
