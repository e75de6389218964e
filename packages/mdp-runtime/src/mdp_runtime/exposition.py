"""Prometheus text exposition of a metrics snapshot.

Services keep their figures as a plain nested mapping (the same one ``/status`` returns as
JSON), so the scrape format is derived from it instead of being maintained twice. The rules:

- Nested keys join with ``_`` under the prefix: ``{"events": {"decoded": 5}}`` with prefix
  ``mdp_processor`` gives ``mdp_processor_events_decoded 5``.
- A key of the form ``label=value`` adds a label instead of a name part:
  ``{"queue=md.trades": {"depth": 3}}`` gives ``..._depth{queue="md.trades"} 3``. Nest such keys
  for several labels.
- Leaves that are ``int``, ``float`` or ``bool`` (as 1/0) become samples; anything else
  (strings, lists, None) is status detail, not a metric, and is left out.

Names and label names are sanitized to the characters Prometheus accepts, label values are
escaped, and each family is written once with a ``# TYPE`` line, as the format requires.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping

__all__ = ["CONTENT_TYPE", "metric_prefix", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of the Prometheus text format, version 0.0.4."""

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")

Labels = tuple[tuple[str, str], ...]


def _name_part(text: str) -> str:
    return _INVALID_NAME_CHARS.sub("_", text)


def _label_name(text: str) -> str:
    name = _name_part(text) or "_"
    if name[0].isdigit():
        name = "_" + name
    # Names starting with "__" are reserved for Prometheus itself.
    return "l" + name if name.startswith("__") else name


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def metric_prefix(service: str) -> str:
    """Return ``mdp_<service>`` with the service name sanitized.

    A leading ``mdp-``/``mdp_`` in the service name is dropped, so ``mdp-listener`` and
    ``listener`` both give ``mdp_listener`` rather than ``mdp_mdp_listener``.
    """
    bare = re.sub(r"^mdp[-_]", "", service)
    return "mdp_" + _name_part(bare).strip("_") if bare else "mdp"


def _samples(
    node: Mapping[str, object], name: str, labels: Labels
) -> Iterator[tuple[str, Labels, str]]:
    for key, value in node.items():
        key_text = str(key)
        if "=" in key_text:
            label, _, label_value = key_text.partition("=")
            child_name, child_labels = name, (*labels, (_label_name(label), label_value))
        else:
            child_name, child_labels = f"{name}_{_name_part(key_text)}", labels
        if isinstance(value, Mapping):
            yield from _samples(value, child_name, child_labels)
        elif isinstance(value, bool | int | float):
            yield child_name, child_labels, _format_value(value)


def render(prefix: str, snapshot: Mapping[str, object]) -> str:
    """Render ``snapshot`` as Prometheus text exposition with every name under ``prefix``.

    Args:
        prefix: the metric name prefix, e.g. ``metric_prefix("listener")``.
        snapshot: nested mapping of figures, as described in the module docstring.

    Returns:
        The exposition text, families sorted by name; the first sample wins when two paths
        flatten to the same name and labels.
    """
    families: dict[str, dict[Labels, str]] = {}
    for name, labels, value in _samples(snapshot, _name_part(prefix), ()):
        families.setdefault(name, {}).setdefault(tuple(sorted(dict(labels).items())), value)
    lines: list[str] = []
    for name in sorted(families):
        lines.append(f"# TYPE {name} untyped")
        for labels, value in families[name].items():
            if labels:
                rendered = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value}")
            else:
                lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n" if lines else ""
