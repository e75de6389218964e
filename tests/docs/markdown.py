"""Reading the project's Markdown: which files are documentation, their code blocks and links.

Shared by the documentation tests. The parser is deliberately small: fenced blocks open with a
line of three or more backticks (an info string such as ``python`` names the language) and close
with a line of at least as many backticks; everything inside a fence is code, never a link.

Markers for ``python`` blocks are HTML comments on the last non-blank line before the fence:

- ``<!-- not-executed: reason -->``: the block is shown, not run; the reason is required.
- ``<!-- continues -->``: the block runs in the namespace left by the previous executed block of
  the same file, instead of a fresh one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "ROOT",
    "CodeBlock",
    "Link",
    "MarkerError",
    "code_blocks",
    "documentation_files",
    "links",
]

ROOT: Final = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<ticks>`{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*(?P<name>not-executed|continues)\s*(?::(?P<reason>.*?))?\s*-->$")
_ANY_COMMENT = re.compile(r"^<!--.*-->$")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\]\\]|\\.)*\]"  # [text] or ![alt]
    r"\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"  # (target "optional title")
)
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+.*)?$")


class MarkerError(ValueError):
    """A block marker is malformed (e.g. ``not-executed`` without a reason)."""


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One fenced code block.

    Attributes:
        path: the Markdown file.
        line: 1-based line number of the first line of code (after the opening fence).
        language: the first word of the info string (``python``), lower case, or ``""``.
        code: the code, exactly as written.
        skip_reason: the reason given by a ``not-executed`` marker, or None.
        continues: whether a ``continues`` marker precedes the block.
    """

    path: Path
    line: int
    language: str
    code: str
    skip_reason: str | None
    continues: bool

    @property
    def where(self) -> str:
        """``file:line`` relative to the repository, for messages."""
        return f"{_relative(self.path)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Link:
    """One Markdown link (inline, image or reference definition) outside code."""

    path: Path
    line: int
    target: str


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def documentation_files(root: Path = ROOT) -> list[Path]:
    """Every Markdown file whose code and links are checked.

    ``docs/**/*.md``, the root README and the README of every package and service.
    """
    found = set((root / "docs").rglob("*.md"))
    found |= {root / "README.md"} if (root / "README.md").exists() else set()
    for folder in ("packages", "services"):
        found |= set((root / folder).glob("*/README.md"))
    return sorted(found)


def _marker(previous: str, where: str) -> tuple[str | None, bool]:
    """Read a marker comment; return (skip reason, continues)."""
    text = previous.strip()
    match = _MARKER.match(text)
    if match is None:
        if _ANY_COMMENT.match(text) and re.search(r"not[-_ ]?executed|continue", text):
            msg = f"{where}: malformed block marker {text!r}"
            raise MarkerError(msg)
        return None, False
    if match["name"] == "continues":
        if match["reason"]:
            msg = f"{where}: `<!-- continues -->` takes no argument, found {text!r}"
            raise MarkerError(msg)
        return None, True
    reason = (match["reason"] or "").strip()
    if not reason:
        msg = f"{where}: `<!-- not-executed: reason -->` needs a reason, found {text!r}"
        raise MarkerError(msg)
    return reason, False


def code_blocks(path: Path, text: str | None = None) -> list[CodeBlock]:
    """Every fenced code block of ``path`` (``text`` overrides reading the file).

    Raises:
        MarkerError: a marker before a block is malformed, or a fence is never closed.
    """
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    previous = ""
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            if lines[index].strip():
                previous = lines[index]
            index += 1
            continue
        ticks = opening["ticks"]
        language = opening["info"].strip().split(" ")[0].lower() if opening["info"] else ""
        start = index + 1
        end = start
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if closing is not None and closing["ticks"].startswith(ticks) and not closing["info"]:
                break
            end += 1
        else:
            msg = f"{_relative(path)}:{index + 1}: the code fence is never closed"
            raise MarkerError(msg)
        where = f"{_relative(path)}:{start + 1}"
        skip_reason, continues = _marker(previous, where)
        blocks.append(
            CodeBlock(
                path=path,
                line=start + 1,
                language=language,
                code="\n".join(lines[start:end]) + "\n",
                skip_reason=skip_reason,
                continues=continues,
            )
        )
        previous = ""
        index = end + 1
    return blocks


def links(path: Path, text: str | None = None) -> list[Link]:
    """Every link target of ``path`` written outside code blocks and inline code."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Link] = []
    fence: str | None = None
    for number, line in enumerate(lines, start=1):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening is not None and opening["ticks"].startswith(fence) and not opening["info"]:
                fence = None
            continue
        if opening is not None:
            fence = opening["ticks"]
            continue
        prose = _INLINE_CODE.sub("", line)
        definition = _REFERENCE_DEF.match(prose)
        if definition is not None:
            found.append(Link(path, number, definition["target"]))
            continue
        found.extend(Link(path, number, m["target"]) for m in _INLINE_LINK.finditer(prose))
    return found
