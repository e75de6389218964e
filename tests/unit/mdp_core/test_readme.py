"""The package README's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[3] / "packages" / "mdp-core" / "README.md"


def test_the_readme_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "the README has a python example"
    exec(compile(blocks[0], str(README), "exec"), {})  # noqa: S102 - our own documentation
