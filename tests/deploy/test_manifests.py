"""Static checks of everything under deploy/: no container engine or cluster runs here.

Every manifest renders and parses; every image, port, probe path and environment variable it
references exists in the code; the exposure rules hold; secrets are never baked in.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdp_core.settings import CommonSettings, describe
from mdp_kustomize import Doc, render

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())
SERVICE_DIRS = sorted(p for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())
DEPLOYED = {p.name for p in SERVICE_DIRS} - {"platform"}
SINGLETONS = {"listener", "news-listener"}
EXPOSED = {"widget-service": "clients", "control-plane": "external"}
VENDOR_VARIABLES = {"MASSIVE_API_KEY", "POLYGON_API_KEY", "FINLIGHT_API_KEY", "NO_PROXY"}
INFRA_VARIABLES = {"REDISCLI_AUTH", "RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS",
                   "REDIS_PASSWORD", "REDIS_ADDR", "POSTGRES_USER", "POSTGRES_PASSWORD",
                   "POSTGRES_DB", "PGDATA"}  # fmt: skip
# The cluster overlay's pod and node names (rabbitmq-cluster.yaml, redis-cluster-statefulsets.yaml).
INFRA_VARIABLES |= {"RABBITMQ_USE_LONGNAME", "RABBITMQ_NODENAME", "MY_POD_NAME", "POD_NAME"}


def _project(folder: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    return project


def _service_images() -> dict[str, str]:
    """Image name (the service's distribution name) -> services/ folder."""
    return {_project(folder)["name"]: folder.name for folder in SERVICE_DIRS}


def _settings_variables() -> set[str]:
    """Every variable a settings class of the platform declares."""
    names = {doc.env for doc in describe(CommonSettings)}
    # Libraries declare settings too (mdp_queues.settings: MDP_MDQ_*, read by every listener
    # and processor), so their variables count as read.
    libraries = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
    for folder in [*SERVICE_DIRS, *libraries]:
        for module_file in (folder / "src").glob("*/settings.py"):
            module = importlib.import_module(f"{module_file.parent.name}.settings")
            for value in vars(module).values():
                if isinstance(value, type) and hasattr(value, "__dataclass_fields__"):
                    names |= {doc.env for doc in describe(value)}
    return names


def _containers(doc: Doc) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    return containers


def _env_names(container: dict[str, Any]) -> Iterator[str]:
    for entry in container.get("env", []):
        yield entry["name"]


@pytest.fixture(scope="module", params=OVERLAYS, ids=[p.name for p in OVERLAYS])
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    path: Path = request.param
    return render(path)


def _by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_overlay_renders_to_named_namespaced_resources(rendered: list[Doc]) -> None:
    assert rendered
    for doc in rendered:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys()
        assert doc["metadata"]["name"]
        assert doc["metadata"]["namespace"].startswith("mdp")
    names = [(d["kind"], d["metadata"]["name"]) for d in rendered]
    assert len(names) == len(set(names)), "duplicate resources"


def test_one_deployment_per_service_with_an_image_built_from_its_folder(
    rendered: list[Doc],
) -> None:
    deployments = _by_kind(rendered, "Deployment")
    assert set(deployments) == DEPLOYED
    images = _service_images()
    for name, doc in deployments.items():
        (container,) = _containers(doc)
        image = container["image"].rsplit("/", 1)[-1].split(":")[0]
        assert images.get(image) == name, f"{name} runs image {image!r}, built from another folder"


def test_probes_point_at_health_paths_on_declared_ports(rendered: list[Doc]) -> None:
    for name, doc in _by_kind(rendered, "Deployment").items():
        (container,) = _containers(doc)
        ports = {p["name"] for p in container["ports"]}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        assert {"requests", "limits"} <= container["resources"].keys(), name
        assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 20, name


def test_pods_run_unprivileged(rendered: list[Doc]) -> None:
    for doc in [
        *_by_kind(rendered, "Deployment").values(),
        *_by_kind(rendered, "StatefulSet").values(),
    ]:
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_the_listeners_are_singletons_recreated_never_surged(rendered: list[Doc]) -> None:
    deployments = _by_kind(rendered, "Deployment")
    for name in SINGLETONS:
        assert deployments[name]["spec"]["replicas"] == 1
        assert deployments[name]["spec"]["strategy"] == {"type": "Recreate"}


def test_the_processors_scale_with_an_autoscaler(rendered: list[Doc]) -> None:
    autoscalers = _by_kind(rendered, "HorizontalPodAutoscaler")
    target = autoscalers["processor"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "processor")
    assert "replicas" not in _by_kind(rendered, "Deployment")["processor"]["spec"]
    spec = autoscalers["processor"]["spec"]
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]


def test_rabbitmq_two_separate_redis_and_the_scp_database_run_as_statefulsets(
    rendered: list[Doc],
) -> None:
    statefulsets = _by_kind(rendered, "StatefulSet")
    assert set(statefulsets) == {"rabbitmq", "redis-mdc", "redis-wdc", "scp-postgres"}
    configs = _by_kind(rendered, "ConfigMap")
    for redis in ("redis-mdc", "redis-wdc"):
        conf = configs[f"{redis}-config"]["data"]["redis.conf"]
        assert "maxmemory-policy volatile-lru" in conf
        assert "client-output-buffer-limit pubsub" in conf


def test_secrets_come_from_kubernetes_secrets_and_are_never_baked_in(rendered: list[Doc]) -> None:
    assert not _by_kind(rendered, "Secret"), "no Secret objects in the manifests"
    playbook = (DEPLOY / "ansible" / "playbook.yml").read_text()
    created = set(re.findall(r"^ {12}([a-z0-9-]+): \"\{\{ vault_", playbook, flags=re.MULTILINE))
    for doc in [
        *_by_kind(rendered, "Deployment").values(),
        *_by_kind(rendered, "StatefulSet").values(),
    ]:
        for container in _containers(doc):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "mdp-secrets"
                    assert ref["key"] in created, f"{ref['key']} is not created by the playbook"
                else:
                    assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD)$", entry["name"]), entry


def test_every_variable_the_manifests_set_is_read_by_the_code(rendered: list[Doc]) -> None:
    known = _settings_variables() | VENDOR_VARIABLES | INFRA_VARIABLES
    config = _by_kind(rendered, "ConfigMap")["mdp-config"]["data"]
    used = {n for n in config if not n.startswith("OTEL_")}
    for doc in [
        *_by_kind(rendered, "Deployment").values(),
        *_by_kind(rendered, "StatefulSet").values(),
    ]:
        for container in _containers(doc):
            used |= set(_env_names(container))
    assert used - known == set()


def _policies(rendered: list[Doc]) -> list[Doc]:
    return list(_by_kind(rendered, "NetworkPolicy").values())


def _selected(policy: Doc, app: str) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector:
        return True
    if "matchLabels" in selector:
        return bool(selector["matchLabels"].get("app.kubernetes.io/name") == app)
    return any(app in e["values"] for e in selector["matchExpressions"])


def test_network_policies_deny_by_default_and_expose_only_the_wds_and_scp(
    rendered: list[Doc],
) -> None:
    policies = _policies(rendered)
    default = [p for p in policies if not p["spec"]["podSelector"]]
    assert any(
        p["metadata"]["name"] == "default-deny" and "ingress" not in p["spec"] for p in default
    )
    apps = DEPLOYED | {"rabbitmq", "redis-mdc", "redis-wdc", "scp-postgres"}
    for app in apps:
        open_to_all = [
            rule
            for p in policies
            if _selected(p, app)
            for rule in p["spec"].get("ingress", [])
            if "from" not in rule
        ]
        assert not open_to_all, f"{app}: no ingress from anywhere (X-Forwarded-For is forgeable)"
        from_ingress = [
            rule
            for p in policies
            if _selected(p, app)
            for rule in p["spec"].get("ingress", [])
            if any(_is_ingress_controller(source) for source in rule.get("from", []))
        ]
        assert bool(from_ingress) == (app in EXPOSED), app
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for source in rule.get("from", []):
                assert "ipBlock" not in source, "no address ranges: pods and namespaces only"


def _is_ingress_controller(source: dict[str, Any]) -> bool:
    """The controller's pods in its namespace (both selectors in one element: an AND)."""
    namespace: dict[str, str] = source.get("namespaceSelector", {}).get("matchLabels", {})
    pods: dict[str, str] = source.get("podSelector", {}).get("matchLabels", {})
    return (
        namespace.get("kubernetes.io/metadata.name") == "ingress-nginx"
        and pods.get("app.kubernetes.io/name") == "ingress-nginx"
    )


PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def test_only_the_vendor_facing_components_reach_the_internet(rendered: list[Doc]) -> None:
    internet = {"listener", "news-listener", "processor", "news-processor", "control-plane"}
    for app in DEPLOYED | {"rabbitmq", "redis-mdc", "redis-wdc", "scp-postgres"}:
        rules = [
            rule
            for p in _policies(rendered)
            if _selected(p, app) and p["metadata"]["name"] != "allow-dns"
            for rule in p["spec"].get("egress", [])
        ]
        assert all("to" in rule for rule in rules), f"{app}: egress to anywhere"
        egress_443 = [
            rule
            for rule in rules
            if any("ipBlock" in peer for peer in rule["to"])
            and [port["port"] for port in rule["ports"]] == [443]
        ]
        assert bool(egress_443) == (app in internet), app
        for rule in egress_443:
            for peer in rule["to"]:
                # the internet, not the cluster, the LAN or the cloud metadata endpoint
                assert set(peer["ipBlock"]["except"]) >= PRIVATE, app


def test_the_ingress_routes_only_to_the_scp_and_the_wds(rendered: list[Doc]) -> None:
    (ingress,) = _by_kind(rendered, "Ingress").values()
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == set(EXPOSED)


def test_every_service_has_a_dockerfile_target_and_one_console_script() -> None:
    dockerfile = (DEPLOY / "docker" / "service.Dockerfile").read_text()
    assert "ARG SERVICE" in dockerfile
    # Layer 1 from the service's locked third-party packages only, layer 2 from its closure.
    assert "uv export --package" in dockerfile
    assert "--no-emit-workspace" in dockerfile
    assert "--require-hashes" in dockerfile
    assert 'python3 tools/mdp_images.py stage "$SERVICE"' in dockerfile
    assert "COPY --from=inputs /inputs/requirements.txt" in dockerfile
    assert "COPY --from=inputs /inputs/src" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["/app/.venv/bin/service"]' in dockerfile
    for folder in SERVICE_DIRS:
        scripts = _project(folder).get("scripts", {})
        assert len(scripts) == 1, folder.name
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored


def test_the_compose_stack_builds_real_folders_and_publishes_on_loopback_only() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    folders = {p.name for p in SERVICE_DIRS}
    known = _settings_variables() | VENDOR_VARIABLES | INFRA_VARIABLES
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["args"]["SERVICE"] in folders, name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for variable in service.get("environment", {}):
            assert variable in known, f"{name} sets {variable}, which nothing reads"
    assert {"rabbitmq", "redis-mdc", "redis-wdc", "scp-postgres"} <= compose["services"].keys()


def test_the_playbook_builds_every_deployed_service() -> None:
    plays: list[dict[str, Any]] = yaml.safe_load((DEPLOY / "ansible" / "playbook.yml").read_text())
    (play,) = plays
    folders = {s["folder"] for s in play["vars"]["services"]}
    assert folders == DEPLOYED
    images = _service_images()
    for service in play["vars"]["services"]:
        assert images[service["image"]] == service["folder"]


def _playbook() -> dict[str, Any]:
    plays: list[dict[str, Any]] = yaml.safe_load((DEPLOY / "ansible" / "playbook.yml").read_text())
    (play,) = plays
    return play


def _secret_names_created_by_the_playbook() -> set[str]:
    names = set()
    for task in _playbook()["tasks"]:
        definition = task.get("kubernetes.core.k8s", {}).get("definition", {})
        if isinstance(definition, dict) and definition.get("kind") == "Secret":
            name = definition["metadata"]["name"]
            if "{{" in name:
                names |= {item["name"] for item in task["loop"]}
            else:
                names.add(name)
    return names


def _pod_specs(rendered: list[Doc]) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in rendered
        if doc["kind"] in {"Deployment", "StatefulSet"}
    }


def _all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


CONTENT_TAG = re.compile(r"(:[0-9]+\.[0-9]+\.[0-9]+-[0-9a-f]{12}|@sha256:[0-9a-f]{64})$")


def test_no_mutable_tag_is_pulled_only_if_not_present(rendered: list[Doc]) -> None:
    for name, pod in _pod_specs(rendered).items():
        for container in _all_containers(pod):
            policy = container.get("imagePullPolicy")
            assert policy is not None, f"{name}/{container['name']}: the default depends on tag"
            if not CONTENT_TAG.search(container["image"]):
                assert policy == "Always", f"{name}/{container['name']}: {container['image']}"


def test_each_service_image_carries_its_own_version_as_tag(rendered: list[Doc]) -> None:
    versions = {
        _project(folder)["name"]: _project(folder)["version"]
        for folder in SERVICE_DIRS
        if folder.name in DEPLOYED
    }
    for name, doc in _by_kind(rendered, "Deployment").items():
        (container,) = _containers(doc)
        image, _, tag = container["image"].rpartition(":")
        assert tag == versions[image.rsplit("/", 1)[-1]], name


def _multi_replica(rendered: list[Doc]) -> set[str]:
    deployments = _by_kind(rendered, "Deployment")
    many = {name for name, doc in deployments.items() if doc["spec"].get("replicas", 1) > 1}
    for hpa in _by_kind(rendered, "HorizontalPodAutoscaler").values():
        if hpa["spec"]["maxReplicas"] > 1:
            many.add(hpa["spec"]["scaleTargetRef"]["name"])
    return many


def test_multi_replica_components_have_a_disruption_budget_and_spread(
    rendered: list[Doc],
) -> None:
    many = _multi_replica(rendered)
    assert {"processor", "control-plane"} <= many
    budgets = _by_kind(rendered, "PodDisruptionBudget").values()
    deployments = _by_kind(rendered, "Deployment")
    for name in many:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, f"{name}: {len(covering)} disruption budgets"
        (budget,) = covering
        assert budget["spec"].get("maxUnavailable") == 1, name
        spread = deployments[name]["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in spread}
        assert "kubernetes.io/hostname" in keys, name
        for constraint in spread:
            assert constraint["labelSelector"]["matchLabels"].items() <= labels.items(), name


def test_every_secret_the_pods_mount_is_created_by_the_playbook(rendered: list[Doc]) -> None:
    created = _secret_names_created_by_the_playbook()
    assert {"mdp-secrets", "mdp-tls", "redis-mdc-auth", "redis-wdc-auth"} <= created
    for name, pod in _pod_specs(rendered).items():
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in created, (name, volume["name"])
    (ingress,) = _by_kind(rendered, "Ingress").values()
    for tls in ingress["spec"]["tls"]:
        assert tls["secretName"] in created


def test_redis_reads_its_password_from_a_mounted_file(rendered: list[Doc]) -> None:
    pods = _pod_specs(rendered)
    configs = _by_kind(rendered, "ConfigMap")
    for redis in ("redis-mdc", "redis-wdc"):
        (container,) = [c for c in pods[redis]["containers"] if c["name"] == redis]
        assert not any("pass" in part.lower() for part in container["command"]), container
        assert "args" not in container
        conf = configs[f"{redis}-config"]["data"]["redis.conf"]
        included = re.search(r"^include (\S+)$", conf, flags=re.MULTILINE)
        assert included, f"{redis}: redis.conf includes no password file"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pods[redis]["volumes"]}
        # The deepest mount holding the included file is the one it is read from.
        auth = max(
            (n for n, path in mounts.items() if included[1].startswith(path + "/")),
            key=lambda n: len(mounts[n]),
        )
        assert volumes[auth]["secret"]["secretName"] == f"{redis}-auth"
        for probe in ("readinessProbe", "livenessProbe"):
            command = " ".join(container[probe]["exec"]["command"])
            assert " -a " not in command, f"{redis} {probe}: the password on a command line"


def test_the_erlang_cookie_is_a_file_never_a_variable(rendered: list[Doc]) -> None:
    pod = _pod_specs(rendered)["rabbitmq"]
    for container in _all_containers(pod):
        assert "RABBITMQ_ERLANG_COOKIE" not in set(_env_names(container))
    (cookie,) = [v for v in pod["volumes"] if v["name"] == "erlang-cookie"]
    assert cookie["secret"]["items"] == [
        {"key": "rabbitmq-erlang-cookie", "path": ".erlang.cookie"}
    ]
    (init,) = pod["initContainers"]
    assert "/var/lib/rabbitmq/.erlang.cookie" in init["command"][-1]
    assert "install -m 0400" in init["command"][-1]


def test_the_playbook_tags_each_image_from_its_inputs_and_builds_only_new_tags() -> None:
    play = _playbook()
    assert "namespace" not in play["vars"], "a reserved name (ansible-lint var-naming)"
    assert "image_tag" not in play["vars"], "one tag shared by every image"
    tasks = {task["name"]: task for task in play["tasks"]}
    report = next(t for t in tasks.values() if "images" in str(t.get("ansible.builtin.command")))
    assert "'dev.py', 'images', '--json'" in report["ansible.builtin.command"]["argv"]
    build = next(
        t for t in tasks.values() if "build" in t.get("ansible.builtin.command", {}).get("argv", [])
    )
    assert build["when"] == "item.rc != 0"
    assert "{{ item.item.tag }}" in " ".join(build["ansible.builtin.command"]["argv"])
    for task in play["tasks"]:
        assert task.get("changed_when") is not True or task is build, task["name"]
