"""The generated references in ``docs/reference/`` match what the code generates now.

``docs/reference/{cache-keys,queues,configuration}.md`` are written by
:func:`mdp_platform.reference.write_all` from the key catalogue, the queue topology and the
settings classes. When the code changes, regenerate them (``uv run mdp docs``) and commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mdp_platform import reference

from .markdown import ROOT

REFERENCE_DIR = ROOT / "docs" / "reference"
REGENERATE = (
    "regenerate the references with `uv run mdp docs` (which calls "
    "mdp_platform.reference.write_all(Path('docs/reference'))) and commit the result"
)


@pytest.mark.parametrize("name", sorted(reference.render_all()))
def test_the_committed_reference_matches_the_code(name: str) -> None:
    generated = reference.render_all()[name]()
    committed = REFERENCE_DIR / name
    assert committed.exists(), f"docs/reference/{name} is missing: {REGENERATE}"
    assert committed.read_text(encoding="utf-8") == generated, (
        f"docs/reference/{name} is out of date with the code: {REGENERATE}"
    )


#: The settings machinery itself; the generator documents its CommonSettings first.
MACHINERY = "mdp_core.settings"


def _settings_modules() -> set[str]:
    """Every ``settings`` module of a service, and of a package other than the machinery."""
    paths = [*ROOT.glob("services/*/src/*/settings.py"), *ROOT.glob("packages/*/src/*/settings.py")]
    return {f"{path.parent.name}.settings" for path in paths} - {MACHINERY}


def test_every_service_settings_module_is_in_the_configuration_reference() -> None:
    service_modules = {
        f"{p.parent.name}.settings" for p in ROOT.glob("services/*/src/*/settings.py")
    }
    missing = service_modules - set(reference.SETTINGS_MODULES)
    assert not missing, (
        f"{sorted(missing)} define settings but are not listed in "
        "mdp_platform.reference.SETTINGS_MODULES, so docs/reference/configuration.md omits "
        "their variables: add them there"
    )


def test_every_package_settings_module_is_in_the_configuration_reference() -> None:
    # Packages define settings too (mdp_queues.settings: the MDP_MDQ_* variables every
    # listener and processor reads); they belong in the reference like the services' own.
    missing = _settings_modules() - set(reference.SETTINGS_MODULES)
    assert not missing, (
        f"{sorted(missing)} define settings but are not listed in "
        "mdp_platform.reference.SETTINGS_MODULES, so docs/reference/configuration.md omits "
        "their variables: add them there"
    )


def test_every_listed_settings_module_exists() -> None:
    absent = set(reference.SETTINGS_MODULES) - _settings_modules()
    assert not absent, (
        f"mdp_platform.reference.SETTINGS_MODULES lists {sorted(absent)}, which have no "
        "settings.py under services/*/src/ or packages/*/src/; the configuration reference "
        "cannot be generated"
    )


def test_the_generator_writes_every_reference(tmp_path: Path) -> None:
    written = reference.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(reference.render_all())
    for path in written:
        assert path.read_text(encoding="utf-8").startswith("# ")
