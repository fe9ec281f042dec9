"""deploy/kubernetes/: every manifest is valid against the Kubernetes API schemas (offline,
the schemas bundled with kubernetes-validate), and the parts fit together: probes on gRPC
health, selectors matching labels, the PDB and HPA on the server Deployment, Envoy's config
rendered from gateway/envoy.yaml, Prometheus annotations naming ports that serve metrics,
and no secret value committed."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway import launcher, stats
from tests.conftest import DESCRIPTOR
from tests.test_deployment import check_generated, generated_header, render_launcher

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
ENVOY_CONFIG_MAP = MANIFESTS / "envoy-config.yaml"
SECRET_TEMPLATE = MANIFESTS / "secret.yaml.template"
NAMESPACE = "forge"
# Oldest (gRPC probes are GA from 1.27) and newest Kubernetes versions checked.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
GRPC_PORT = 50051
METRICS_PORT = 9464
ENVOY_STATS_PORT = 9902
SERVER_UPSTREAM = f"forge-grpc.{NAMESPACE}.svc.cluster.local:{GRPC_PORT}"
ENVOY_ARGS = (
    "--print-config",
    "--no-console",
    "--upstream",
    SERVER_UPSTREAM,
    "--descriptor-in-config",
    "/app/gen/forge.binpb",
    "--healthz-min-healthy-percent",
    "1",
    "--stats-port",
    str(ENVOY_STATS_PORT),
)
SECRET_KEYS = {
    "FORGE_DATABASE_URL",
    "FORGE_JWT_SECRET",
    "FORGE_PROVIDER_KEY_ENCRYPTION_KEYS",
    "FORGE_S3_ACCESS_KEY_ID",
    "FORGE_S3_SECRET_ACCESS_KEY",
}


def envoy_config_map_text() -> str:
    command = "python -m gateway.launcher " + shlex.join(ENVOY_ARGS)
    header = generated_header(command, "tests/test_kubernetes_manifests.py")
    rendered = render_launcher(ENVOY_ARGS)
    body = "".join(f"    {line}" if line.strip() else line for line in rendered.splitlines(True))
    return (
        header + "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: forge-envoy\n"
        f"  namespace: {NAMESPACE}\n"
        "  labels:\n"
        "    app.kubernetes.io/name: forge\n"
        "    app.kubernetes.io/component: gateway\n"
        "    app.kubernetes.io/part-of: forge\n"
        "data:\n"
        "  envoy.yaml: |\n" + body
    )


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _applied_files() -> list[Path]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return [MANIFESTS / name for name in kustomization["resources"]]


def _resources() -> list[dict[str, Any]]:
    return [doc for path in _applied_files() for doc in _documents(path)]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [r for r in _resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    on_disk = {p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert set(_applied_files()) == on_disk
    assert SECRET_TEMPLATE.exists()
    assert SECRET_TEMPLATE not in on_disk  # `kubectl apply -f dir` would skip it too


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_are_valid_kubernetes_objects(version: str) -> None:
    documents = [*_resources(), *_documents(SECRET_TEMPLATE)]
    errors = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")
    assert not errors, "\n".join(errors)
    kinds = {doc["kind"] for doc in documents}
    assert kinds >= {
        "Namespace",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Secret",
    }


def test_the_validator_rejects_a_broken_manifest() -> None:
    deployment = _one("Deployment", "forge-server")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_every_resource_is_in_the_forge_namespace() -> None:
    for resource in _resources():
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == NAMESPACE, resource["metadata"]["name"]


def test_server_probes_are_on_grpc_health() -> None:
    spec = _one("Deployment", "forge-server")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": GRPC_PORT}, probe
    assert {"containerPort": GRPC_PORT, "name": "grpc", "protocol": "TCP"} in container["ports"]
    resources = container["resources"]
    assert resources["requests"]["cpu"]
    assert resources["limits"]["memory"]
    # the pod gets SIGKILL only after drain and grace (FORGE_SHUTDOWN_*_SECONDS) have passed
    config = _one("ConfigMap", "forge-server")["data"]
    drain_and_grace = float(config["FORGE_SHUTDOWN_DRAIN_SECONDS"]) + float(
        config["FORGE_SHUTDOWN_GRACE_SECONDS"]
    )
    assert spec["terminationGracePeriodSeconds"] > drain_and_grace


def test_server_runs_locked_down_with_its_settings_and_secret() -> None:
    spec = _one("Deployment", "forge-server")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    sources = {
        (kind, ref["name"])
        for entry in container["envFrom"]
        for kind, ref in entry.items()
        if kind in ("configMapRef", "secretRef")
    }
    assert sources == {("configMapRef", "forge-server"), ("secretRef", "forge-secrets")}
    _one("ConfigMap", "forge-server")
    (secret,) = _documents(SECRET_TEMPLATE)
    assert secret["metadata"]["name"] == "forge-secrets"
    # Replicas share one sandbox namespace (a host's sandbox duties are leased in the
    # database): a per-pod one would leave a dead pod's sandboxes to nobody.
    config = _one("ConfigMap", "forge-server")["data"]
    assert config["FORGE_SANDBOX_NAMESPACE"] == "forge"
    assert "FORGE_SANDBOX_NAMESPACE" not in {item["name"] for item in container.get("env", [])}


def test_selectors_match_the_pods_they_mean() -> None:
    server = _one("Deployment", "forge-server")
    gateway = _one("Deployment", "forge-gateway")
    for deployment in (server, gateway):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _matches(deployment["spec"]["selector"]["matchLabels"], labels)
    server_labels = server["spec"]["template"]["metadata"]["labels"]
    gateway_labels = gateway["spec"]["template"]["metadata"]["labels"]
    grpc = _one("Service", "forge-grpc")["spec"]
    assert _matches(grpc["selector"], server_labels)
    assert not _matches(grpc["selector"], gateway_labels)
    assert grpc["clusterIP"] == "None"  # headless: Envoy sees every pod
    assert grpc["ports"][0]["port"] == GRPC_PORT
    http = _one("Service", "forge-gateway")["spec"]
    assert _matches(http["selector"], gateway_labels)
    assert not _matches(http["selector"], server_labels)
    for name, labels in (("forge-server", server_labels), ("forge-gateway", gateway_labels)):
        pdb = _one("PodDisruptionBudget", name)["spec"]
        assert _matches(pdb["selector"]["matchLabels"], labels)
        assert pdb["minAvailable"] >= 1
    policy = _one("NetworkPolicy", "forge-server")["spec"]
    assert _matches(policy["podSelector"]["matchLabels"], server_labels)
    (rule,) = [r for r in policy["ingress"] if {"port": "grpc", "protocol": "TCP"} in r["ports"]]
    (source,) = rule["from"]
    assert _matches(source["podSelector"]["matchLabels"], gateway_labels)


def _port_named(container: dict[str, Any], name: str) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    assert isinstance(port, int)
    return port


def test_prometheus_annotations_name_the_ports_serving_metrics() -> None:
    server = _one("Deployment", "forge-server")["spec"]["template"]
    gateway = _one("Deployment", "forge-gateway")["spec"]["template"]
    for template, path in ((server, "/metrics"), (gateway, stats.PATH)):
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == path
        (container,) = template["spec"]["containers"]
        assert int(annotations["prometheus.io/port"]) == _port_named(container, "metrics")
    # the server serves its metrics on that port, on every interface of the pod
    (server_container,) = server["spec"]["containers"]
    config = _one("ConfigMap", "forge-server")["data"]
    assert config["FORGE_METRICS_ADDRESS"] == f"0.0.0.0:{METRICS_PORT}"
    assert _port_named(server_container, "metrics") == METRICS_PORT
    assert config["FORGE_WORKERS"] == "1"  # one process, one port (worker i would use P+i)
    # Envoy serves its stats there, from the config the pod mounts, and the admin stays local
    (gateway_container,) = gateway["spec"]["containers"]
    envoy = yaml.safe_load(_one("ConfigMap", "forge-envoy")["data"]["envoy.yaml"])
    listeners = {item["name"]: item for item in envoy["static_resources"]["listeners"]}
    assert listeners[stats.LISTENER_NAME]["address"]["socket_address"] == {
        "address": launcher.ANY_ADDRESS,
        "port_value": _port_named(gateway_container, "metrics"),
    }
    assert envoy["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # and the Service does not publish the stats port (scraped per pod)
    service_ports = _one("Service", "forge-gateway")["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]


def test_network_policy_lets_a_scraper_reach_the_metrics_port_only() -> None:
    policy = _one("NetworkPolicy", "forge-server")["spec"]
    rules = [r for r in policy["ingress"] if {"port": "metrics", "protocol": "TCP"} in r["ports"]]
    (rule,) = rules
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"]  # from the scraper's namespace, not from everywhere
    # and the gRPC port is still the gateway's alone
    grpc_sources = [
        source
        for r in policy["ingress"]
        if any(p["port"] == "grpc" for p in r["ports"])
        for source in r["from"]
    ]
    assert all("namespaceSelector" not in source for source in grpc_sources)


def test_hpa_scales_the_server_deployment_on_cpu() -> None:
    hpa = _one("HorizontalPodAutoscaler", "forge-server")["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "forge-server",
    )
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] > hpa["minReplicas"]
    # CPU utilization needs a CPU request to be measured against
    (container,) = _one("Deployment", "forge-server")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]


def test_gateway_runs_envoy_with_the_config_map() -> None:
    spec = _one("Deployment", "forge-gateway")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["config"] == "/etc/envoy"
    assert volumes["config"]["configMap"]["name"] == "forge-envoy"
    assert container["args"][:3] == ["envoy", "-c", "/etc/envoy/envoy.yaml"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    # liveness must not follow the servers' health
    assert "httpGet" not in container["livenessProbe"]
    envoy = yaml.safe_load(_one("ConfigMap", "forge-envoy")["data"]["envoy.yaml"])
    listener = envoy["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert (listener["address"], listener["port_value"]) == (launcher.ANY_ADDRESS, 8080)
    assert {"containerPort": 8080, "name": "http", "protocol": "TCP"} in container["ports"]
    clusters = envoy["static_resources"]["clusters"]
    cluster = next(c for c in clusters if c["name"] == launcher.CLUSTER_NAME)
    assert cluster["type"] == "STRICT_DNS"
    ((endpoint,),) = [g["lb_endpoints"] for g in cluster["load_assignment"]["endpoints"]]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert f"{address['address']}:{address['port_value']}" == SERVER_UPSTREAM
    assert SERVER_UPSTREAM.startswith(_one("Service", "forge-grpc")["metadata"]["name"] + ".")


def test_envoy_config_map_is_rendered_from_the_template() -> None:
    check_generated(ENVOY_CONFIG_MAP, envoy_config_map_text())
    (config_map,) = _documents(ENVOY_CONFIG_MAP)
    assert config_map["data"]["envoy.yaml"] == render_launcher(ENVOY_ARGS)


def test_envoy_config_map_is_accepted_by_envoy(tmp_path: Path) -> None:
    """`envoy --mode validate` on the ConfigMap's config (descriptor path made local)."""
    (config_map,) = _documents(ENVOY_CONFIG_MAP)
    config = tmp_path / "envoy.yaml"
    config.write_text(
        config_map["data"]["envoy.yaml"].replace("/app/gen/forge.binpb", str(DESCRIPTOR))
    )
    checked = subprocess.run(
        [launcher.envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_no_secret_value_is_committed() -> None:
    (secret,) = _documents(SECRET_TEMPLATE)
    assert set(secret["stringData"]) == SECRET_KEYS
    assert all(value == "" for value in secret["stringData"].values())
    assert "data" not in secret
    for resource in _resources():
        assert resource["kind"] != "Secret", "Secrets are created by the operator, not applied"
        if resource["kind"] == "ConfigMap":
            assert not SECRET_KEYS & set(resource["data"]), resource["metadata"]["name"]
        for container in _containers(resource):
            for item in container.get("env", []):
                assert item["name"] not in SECRET_KEYS or "value" not in item


def _containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    if resource["kind"] != "Deployment":
        return []
    containers: list[dict[str, Any]] = resource["spec"]["template"]["spec"]["containers"]
    return containers
