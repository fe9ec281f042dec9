"""The proto contract: buf lint is clean, and every RPC and REST route of API.md exists."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parents[1]
API_MD = REPO_ROOT.parent / "shared" / "API.md"
DESCRIPTOR = REPO_ROOT / "gen" / "forge.binpb"
GRPC_ONLY = "(gRPC only)"


def _api_rows() -> list[tuple[str, str, str]]:
    """(service full name, rpc, "METHOD /path" or GRPC_ONLY) for every row of API.md."""
    if not API_MD.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{API_MD} is missing")
        pytest.skip("shared/API.md is not beside the repo")
    rows: list[tuple[str, str, str]] = []
    service = ""
    for line in API_MD.read_text().splitlines():
        heading = re.match(r"^## (forge\.\w+\.v1\.\w+)", line)
        if heading:
            service = heading.group(1)
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            service
            and len(cells) >= 2
            and re.fullmatch(r"[A-Z][a-z]\w+", cells[0])
            and cells[0] != "RPC"
        ):
            rows.append((service, cells[0], cells[1]))
    return rows


def _declared() -> dict[tuple[str, str], str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR.read_bytes())
    declared: dict[tuple[str, str], str] = {}
    for file in files.file:
        if not file.package.startswith("forge."):
            continue
        for service in file.service:
            for method in service.method:
                route = GRPC_ONLY
                if method.options.HasExtension(annotations_pb2.http):
                    rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    assert verb is not None
                    route = f"{verb.upper()} {getattr(rule, verb)}"
                declared[(f"{file.package}.{service.name}", method.name)] = route
    return declared


def test_every_api_md_rpc_is_declared_with_its_route() -> None:
    rows = _api_rows()
    assert len(rows) > 70
    declared = _declared()
    for service, rpc, route in rows:
        assert (service, rpc) in declared, f"{service}.{rpc} is missing"
        assert declared[(service, rpc)] == route, f"{service}.{rpc}"


ADDED_AFTER_THE_PLAN = {
    # Agent runs (issue 12): human in the loop, steering, and the tool catalogue.
    ("forge.agents.v1.AgentService", "ApproveToolCall"): "POST /v1/runs/{run_id}:approve",
    ("forge.agents.v1.AgentService", "SendRunMessage"): "POST /v1/runs/{run_id}:sendMessage",
    ("forge.agents.v1.AgentService", "ListRunTools"): "GET /v1/runTools",
    # Fair shares (issue 14): a user's limits, overridden by an admin.
    ("forge.auth.v1.AuthService", "GetUserLimits"): "GET /v1/users/{user_id}/limits",
    ("forge.auth.v1.AuthService", "UpdateUserLimits"): "PATCH /v1/users/{limits.user_id}/limits",
    # More models (issue 15): providers switched on and off by admins, and users' and
    # projects' own provider keys (each also under /v1/projects/{project_id}/providerKeys).
    ("forge.agents.v1.AgentService", "ListProviders"): "GET /v1/providers",
    ("forge.agents.v1.AgentService", "UpdateProvider"): "PATCH /v1/providers/{provider.name}",
    ("forge.agents.v1.AgentService", "CreateProviderKey"): "POST /v1/users/me/providerKeys",
    ("forge.agents.v1.AgentService", "ListProviderKeys"): "GET /v1/users/me/providerKeys",
    ("forge.agents.v1.AgentService", "DeleteProviderKey"): (
        "DELETE /v1/users/me/providerKeys/{provider_key_id}"
    ),
    # Scale-out (issue 17): cancelling from any server process what another one streams.
    ("forge.agents.v1.AgentService", "CancelAnswer"): (
        "POST /v1/conversations/{conversation_id}/messages/{message_id}:cancel"
    ),
    ("forge.sandbox.v1.SandboxService", "CancelExecution"): (
        "POST /v1/sandboxes/{sandbox_id}/executions/{execution_id}:cancel"
    ),
    # Build, preview and deploy (issue 19): tree (multi-file) artifacts.
    ("forge.artifacts.v1.ArtifactService", "ListArtifactFiles"): (
        "GET /v1/artifacts/{artifact_id}/files"
    ),
    ("forge.artifacts.v1.ArtifactService", "DownloadArtifactArchive"): (
        "GET /v1/artifacts/{artifact_id}:archive"
    ),
    # Build, preview and deploy (issue 19): builds and previews.
    ("forge.artifacts.v1.ArtifactService", "BuildArtifact"): (
        "POST /v1/artifacts/{artifact_id}:build"
    ),
    ("forge.artifacts.v1.ArtifactService", "GetBuild"): "GET /v1/builds/{build_id}",
    ("forge.artifacts.v1.ArtifactService", "ListBuilds"): "GET /v1/artifacts/{artifact_id}/builds",
    ("forge.artifacts.v1.ArtifactService", "GetPreviewUrl"): (
        "GET /v1/artifacts/{artifact_id}:previewUrl"
    ),
    ("forge.artifacts.v1.ArtifactService", "GetPreviewFile"): (
        "GET /v1/previews/{preview_token}/{path=**}"
    ),
    # Build, preview and deploy (issue 19): deployments to static hosting.
    ("forge.deployments.v1.DeploymentService", "CreateDeployTarget"): (
        "POST /v1/projects/{project_id}/deployTargets"
    ),
    ("forge.deployments.v1.DeploymentService", "GetDeployTarget"): (
        "GET /v1/deployTargets/{deploy_target_id}"
    ),
    ("forge.deployments.v1.DeploymentService", "ListDeployTargets"): (
        "GET /v1/projects/{project_id}/deployTargets"
    ),
    ("forge.deployments.v1.DeploymentService", "DeleteDeployTarget"): (
        "DELETE /v1/deployTargets/{deploy_target_id}"
    ),
    ("forge.deployments.v1.DeploymentService", "CreateDeployment"): (
        "POST /v1/projects/{project_id}/deployments"
    ),
    ("forge.deployments.v1.DeploymentService", "GetDeployment"): (
        "GET /v1/deployments/{deployment_id}"
    ),
    ("forge.deployments.v1.DeploymentService", "ListDeployments"): (
        "GET /v1/projects/{project_id}/deployments"
    ),
    ("forge.deployments.v1.DeploymentService", "DeleteDeployment"): (
        "DELETE /v1/deployments/{deployment_id}"
    ),
    ("forge.deployments.v1.DeploymentService", "WatchDeployment"): (
        "GET /v1/deployments/{deployment_id}:watch"
    ),
}
"""RPCs the contract gained after API.md was written (API.md is the starting plan and is not
edited here); each keeps the AIP style and has its REST route."""


def test_every_forge_rpc_is_in_api_md() -> None:
    documented = {(service, rpc) for service, rpc, _ in _api_rows()}
    declared = _declared()
    extra = {key: route for key, route in declared.items() if key not in documented}
    assert extra == ADDED_AFTER_THE_PLAN


def test_test_scaffolding_stays_out_of_production() -> None:
    """TestingService is served, routed and generated for the tests only."""
    assert not any("testing" in service for service, _ in _declared())
    envoy_yaml = (REPO_ROOT / "gateway" / "envoy.yaml").read_text()
    assert "forge.testing" not in envoy_yaml
    client_sources = REPO_ROOT / "clients" / "python" / "src" / "forge_client"
    assert client_sources.is_dir()
    assert not [path for path in client_sources.rglob("*") if "testing" in path.name]
    assert not list((REPO_ROOT / "protos").rglob("testing*.proto"))
    assert not list((REPO_ROOT / "server").rglob("testing*"))


async def test_buf_lint_passes() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(REPO_ROOT / "scripts" / "buf-lint"),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, output.decode()
