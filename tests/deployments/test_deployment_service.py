"""DeploymentService end to end: a server of its own whose deploy targets reach moto's S3,
the Netlify and Vercel fakes and local bare git repositories; tree and HTML artifacts made
with ArtifactService are published, watched to LIVE (over gRPC and as SSE through Envoy),
switched, and deleted again with what they published."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.deployments.v1 import deployments_pb2, deployments_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.artifacts.service_support import Team, create_tree, new_team, update_tree
from tests.conftest import make_settings
from tests.deployments.s3_visitor import visit
from tests.fakes.netlify_fake import NetlifyFake
from tests.fakes.s3 import ACCESS_KEY_ID, REGION, MotoS3Server
from tests.fakes.vercel_fake import VercelFake
from tests.support.rpc import error_info
from tests.support.testing_service import TEST_MODULES
from tests.support.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO_ROOT / "gen" / "forge-test.binpb"
DEADLINE = 60.0
NETLIFY_TOKEN = "nfp_forge-test-token-0001"
VERCEL_TOKEN = "vercel_forge-test-token-0001"
S3_SECRET = "forge-s3-secret-key-0001"  # moto takes any
Status = deployments_pb2.DeploymentStatus

SITE_V1 = {
    "index.html": b'<!doctype html><link rel="stylesheet" href="style.css"><h1>v1</h1>',
    "style.css": b"h1 { color: teal; }\n",
    "js/app.js": b"console.log('v1');\n",
}
SITE_V2 = {**SITE_V1, "index.html": b"<!doctype html><h1>v2</h1>"}


@pytest.fixture(scope="module")
async def netlify() -> AsyncIterator[NetlifyFake]:
    async with NetlifyFake(token=NETLIFY_TOKEN, polls_before_ready=1) as fake:
        yield fake


@pytest.fixture(scope="module")
async def vercel() -> AsyncIterator[VercelFake]:
    async with VercelFake(token=VERCEL_TOKEN, polls_before_ready=1) as fake:
        yield fake


@pytest.fixture(scope="module")
async def server(
    postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
    deploy_s3: MotoS3Server,
    netlify: NetlifyFake,
    vercel: VercelFake,
) -> AsyncIterator[ForgeServer]:
    settings = make_settings(
        await postgres.ensure_database("forge_deployments"),
        tmp_path_factory.mktemp("deployments-data"),
        deploy_s3_endpoint_url=deploy_s3.endpoint_url,
        deploy_netlify_api_url=netlify.url,
        deploy_vercel_api_url=vercel.url,
        deploy_git_allow_local_remotes=True,
        deploy_poll_seconds=0.05,
        deploy_heartbeat_seconds=0.2,
        deploy_interrupted_after_seconds=2.0,
    )
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="module")
async def channel(server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture(scope="module")
async def envoy(server: ForgeServer) -> AsyncIterator[EnvoyProcess]:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=server.port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
    )
    async with EnvoyProcess(config) as proc:
        yield proc


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


async def git(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


def deployments(channel: grpc.aio.Channel) -> deployments_pb2_grpc.DeploymentServiceAsyncStub:
    return deployments_pb2_grpc.DeploymentServiceStub(channel)


async def tree(channel: grpc.aio.Channel, team: Team, files: dict[str, bytes]) -> str:
    return str((await create_tree(channel, team, files, title="site", filename="site")).id)


async def new_version(channel: grpc.aio.Channel, team: Team, artifact_id: str) -> None:
    await update_tree(channel, team, artifact_id, SITE_V2, base=1)


async def s3_target(channel: grpc.aio.Channel, team: Team, bucket: str) -> str:
    target = await deployments(channel).CreateDeployTarget(
        deployments_pb2.CreateDeployTargetRequest(
            project_id=team.project_id,
            deploy_target=deployments_pb2.DeployTarget(
                display_name="website",
                s3_website=deployments_pb2.S3Website(
                    bucket=bucket, prefix="site/", region=REGION, access_key_id=ACCESS_KEY_ID
                ),
                token=S3_SECRET,
            ),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    return str(target.id)


async def deploy(
    channel: grpc.aio.Channel, team: Team, target_id: str, artifact_id: str
) -> deployments_pb2.Deployment:
    return await deployments(channel).CreateDeployment(
        deployments_pb2.CreateDeploymentRequest(
            project_id=team.project_id,
            deployment=deployments_pb2.Deployment(
                deploy_target_id=target_id, artifact_id=artifact_id
            ),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )


async def watched(
    channel: grpc.aio.Channel, team: Team, deployment_id: str
) -> list[deployments_pb2.Deployment]:
    call = deployments(channel).WatchDeployment(
        deployments_pb2.WatchDeploymentRequest(deployment_id=deployment_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    return [update async for update in call]


async def test_a_target_keeps_its_token_to_itself(
    channel: grpc.aio.Channel, team: Team, postgres: EmbeddedPostgres
) -> None:
    target_id = await s3_target(channel, team, "any-bucket")
    stub = deployments(channel)
    got = await stub.GetDeployTarget(
        deployments_pb2.GetDeployTargetRequest(deploy_target_id=target_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert got.token == ""
    assert got.token_hint  # its last characters, at most a quarter of it
    assert S3_SECRET.endswith(got.token_hint)
    assert len(got.token_hint) <= len(S3_SECRET) // 4
    assert (got.s3_website.bucket, got.s3_website.prefix) == ("any-bucket", "site/")
    listed = await stub.ListDeployTargets(
        deployments_pb2.ListDeployTargetsRequest(project_id=team.project_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [t.id for t in listed.deploy_targets] == [target_id]
    assert all(t.token == "" for t in listed.deploy_targets)

    engine = create_async_engine(await postgres.ensure_database("forge_deployments"))
    try:
        async with engine.connect() as db:
            row = (
                await db.execute(
                    text("SELECT ciphertext, config::text FROM deploy_targets WHERE id = :id"),
                    {"id": uuid.UUID(target_id)},
                )
            ).one()
    finally:
        await engine.dispose()
    assert S3_SECRET.encode() not in row.ciphertext
    assert S3_SECRET not in row.config


async def test_only_owners_register_targets_and_bad_settings_are_named(
    channel: grpc.aio.Channel, team: Team
) -> None:
    stub = deployments(channel)
    netlify_target = deployments_pb2.DeployTarget(
        netlify=deployments_pb2.NetlifySite(site_id="forge-site"), token=NETLIFY_TOKEN
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateDeployTarget(
            deployments_pb2.CreateDeployTargetRequest(
                project_id=team.project_id, deploy_target=netlify_target
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    bad = deployments_pb2.DeployTarget(
        github_pages=deployments_pb2.GitHubPages(
            remote_url="http://user:secret@example.com/site.git", branch="../x"
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.CreateDeployTarget(
            deployments_pb2.CreateDeployTargetRequest(
                project_id=team.project_id, deploy_target=bad
            ),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = invalid.value.details() or ""
    assert "deploy_target.github_pages.remote_url" in details
    assert "deploy_target.github_pages.branch" in details
    assert "secret" not in details

    elsewhere = deployments_pb2.DeployTarget(
        github_pages=deployments_pb2.GitHubPages(remote_url="https://git.example.com/site.git")
    )
    with pytest.raises(grpc.aio.AioRpcError) as no_site_url:
        await stub.CreateDeployTarget(
            deployments_pb2.CreateDeployTargetRequest(
                project_id=team.project_id, deploy_target=elsewhere
            ),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
    assert "deploy_target.github_pages.site_url" in (no_site_url.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as no_token:
        await stub.CreateDeployTarget(
            deployments_pb2.CreateDeployTargetRequest(
                project_id=team.project_id,
                deploy_target=deployments_pb2.DeployTarget(
                    vercel=deployments_pb2.VercelProject(project_name="site")
                ),
            ),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
    assert "deploy_target.token" in (no_token.value.details() or "")


async def test_a_tree_goes_live_on_s3_a_second_deployment_switches_and_delete_removes_it(
    channel: grpc.aio.Channel, team: Team, deploy_s3: MotoS3Server, bucket: str
) -> None:
    target_id = await s3_target(channel, team, bucket)
    artifact_id = await tree(channel, team, SITE_V1)

    first = await deploy(channel, team, target_id, artifact_id)
    assert first.status == Status.DEPLOYMENT_STATUS_QUEUED
    assert first.file_count == 3
    updates = await watched(channel, team, first.id)
    assert updates[-1].status == Status.DEPLOYMENT_STATUS_LIVE
    assert updates[-1].uploaded_file_count == 3
    assert updates[-1].url.endswith(f"/{bucket}/site/")
    async with deploy_s3.client() as client:
        home = await visit(client, bucket, "site/")
        style = await visit(client, bucket, "site/style.css")
    assert (home.status, home.body) == (200, SITE_V1["index.html"])
    assert home.content_type.startswith("text/html")
    assert style.content_type.startswith("text/css")

    await new_version(channel, team, artifact_id)
    second = await deploy(channel, team, target_id, artifact_id)
    assert second.artifact_version == 2
    assert (await watched(channel, team, second.id))[-1].status == Status.DEPLOYMENT_STATUS_LIVE
    stub = deployments(channel)
    earlier = await stub.GetDeployment(
        deployments_pb2.GetDeploymentRequest(deployment_id=first.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert earlier.status == Status.DEPLOYMENT_STATUS_SUPERSEDED
    async with deploy_s3.client() as client:
        assert (await visit(client, bucket, "site/")).body == SITE_V2["index.html"]

    with pytest.raises(grpc.aio.AioRpcError) as in_use:
        await stub.DeleteDeployTarget(
            deployments_pb2.DeleteDeployTargetRequest(deploy_target_id=target_id),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
    assert error_info(in_use.value).reason == "DEPLOY_TARGET_IN_USE"

    for deployment in (second, first):
        await stub.DeleteDeployment(
            deployments_pb2.DeleteDeploymentRequest(deployment_id=deployment.id),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    async with deploy_s3.client() as client:
        left = await client.list_objects_v2(Bucket=bucket, Prefix="site/deploys/")
    # Only the target's history of live deployments (now empty) stays.
    assert [item["Key"] for item in left.get("Contents", [])] == ["site/deploys/.history.json"]
    await stub.DeleteDeployTarget(
        deployments_pb2.DeleteDeployTargetRequest(deploy_target_id=target_id),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )


async def test_netlify_deployment_streams_to_live_as_sse_through_the_gateway(
    channel: grpc.aio.Channel, team: Team, envoy: EnvoyProcess, netlify: NetlifyFake
) -> None:
    artifact_id = await tree(channel, team, SITE_V1)
    async with aiohttp.ClientSession(base_url=envoy.base_url) as http:
        owner = {"Authorization": f"Bearer {team.owner.access_token}"}
        editor = {"Authorization": f"Bearer {team.editor.access_token}"}
        async with http.post(
            f"/v1/projects/{team.project_id}/deployTargets",
            json={
                "displayName": "netlify",
                "netlify": {"siteId": netlify.site_id},
                "token": NETLIFY_TOKEN,
            },
            headers=owner,
        ) as response:
            assert response.status == 200, await response.text()
            target = await response.json()
        assert "token" not in target
        async with http.post(
            f"/v1/projects/{team.project_id}/deployments",
            json={"deployTargetId": target["id"], "artifactId": artifact_id},
            headers=editor,
        ) as response:
            assert response.status == 200, await response.text()
            deployment = await response.json()
        async with http.get(
            f"/v1/deployments/{deployment['id']}:watch",
            headers={**editor, "Accept": "text/event-stream"},
        ) as response:
            assert response.status == 200
            body = await asyncio.wait_for(response.text(), DEADLINE)
    events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
    assert events[-1]["status"] == "DEPLOYMENT_STATUS_LIVE"
    assert events[-1]["url"] == netlify.site_url
    assert netlify.site_files() == SITE_V1


async def test_vercel_and_github_pages_receive_the_site(
    channel: grpc.aio.Channel, team: Team, vercel: VercelFake, tmp_path: Path
) -> None:
    remote = tmp_path / "pages.git"
    await git("init", "-q", "--bare", str(remote))
    stub = deployments(channel)
    artifact_id = await tree(channel, team, SITE_V1)
    for target in (
        deployments_pb2.DeployTarget(
            vercel=deployments_pb2.VercelProject(project_name="forge-site"), token=VERCEL_TOKEN
        ),
        deployments_pb2.DeployTarget(
            github_pages=deployments_pb2.GitHubPages(
                remote_url=str(remote), site_url="https://pages.example/site/"
            )
        ),
    ):
        created = await stub.CreateDeployTarget(
            deployments_pb2.CreateDeployTargetRequest(
                project_id=team.project_id, deploy_target=target
            ),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
        deployment = await deploy(channel, team, created.id, artifact_id)
        final = (await watched(channel, team, deployment.id))[-1]
        assert final.status == Status.DEPLOYMENT_STATUS_LIVE, final.error
    assert vercel.site_files("forge-site") == SITE_V1
    listing = await git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages")
    assert sorted(listing.split()) == sorted([*SITE_V1, ".nojekyll"])


async def test_a_refused_token_fails_the_deployment_with_its_reason(
    channel: grpc.aio.Channel, team: Team, netlify: NetlifyFake
) -> None:
    stub = deployments(channel)
    target = await stub.CreateDeployTarget(
        deployments_pb2.CreateDeployTargetRequest(
            project_id=team.project_id,
            deploy_target=deployments_pb2.DeployTarget(
                netlify=deployments_pb2.NetlifySite(site_id=netlify.site_id),
                token="nfp_wrong-token-0000",
            ),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    deployment = await deploy(channel, team, target.id, await tree(channel, team, SITE_V1))
    final = (await watched(channel, team, deployment.id))[-1]
    assert final.status == Status.DEPLOYMENT_STATUS_FAILED
    assert final.error.reason == "DEPLOY_TARGET_REFUSED"
    assert "wrong-token" not in final.error.message


async def test_what_cannot_be_deployed_is_refused_at_once(
    channel: grpc.aio.Channel, team: Team
) -> None:
    target_id = await s3_target(channel, team, "some-bucket")
    code = await artifacts_pb2_grpc.ArtifactServiceStub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(title="script", filename="main.py"),
            content=b"print('hi')\n",
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    no_index = await tree(channel, team, {"about.html": b"<p>no index</p>"})
    for artifact_id, reason in ((code.id, "NOT_A_SITE"), (no_index, "NOT_A_SITE")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deploy(channel, team, target_id, artifact_id)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(refused.value).reason == reason

    other = await new_team(channel)
    foreign = await tree(channel, other, SITE_V1)
    with pytest.raises(grpc.aio.AioRpcError) as not_found:
        await deploy(channel, team, target_id, foreign)
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await deployments(channel).CreateDeployment(
            deployments_pb2.CreateDeploymentRequest(
                project_id=team.project_id,
                deployment=deployments_pb2.Deployment(
                    deploy_target_id=target_id, artifact_id=code.id
                ),
            ),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as neither:
        await deployments(channel).CreateDeployment(
            deployments_pb2.CreateDeploymentRequest(
                project_id=team.project_id,
                deployment=deployments_pb2.Deployment(deploy_target_id=target_id),
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert neither.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_deployment_whose_server_is_gone_is_marked_interrupted(
    channel: grpc.aio.Channel, team: Team, postgres: EmbeddedPostgres
) -> None:
    """A row left UPLOADING by a process that stopped saying so (killed): the sweeper of
    any live process marks it FAILED, and a watcher sees it end."""
    target_id = await s3_target(channel, team, "gone-bucket")
    artifact_id = await tree(channel, team, SITE_V1)
    orphan = uuid.uuid4()
    engine = create_async_engine(await postgres.ensure_database("forge_deployments"))
    try:
        async with engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO deployments (id, project_id, target_id, artifact_id, "
                    "artifact_version, status, url, file_count, uploaded_file_count, "
                    "error_reason, error_message, heartbeat_time) VALUES (:id, :project, "
                    ":target, :artifact, 1, 'uploading', '', 3, 1, '', '', :beat)"
                ),
                {
                    "id": orphan,
                    "project": uuid.UUID(team.project_id),
                    "target": uuid.UUID(target_id),
                    "artifact": uuid.UUID(artifact_id),
                    "beat": datetime.now(UTC) - timedelta(minutes=5),
                },
            )
    finally:
        await engine.dispose()
    final = (await watched(channel, team, str(orphan)))[-1]
    assert final.status == Status.DEPLOYMENT_STATUS_FAILED
    assert final.error.reason == "DEPLOYMENT_INTERRUPTED"


async def test_a_build_deploys_with_the_page_that_loads_it(
    channel: grpc.aio.Channel, team: Team, vercel: VercelFake
) -> None:
    app = await tree(
        channel,
        team,
        {
            "index.tsx": b'import { createRoot } from "react-dom/client";\n'
            b'createRoot(document.getElementById("root")!).render(<p>deployed build</p>);\n'
        },
    )
    call = artifacts_pb2_grpc.ArtifactServiceStub(channel).BuildArtifact(
        artifacts_pb2.BuildArtifactRequest(artifact_id=app),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    built = [event async for event in call][-1].completed
    assert built.status == artifacts_pb2.BUILD_STATUS_SUCCEEDED
    stub = deployments(channel)
    target = await stub.CreateDeployTarget(
        deployments_pb2.CreateDeployTargetRequest(
            project_id=team.project_id,
            deploy_target=deployments_pb2.DeployTarget(
                vercel=deployments_pb2.VercelProject(project_name="built-app"), token=VERCEL_TOKEN
            ),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    deployment = await stub.CreateDeployment(
        deployments_pb2.CreateDeploymentRequest(
            project_id=team.project_id,
            deployment=deployments_pb2.Deployment(deploy_target_id=target.id, build_id=built.id),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert (deployment.build_id, deployment.artifact_id) == (built.id, "")
    final = (await watched(channel, team, deployment.id))[-1]
    assert final.status == Status.DEPLOYMENT_STATUS_LIVE, final.error
    site = vercel.site_files("built-app")
    assert b'<script src="bundle.js"></script>' in site["index.html"]
    assert b"deployed build" in site["bundle.js"]


async def test_deleting_the_project_removes_what_its_deployments_published(
    channel: grpc.aio.Channel, deploy_s3: MotoS3Server, bucket: str
) -> None:
    team = await new_team(channel)
    target_id = await s3_target(channel, team, bucket)
    deployment = await deploy(channel, team, target_id, await tree(channel, team, SITE_V1))
    assert (await watched(channel, team, deployment.id))[-1].status == Status.DEPLOYMENT_STATUS_LIVE

    await projects_pb2_grpc.ProjectServiceStub(channel).DeleteProject(
        projects_pb2.DeleteProjectRequest(project_id=team.project_id),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )

    prefix = f"site/deploys/{deployment.id}/"

    async def gone() -> bool:
        async with deploy_s3.client() as client:
            listed = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return not listed.get("Contents")

    await eventually(gone, timeout=DEADLINE)
