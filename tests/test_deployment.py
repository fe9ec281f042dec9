"""The production-like deployment (docker-compose.yml): its file is valid (images cannot be
pulled here, so it is validated rather than run), its Envoy config is the one the launcher
renders from gateway/envoy.yaml, that config balances two real servers with active gRPC
health checks, and Prometheus scrapes the replicas and Envoy's stats listener (which serves
nothing else of Envoy's admin)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from gateway import launcher, stats
from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from tests.conftest import DESCRIPTOR, make_settings
from tests.support.testing_service import TEST_MODULES
from tests.support.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
COMPOSE_ENVOY = REPO_ROOT / "deploy" / "compose" / "envoy.yaml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
METRICS_PORT = 9464  # the replicas' FORGE_METRICS_ADDRESS port
ENVOY_STATS_PORT = 9902
REGENERATE = "FORGE_REGENERATE_DEPLOY"
REPLICAS = ("server-a", "server-b")
ENVOY_ADDRESS = "172.28.57.10"
# The rendering of deploy/compose/envoy.yaml: the two replicas by service name, the
# descriptor where the gateway image has it, /healthz up while one replica is, and Envoy's
# stats for Prometheus on a port of their own.
COMPOSE_ENVOY_ARGS = (
    "--print-config",
    "--no-console",
    *(arg for replica in REPLICAS for arg in ("--upstream", f"{replica}:50051")),
    "--descriptor-in-config",
    "/app/gen/forge.binpb",
    "--healthz-min-healthy-percent",
    "1",
    "--stats-port",
    str(ENVOY_STATS_PORT),
)
# Envoy checks every 5 s and needs two failures: leave room on a busy machine.
HEALTH_FOLLOWS_WITHIN = 45.0
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def render_launcher(args: tuple[str, ...]) -> str:
    """What `python -m gateway.launcher ARGS` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert launcher.main([*args, "--descriptor", str(DESCRIPTOR)]) == 0
    return out.getvalue()


def generated_header(command: str, test: str) -> str:
    lines = [
        "GENERATED from gateway/envoy.yaml: do not edit. After changing the template, run",
        f"  {REGENERATE}=1 .venv/bin/python -m pytest {test} -q",
        "(the test fails while this file differs). The Envoy config is the output of:",
        *(f"  {line}" for line in _wrap(command)),
    ]
    return "".join(f"# {line}\n" for line in lines)


def _wrap(command: str, width: int = 86) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in command.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current + " \\")
            current = "  " + word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current]


def check_generated(path: Path, expected: str) -> None:
    if os.environ.get(REGENERATE) == "1":
        path.write_text(expected)
    assert path.exists(), f"{path} is missing: create it with {REGENERATE}=1"
    assert path.read_text() == expected, (
        f"{path.relative_to(REPO_ROOT)} is out of date with gateway/envoy.yaml: "
        f"regenerate it with {REGENERATE}=1"
    )


def compose_envoy_text() -> str:
    command = "python -m gateway.launcher " + shlex.join(COMPOSE_ENVOY_ARGS)
    header = generated_header(command, "tests/test_deployment.py")
    return header + render_launcher(COMPOSE_ENVOY_ARGS)


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if os.environ.get("CI") == "true":
        raise AssertionError("docker-compose must be installed in CI (.ci/run installs it)")
    pytest.skip("docker-compose is not installed")


async def _compose_config(env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *_compose_command(),
        "-f",
        str(COMPOSE_FILE),
        "config",
        cwd=REPO_ROOT,
        env={k: v for k, v in {**os.environ, **env}.items() if v},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


SECRETS = {
    "FORGE_JWT_SECRET": "x" * 64,
    "FORGE_PROVIDER_KEY_ENCRYPTION_KEYS": base64.b64encode(bytes(32)).decode(),
    "MINIO_ROOT_PASSWORD": "minio-root-secret",
    "FORGE_S3_SECRET_ACCESS_KEY": "forge-s3-secret",
    "DOCKER_GID": "989",
}


@pytest.fixture(scope="module")
async def compose() -> dict[str, Any]:
    code, out, err = await _compose_config(SECRETS)
    assert code == 0, err
    config: dict[str, Any] = yaml.safe_load(out)
    return config


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # KEY=VALUE entries
        return dict(entry.split("=", 1) for entry in env)
    return {key: str(value) for key, value in env.items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes, in either form docker-compose prints."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


async def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"postgres", "minio", "minio-bucket", *REPLICAS, "envoy", "prometheus"}
    assert set(compose["volumes"]) >= {
        "pgdata",
        "miniodata",
        "forge-a-data",
        "forge-b-data",
        "prometheus-data",
    }
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"] == "pgdata"
    assert _mounts(services["minio"])["/data"] == "miniodata"


async def test_compose_replicas_share_database_and_bucket(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [_env(services[replica]) for replica in REPLICAS]
    for env in envs:
        assert env["FORGE_ENVIRONMENT"] == "production"
        assert env["FORGE_DATABASE_URL"].endswith("@postgres:5432/forge")
        assert env["FORGE_JWT_SECRET"] == SECRETS["FORGE_JWT_SECRET"]
        assert env["FORGE_BLOB_STORE"] == "s3"
        assert env["FORGE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["FORGE_S3_SECRET_ACCESS_KEY"] == SECRETS["FORGE_S3_SECRET_ACCESS_KEY"]
        assert env["FORGE_LISTEN_ADDRESS"] == "0.0.0.0:50051"
        # Envoy's fixed address, so client addresses (rate limits, audit) are the callers'.
        assert env["FORGE_TRUSTED_PROXIES"] == ENVOY_ADDRESS
    # One database, one bucket and one sandbox namespace (a host's sandbox duties are leased
    # in the database, so replicas share the engine's sandboxes), and a data volume each.
    assert envs[0]["FORGE_DATABASE_URL"] == envs[1]["FORGE_DATABASE_URL"]
    assert envs[0]["FORGE_S3_BUCKET"] == envs[1]["FORGE_S3_BUCKET"]
    assert envs[0]["FORGE_SANDBOX_NAMESPACE"] == envs[1]["FORGE_SANDBOX_NAMESPACE"]
    data = [_mounts(services[replica])["/var/lib/forge"] for replica in REPLICAS]
    assert data[0] != data[1]
    assert set(data) <= set(compose["volumes"])


async def test_compose_replicas_run_sandboxes_on_the_hosts_docker(compose: dict[str, Any]) -> None:
    for replica in REPLICAS:
        service = compose["services"][replica]
        assert _mounts(service)["/var/run/docker.sock"] == "/var/run/docker.sock"
        assert [str(group) for group in service["group_add"]] == [SECRETS["DOCKER_GID"]]
        assert "ports" not in service  # reached through Envoy only
    # the security note stays next to the socket mount
    assert "root on the host" in COMPOSE_FILE.read_text()


async def test_compose_creates_the_bucket_before_the_servers_start(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    job = services["minio-bucket"]
    for replica in REPLICAS:
        needs = services[replica]["depends_on"]
        assert needs["minio-bucket"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == "service_healthy"
    assert job["depends_on"]["minio"]["condition"] == "service_healthy"
    script = _mounts(job)["/init/minio-init.sh"]
    assert Path(script) == REPO_ROOT / "deploy" / "compose" / "minio-init.sh"
    # the job creates the bucket the servers use, for the user they sign in as
    job_env, server_env = _env(job), _env(services["server-a"])
    for key in ("FORGE_S3_BUCKET", "FORGE_S3_ACCESS_KEY_ID", "FORGE_S3_SECRET_ACCESS_KEY"):
        assert job_env[key] == server_env[key]
    assert _env(services["minio"])["MINIO_ROOT_PASSWORD"] == job_env["MINIO_ROOT_PASSWORD"]


def test_minio_init_script_is_valid_shell() -> None:
    script = REPO_ROOT / "deploy" / "compose" / "minio-init.sh"
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    text = script.read_text()
    assert 'mc mb --ignore-existing "forge/$FORGE_S3_BUCKET"' in text
    assert "set -eu" in text


async def test_compose_envoy_balances_both_replicas(compose: dict[str, Any]) -> None:
    envoy = compose["services"]["envoy"]
    assert "network_mode" not in envoy  # its own network namespace now
    assert envoy["networks"]["forge"]["ipv4_address"] == ENVOY_ADDRESS
    assert Path(_mounts(envoy)["/etc/envoy/envoy.yaml"]) == COMPOSE_ENVOY
    assert any(str(port.get("published", "")) == "8080" for port in envoy["ports"]) or any(
        str(port).startswith("8080:") for port in envoy["ports"]
    )
    cluster = _cluster(yaml.safe_load(COMPOSE_ENVOY.read_text()))
    assert cluster["type"] == "STRICT_DNS"
    hosts = [
        endpoint["endpoint"]["address"]["socket_address"]
        for group in cluster["load_assignment"]["endpoints"]
        for endpoint in group["lb_endpoints"]
    ]
    assert {(h["address"], h["port_value"]) for h in hosts} == {(r, 50051) for r in REPLICAS}
    assert cluster["health_checks"][0]["grpc_health_check"] == {}


def _volume_is_read_only(service: dict[str, Any], target: str) -> bool:
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            if volume.split(":")[1] == target:
                return volume.endswith(":ro")
        elif volume["target"] == target:
            return bool(volume.get("read_only"))
    raise AssertionError(f"no volume at {target}")


def _published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of a service's published ports, in either form."""
    published = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published.append((str(port.get("host_ip", "")), str(port.get("published", ""))))
        else:
            parts = str(port).split(":")
            published.append((parts[0], parts[1]) if len(parts) == 3 else ("", parts[0]))
    return published


async def test_compose_replicas_export_metrics(compose: dict[str, Any]) -> None:
    for replica in REPLICAS:
        env = _env(compose["services"][replica])
        assert env["FORGE_METRICS_ADDRESS"] == f"0.0.0.0:{METRICS_PORT}"
        # one process per replica, so one scrape target each (worker i would use 9464+i)
        assert env["FORGE_WORKERS"] == "1"
        assert "ports" not in compose["services"][replica]  # scraped on the compose network


async def test_compose_prometheus_scrapes_the_replicas_and_envoy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    name, _, tag = prometheus["image"].partition(":")
    assert name == "prom/prometheus"
    assert tag.startswith("v")  # pinned (not latest)
    mounts = _mounts(prometheus)
    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == PROMETHEUS_CONFIG
    assert _volume_is_read_only(prometheus, "/etc/prometheus/prometheus.yml")
    assert mounts["/prometheus"] in compose["volumes"]
    # its UI and API (which can delete series with the admin API on) stay off the network
    assert all(host == "127.0.0.1" for host, _ in _published_ports(prometheus))

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {
        *(("/metrics", f"{replica}:{METRICS_PORT}") for replica in REPLICAS),
        (stats.PATH, f"envoy:{ENVOY_STATS_PORT}"),
    }
    # every target is a service on Prometheus's network, on the port it serves
    for _, target in targets:
        host = target.split(":")[0]
        assert set(prometheus["networks"]) <= set(services[host]["networks"]), host
    envoy_listeners = yaml.safe_load(COMPOSE_ENVOY.read_text())["static_resources"]["listeners"]
    listener = next(item for item in envoy_listeners if item["name"] == stats.LISTENER_NAME)
    assert listener["address"]["socket_address"] == {
        "address": launcher.ANY_ADDRESS,
        "port_value": ENVOY_STATS_PORT,
    }
    assert str(ENVOY_STATS_PORT) in [str(port) for port in services["envoy"]["expose"]]
    # and not published on the host: only Prometheus reads it
    assert all(port != str(ENVOY_STATS_PORT) for _, port in _published_ports(services["envoy"]))


async def test_compose_envoy_stats_port_serves_only_prometheus_stats(tmp_path: Path) -> None:
    """deploy/compose/envoy.yaml run for real (on free loopback ports): its stats listener
    serves Envoy's Prometheus stats from the admin and refuses every other admin page."""
    doc = yaml.safe_load(COMPOSE_ENVOY.read_text())
    resources = doc["static_resources"]
    listener = next(item for item in resources["listeners"] if item["name"] == stats.LISTENER_NAME)
    admin_cluster = next(
        item for item in resources["clusters"] if item["name"] == stats.CLUSTER_NAME
    )
    ((endpoint,),) = [
        group["lb_endpoints"] for group in admin_cluster["load_assignment"]["endpoints"]
    ]
    to_admin = endpoint["endpoint"]["address"]["socket_address"]
    assert to_admin == doc["admin"]["address"]["socket_address"]
    assert to_admin["address"] == "127.0.0.1"  # the admin itself stays private

    admin_port = stats.free_port()
    to_admin["port_value"] = admin_port
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    template = tmp_path / "compose-envoy.yaml"
    template.write_text(yaml.safe_dump(doc))
    config = EnvoyConfig(
        listen_port=0,
        admin_port=admin_port,
        upstream_host="127.0.0.1",
        upstream_port=stats.free_port(),  # no server: Envoy's own stats are enough here
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
    )
    async with EnvoyProcess(config, template=template) as envoy:
        _, listeners = await envoy.admin_get("/listeners?format=json")
        port = next(
            status["local_address"]["socket_address"]["port_value"]
            for status in json.loads(listeners)["listener_statuses"]
            if status["name"] == stats.LISTENER_NAME
        )
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get(stats.PATH) as answer:
                assert answer.status == 200
                text = await answer.text()
            samples = {
                (sample.name, sample.labels.get("envoy_cluster_name")): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
            assert samples[("envoy_server_live", None)] == 1
            assert ("envoy_cluster_upstream_cx_total", "forge_grpc") in samples
            for method, path in (
                ("POST", "/quitquitquit"),
                ("POST", "/stats/reset"),
                ("GET", "/config_dump"),
                ("GET", "/stats"),
                ("POST", stats.PATH),
            ):
                async with http.request(method, path) as answer:
                    assert answer.status in (404, 405), (method, path, answer.status)
        assert envoy.running
        assert await envoy.admin_get("/ready") == (200, "LIVE\n")


async def test_compose_refuses_to_start_without_its_secrets() -> None:
    for missing in SECRETS:
        code, _, err = await _compose_config({**SECRETS, missing: ""})
        assert code != 0, f"docker-compose config passed without {missing}"
        assert missing in err


def test_compose_envoy_config_is_rendered_from_the_template() -> None:
    check_generated(COMPOSE_ENVOY, compose_envoy_text())


def test_compose_envoy_config_is_accepted_by_envoy(tmp_path: Path) -> None:
    """`envoy --mode validate` on the compose config (descriptor path made local)."""
    local = compose_envoy_text().replace("/app/gen/forge.binpb", str(DESCRIPTOR))
    config = tmp_path / "envoy.yaml"
    config.write_text(local)
    checked = subprocess.run(
        [launcher.envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_gateway_image_uses_the_same_envoy_config() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "FROM envoyproxy/envoy" in dockerfile
    assert "COPY gateway/envoy.yaml /etc/envoy/envoy.yaml" in dockerfile
    assert "COPY --from=gen /src/gen/forge.binpb gen/forge.binpb" in dockerfile
    assert "WORKDIR /app" in dockerfile.split("AS gateway", 1)[1]


def _cluster(envoy_config: dict[str, Any]) -> dict[str, Any]:
    clusters = envoy_config["static_resources"]["clusters"]
    found: dict[str, Any] = next(c for c in clusters if c["name"] == launcher.CLUSTER_NAME)
    return found


# -- the compose gateway's shape, run for real: two servers behind one Envoy ----------------


@pytest.fixture
async def two_servers(database_url: str, tmp_path: Path) -> AsyncIterator[list[ForgeServer]]:
    servers = [
        ForgeServer(make_settings(database_url, tmp_path / name), TEST_MODULES)
        for name in ("a", "b")
    ]
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await server.start()
            stack.push_async_callback(server.stop, 0)
        yield servers


async def _host_stats(envoy: EnvoyProcess) -> dict[int, dict[str, str]]:
    """Upstream port -> {stat or flag: value} from the admin /clusters page."""
    _, body = await envoy.admin_get("/clusters")
    hosts: dict[int, dict[str, str]] = {}
    for line in body.splitlines():
        parts = line.split("::")
        if len(parts) != 4 or parts[0] != launcher.CLUSTER_NAME:
            continue
        _, sep, port = parts[1].rpartition(":")  # host lines; others are cluster settings
        if sep and port.isdigit():
            hosts.setdefault(int(port), {})[parts[2]] = parts[3]
    return hosts


async def test_envoy_balances_replicas_and_drops_one_that_is_not_serving(
    two_servers: list[ForgeServer],
) -> None:
    a, b = two_servers
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=a.port,
        more_upstreams=[("127.0.0.1", b.port)],
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        healthz_min_healthy_percent=1,  # as in deploy/compose/envoy.yaml
        access_log=False,
    )
    async with EnvoyProcess(config) as envoy, aiohttp.ClientSession(envoy.base_url) as http:

        async def healthy_ports() -> set[int]:
            stats = await _host_stats(envoy)
            return {port for port, s in stats.items() if s.get("health_flags") == "healthy"}

        async def calls(count: int) -> None:
            for _ in range(count):  # unauthenticated: the server answers 401 itself
                async with http.get("/v1/projects") as answer:
                    assert answer.status == 401, await answer.text()

        async def healthz() -> int:
            async with http.get("/healthz") as answer:
                return answer.status

        async def requests_to(port: int) -> int:
            return int((await _host_stats(envoy))[port]["rq_total"])

        await eventually(
            lambda: _is(healthy_ports(), {a.port, b.port}), timeout=HEALTH_FOLLOWS_WITHIN
        )
        await calls(20)
        assert await requests_to(a.port) > 0
        assert await requests_to(b.port) > 0

        # A replica that stops serving (as it does on SIGTERM) leaves the balance; the
        # gateway stays healthy and every call goes to the other.
        await a.health.set("", NOT_SERVING)
        await eventually(
            lambda: _is(healthy_ports(), {b.port}), timeout=HEALTH_FOLLOWS_WITHIN, interval=0.2
        )
        assert await healthz() == 200
        before = await requests_to(a.port)
        await calls(10)
        assert await requests_to(a.port) == before

        # With no replica serving, /healthz tells the load balancer in front.
        await b.health.set("", NOT_SERVING)
        await eventually(lambda: _is(healthz(), 503), timeout=HEALTH_FOLLOWS_WITHIN, interval=0.2)


async def _is(value: Awaitable[object], expected: object) -> bool:
    return bool(await value == expected)
