"""deploy/observability: alert rules checked and unit-tested by promtool, names that exist.

``promtool`` is Debian's (``apt-get install prometheus``; ``.ci/run`` installs it): without it
the promtool tests skip, except under ``CI=true`` where they fail. The other checks are static:
every metric the rules and the dashboard query is one the services document (or one of the
exporters'), every alert has its section in the operations guide, the scrape jobs find ports the
manifests declare, and the NetworkPolicies let the scrapes and the traces through.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdp_kustomize import Doc, render
from mdp_platform.reference import METRIC_CATALOGUES

ROOT = Path(__file__).parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "prometheus-rules.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
#: Series of the exporters (redis_exporter, rabbitmq_prometheus) and Prometheus itself.
EXTERNAL = {
    "up",
    "redis_up",
    "redis_memory_used_bytes",
    "redis_connected_clients",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_global_messages_dead_lettered_expired_total",
}
_SERIES = re.compile(r"\b((?:mdp|redis|rabbitmq)_[a-z0-9_]+|up)\b")
COMPONENTS = {"listener", "news-listener", "processor", "news-processor", "scanner",
              "widget-service", "control-plane"}  # fmt: skip


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"{reason}; CI=true: the rule checks must run", pytrace=False)
        pytest.skip(reason)
    return found


def _documented_series() -> set[str]:
    names: set[str] = set()
    for _, prefix, module_name, _ in METRIC_CATALOGUES:
        for family in importlib.import_module(module_name).FAMILIES:
            base = f"{prefix}_{family.name}"
            if family.kind == "counter":
                names.add(f"{base}_total")
            elif family.kind == "histogram":
                names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
            else:
                names.add(base)
    return names


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(  # noqa: S603 - promtool on our own file
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    result = subprocess.run(  # noqa: S603 - promtool on our own files
        [_promtool(), "test", "rules", "prometheus-rules.test.yaml"],
        cwd=OBSERVABILITY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(
        re.findall(r"alertname: (\w+)", (OBSERVABILITY / "prometheus-rules.test.yaml").read_text())
    )
    assert tested == {rule["alert"] for rule in _rules()}, "every alert has a promtool test"


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_queried_series_is_documented_or_an_exporter_s(source: str) -> None:
    exprs = [rule["expr"] for rule in _rules()] if source == "rules" else _dashboard_exprs()
    assert exprs
    known = _documented_series() | EXTERNAL
    queried = {name for expr in exprs for name in _SERIES.findall(expr)}
    assert queried - known == set()
    assert any(name.startswith("mdp_") for name in queried)


def test_every_alert_has_a_section_in_the_operations_guide() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        anchor = rule["annotations"]["runbook"].partition("#")[2]
        assert anchor == rule["alert"].lower()
        assert anchor in headings, f"{rule['alert']}: no section {anchor!r} in operations.md"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_dashboard_shows_every_component_and_the_end_to_end_freshness() -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows[0] == "End-to-end freshness"
    text = "\n".join(_dashboard_exprs())
    for _, prefix, _, _ in METRIC_CATALOGUES:
        assert f"{prefix}_" in text, f"no panel for {prefix}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return render(ROOT / "deploy" / "k8s" / "overlays" / "prod")


def _pod_ports(docs: list[Doc]) -> dict[str, set[tuple[str, int]]]:
    ports: dict[str, set[tuple[str, int]]] = {}
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                for port in container.get("ports", []):
                    ports.setdefault(doc["metadata"]["name"], set()).add(
                        (port["name"], port["containerPort"])
                    )
    return ports


def test_scrape_jobs_find_ports_the_manifests_declare(base: list[Doc]) -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yaml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"mdp", "mdp-rabbitmq", "mdp-redis"}
    declared = {name for ports in _pod_ports(base).values() for name, _ in ports}
    for job in jobs.values():
        (keep,) = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
        for name in keep["regex"].split("|"):
            assert name in declared, (job["job_name"], name)
    ports = _pod_ports(base)
    assert ("prometheus", 15692) in ports["rabbitmq"]
    assert ("metrics", 9121) in ports["redis-mdc"]
    assert ("metrics", 9121) in ports["redis-wdc"]


def test_policies_let_the_scrapes_in_and_the_traces_out(base: list[Doc]) -> None:
    policies = [doc for doc in base if doc["kind"] == "NetworkPolicy"]

    def admits(app: str, port: int) -> bool:
        return any(
            app in str(policy["spec"]["podSelector"])
            and any(
                any(p["port"] == port for p in rule.get("ports", []))
                and any(
                    source.get("namespaceSelector", {}).get("matchLabels", {})
                    == {"kubernetes.io/metadata.name": "monitoring"}
                    for source in rule.get("from", [])
                )
                for rule in policy["spec"].get("ingress", [])
            )
            for policy in policies
        )

    assert admits("rabbitmq", 15692)
    assert admits("redis-mdc", 9121)
    assert admits("redis-wdc", 9121)
    assert not admits("redis-mdc", 6379), "the data port stays closed to monitoring"
    (otel,) = [p for p in policies if p["metadata"]["name"] == "allow-otel-collector"]
    senders = set(otel["spec"]["podSelector"]["matchExpressions"][0]["values"])
    assert senders == COMPONENTS
    (rule,) = otel["spec"]["egress"]
    assert {p["port"] for p in rule["ports"]} == {4317, 4318}
