"""A small kustomize renderer for static checks (no kubectl on the test machines).

It supports what our overlays use: ``resources`` (files and directories), ``namespace``,
``labels`` (metadata only), ``images`` (``newName``/``newTag``), ``replicas`` and ``patches``
given as strategic-merge files (maps merge, lists of named items merge by ``name``).
Anything else in a kustomization is an error, so an overlay cannot silently use a feature
this renderer would ignore.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]
_SUPPORTED = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "images",
    "replicas",
    "patches",
}


def load_docs(path: Path) -> list[Doc]:
    """Every YAML document of a file, skipping empty ones."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        named = all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
        if named:
            result = [copy.deepcopy(i) for i in base]
            for item in patch:
                for index, existing in enumerate(result):
                    if existing["name"] == item["name"]:
                        result[index] = _merge(existing, item)
                        break
                else:
                    result.append(copy.deepcopy(item))
            return result
    return copy.deepcopy(patch)


def _images(docs: list[Doc], images: list[dict[str, str]]) -> None:
    mapping = {image["name"]: image for image in images}
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            name, _, tag = container["image"].partition(":")
            if name in mapping:
                new = mapping[name]
                container["image"] = (
                    f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
                )


def _patch(docs: list[Doc], directory: Path, entries: list[dict[str, str]]) -> None:
    for entry in entries:
        for patch in load_docs(directory / entry["path"]):
            matches = [
                i for i, d in enumerate(docs)
                if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]
            ]  # fmt: skip
            if len(matches) != 1:
                raise ValueError(f"patch {entry['path']} matches {len(matches)} resources")
            docs[matches[0]] = _merge(docs[matches[0]], patch)


def _replicas(docs: list[Doc], replicas: list[dict[str, Any]]) -> None:
    for replica in replicas:
        found = [
            d
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["name"] == replica["name"]
        ]
        if len(found) != 1:
            raise ValueError(f"replicas: no Deployment {replica['name']!r}")
        found[0]["spec"]["replicas"] = replica["count"]


def render(directory: Path) -> list[Doc]:
    """Render the kustomization in ``directory`` into a list of resources."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: unsupported kustomize fields {sorted(unknown)}")
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        target = (directory / resource).resolve()
        docs.extend(render(target) if target.is_dir() else load_docs(target))
    _patch(docs, directory, kustomization.get("patches", []))
    _replicas(docs, kustomization.get("replicas", []))
    _images(docs, kustomization.get("images", []))
    for label in kustomization.get("labels", []):
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs
