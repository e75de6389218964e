"""The ecosystem checks CI runs (``python3 dev.py deploy-check``) catch what they claim to.

Each check passes on the real tree and fails on a planted copy of a problem the project had.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

import mdp_checks
from mdp_kustomize import render

ROOT = Path(__file__).parents[2]


def test_hadolint_passes_the_recipe_and_catches_an_unquoted_variable(tmp_path: Path) -> None:
    assert mdp_checks.hadolint()
    planted = tmp_path / "Dockerfile"
    planted.write_text(
        "FROM python:3.11-slim-bookworm\nARG EXTRAS\n"
        "RUN pip install --no-cache-dir mdp $EXTRAS | tee /log\n",
        encoding="utf-8",
    )
    assert not mdp_checks.hadolint(planted)  # SC2086 and DL4006


def test_both_overlays_are_valid_and_an_unknown_field_is_refused() -> None:
    assert mdp_checks.manifests()
    docs = render(ROOT / "deploy/k8s/overlays/prod")
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    budget = copy.deepcopy(next(d for d in docs if d["kind"] == "PodDisruptionBudget"))
    budget["spec"]["maxUnavailable"] = [1]
    problems = mdp_checks.validate([deployment, budget])
    assert len(problems) == 2, problems
    assert "imagePulPolicy" in problems[0]


def test_deptry_catches_an_undeclared_import(tmp_path: Path) -> None:
    folder = tmp_path / "mdp-planted"
    shutil.copytree(ROOT / "packages/mdp-sim", folder)
    module = folder / "src/mdp_sim/planted.py"
    module.write_text('"""Planted."""\n\nimport structlog\n\n__all__ = ["structlog"]\n')
    assert mdp_checks.deps([ROOT / "packages/mdp-sim"])
    assert not mdp_checks.deps([folder])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ansible_lint_passes_the_playbook_and_catches_a_reserved_variable(
    tmp_path: Path,
) -> None:
    assert mdp_checks.ansible()
    planted = tmp_path / "playbook.yml"
    text = (ROOT / "deploy/ansible/playbook.yml").read_text(encoding="utf-8")
    planted.write_text(text.replace("mdp_namespace", "namespace"), encoding="utf-8")
    assert not mdp_checks.ansible(planted)
