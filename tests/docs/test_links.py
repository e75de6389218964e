"""Every relative link in the documentation points at a file that exists.

Checked: ``docs/**/*.md``, ``README.md`` and every package's and service's ``README.md``.
External links (``https:``, ``mailto:`` ...) and same-page anchors are not followed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from .markdown import ROOT, Link, documentation_files, links

_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def broken_links(path: Path, text: str | None = None) -> list[Link]:
    """The relative links of ``path`` whose target file or folder does not exist."""
    broken = []
    for link in links(path, text):
        target = link.target.split("#", 1)[0].split("?", 1)[0]
        if not target or _EXTERNAL.match(target):
            continue
        base = ROOT if target.startswith("/") else path.parent
        if not (base / unquote(target.lstrip("/"))).exists():
            broken.append(link)
    return broken


@pytest.mark.parametrize("path", documentation_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files(path: Path) -> None:
    broken = broken_links(path)
    assert not broken, "\n".join(
        f"{path.relative_to(ROOT)}:{link.line}: {link.target} does not exist" for link in broken
    )


def test_the_checker_finds_a_broken_link_and_ignores_code_and_external_links(
    tmp_path: Path,
) -> None:
    (tmp_path / "there.md").write_text("# there\n")
    doc = tmp_path / "doc.md"
    text = (
        "[ok](there.md#section) [gone](missing.md) ![img](nope.png)\n"
        "[web](https://example.invalid/x.md) [anchor](#top) `[code](absent.md)`\n"
        "```\n[fenced](absent.md)\n```\n"
        "[ref]: also-missing.md\n"
    )
    assert [(b.line, b.target) for b in broken_links(doc, text)] == [
        (1, "missing.md"),
        (1, "nope.png"),
        (6, "also-missing.md"),
    ]
