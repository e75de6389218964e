"""The analyzers wheel is pure: importing it loads no Redis or AMQP client.

A notebook user who replays a session must not pay for (nor depend on) a Redis client, and an
analyzer that reached for one would no longer be pure logic. Each check runs in a fresh
interpreter, since this test process has imported the whole workspace already.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import mdp_analyzers

FORBIDDEN = ("redis", "aio_pika", "aiormq", "hiredis")


def loaded_after(statement: str) -> list[str]:
    """The forbidden top-level packages in ``sys.modules`` after ``statement`` runs afresh."""
    probe = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN)!r})))"
    )
    completed = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(completed.stdout.strip().splitlines()[-1]))


def every_module() -> list[str]:
    """Every module of the package (the entry points name some of them)."""
    return sorted(
        info.name for info in pkgutil.walk_packages(mdp_analyzers.__path__, "mdp_analyzers.")
    )


def test_importing_the_package_and_the_notebook_loads_no_client() -> None:
    assert loaded_after("import mdp_analyzers, mdp_analyzers.notebook") == []


def test_no_module_of_the_wheel_loads_a_client() -> None:
    modules = every_module()
    assert "mdp_analyzers.replay" in modules  # the walk found the modules
    imports = "\n".join(f"import {name}" for name in modules)
    assert loaded_after(imports) == []


def test_the_registered_analyzers_load_no_client() -> None:
    modules = sorted(
        {
            entry.value.split(":")[0]
            for entry in entry_points(group="mdp.analyzers")
            if entry.value.startswith("mdp_analyzers.")
        }
    )
    if not modules:
        pytest.fail("no mdp.analyzers entry points: is mdp-analyzers installed?")
    assert (
        loaded_after(f"import importlib\nfor name in {modules!r}: importlib.import_module(name)")
        == []
    )


def test_the_probe_does_see_a_client_when_one_is_imported() -> None:
    assert "redis" in loaded_after("import mdp_cache.widgets")
