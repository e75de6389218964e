"""Every ``python`` code block in the documentation runs as written.

Files: ``docs/**/*.md``, ``README.md`` and every package's and service's ``README.md``. Each
file's blocks run in order in one child process (see ``runner.py``); each block in a fresh
namespace unless marked ``<!-- continues -->``. A block marked ``<!-- not-executed: reason -->``
is skipped, and the reason is mandatory. The rules are documented in ``docs/dev/testing.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .markdown import ROOT, CodeBlock, MarkerError, code_blocks, documentation_files

RUNNER = Path(__file__).with_name("runner.py")
TIMEOUT_SECONDS = 90
LOOPBACK = "127.0.0.1,localhost,::1"


def _python_blocks(path: Path) -> list[CodeBlock]:
    return [block for block in code_blocks(path) if block.language == "python"]


def _files_with_examples() -> list[Path]:
    files = []
    for path in documentation_files():
        try:
            blocks = _python_blocks(path)
        except MarkerError:
            files.append(path)  # reported by test_every_block_marker_is_well_formed
            continue
        if any(block.skip_reason is None for block in blocks):
            files.append(path)
    return files


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def run_examples(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the executable python blocks of ``path`` in a child process started in ``cwd``."""
    blocks = [b for b in _python_blocks(path) if b.skip_reason is None]
    spec = [
        {
            "where": b.where,
            "path": str(b.path),
            "line": b.line,
            "code": b.code,
            "continues": b.continues,
        }
        for b in blocks
    ]
    return subprocess.run(  # noqa: S603 - our interpreter and our runner
        [sys.executable, str(RUNNER)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_child_env(),
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("path", _files_with_examples(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_examples_run(path: Path, tmp_path: Path) -> None:
    result = run_examples(path, tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_every_block_marker_is_well_formed() -> None:
    problems = []
    for path in documentation_files():
        try:
            code_blocks(path)
        except MarkerError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_the_documentation_has_examples_to_run() -> None:
    # Guards the collection itself: a broken file glob or fence parser would pass silently.
    names = {str(p.relative_to(ROOT)) for p in _files_with_examples()}
    assert "packages/mdp-core/README.md" in names
    assert "docs/dev/contributing.md" in names


# --- the rules themselves -------------------------------------------------------------------

_SAMPLE = """\
Intro.

```python
x = 1
```

<!-- continues -->
```python
assert x == 1
```

<!-- not-executed: needs a cluster -->

```python
raise SystemExit(3)
```

````markdown
```python
not a block of its own
```
````

```
plain = "no language"
```
"""


def test_blocks_carry_language_line_and_markers() -> None:
    blocks = code_blocks(Path("sample.md"), _SAMPLE)
    assert [(b.language, b.line, b.continues, b.skip_reason) for b in blocks] == [
        ("python", 4, False, None),
        ("python", 9, True, None),
        ("python", 15, False, "needs a cluster"),
        ("markdown", 19, False, None),
        ("", 25, False, None),
    ]
    assert blocks[3].code == "```python\nnot a block of its own\n```\n"


@pytest.mark.parametrize(
    "marker",
    ["<!-- not-executed -->", "<!-- not-executed:   -->", "<!-- continues: yes -->",
     "<!-- not executed: typo -->"],
)  # fmt: skip
def test_a_malformed_marker_is_an_error(marker: str) -> None:
    with pytest.raises(MarkerError):
        code_blocks(Path("bad.md"), f"{marker}\n```python\npass\n```\n")


def test_an_unclosed_fence_is_an_error() -> None:
    with pytest.raises(MarkerError, match="never closed"):
        code_blocks(Path("bad.md"), "```python\npass\n")


def test_a_failing_example_fails_with_its_markdown_line(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```python\nvalue = 1\n```\n\n<!-- continues -->\n```python\n\nassert value == 2\n```\n"
    )
    result = run_examples(doc, tmp_path)
    assert result.returncode == 1
    assert f"{doc}:7" in result.stderr
    assert f'File "{doc}", line 8' in result.stderr


def test_blocks_without_the_marker_do_not_share_a_namespace(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```python\nvalue = 1\n```\n\n```python\nassert 'value' not in dir()\n```\n")
    result = run_examples(doc, tmp_path)
    assert result.returncode == 0, result.stderr


def test_examples_may_not_leave_the_machine(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```python\nimport socket\nsocket.create_connection(('192.0.2.1', 80), timeout=1)\n```\n"
    )
    result = run_examples(doc, tmp_path)
    assert result.returncode == 1
    assert "only connect to loopback" in result.stderr
