"""ArtifactService on the shared test server (local blob store): versions, optimistic
concurrency, access, listing, content through gRPC and through Envoy, image generation and
what deleting a project removes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2

from server.app import ForgeServer
from tests.artifacts.service_support import (
    DEADLINE,
    BlobView,
    Team,
    new_team,
    png_size,
    sha256,
    stub,
)
from tests.support.rpc import error_info, field_violations

PY_V1 = b'print("hello")\n'
PY_V2 = b'print("hello, world")\n'
PY_V3 = b'import sys\n\nprint("hello,", sys.argv[1])\n'


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


async def create(
    channel: grpc.aio.Channel,
    team: Team,
    content: bytes,
    filename: str = "hello.py",
    **fields: object,
) -> artifacts_pb2.Artifact:
    return await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(filename=filename, **fields),  # type: ignore[arg-type]
            content=content,
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )


async def download(
    channel: grpc.aio.Channel, team: Team, artifact_id: str, version: int = 0, offset: int = 0
) -> tuple[artifacts_pb2.ArtifactVersion, bytes, list[int]]:
    call = stub(channel).DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(
            artifact_id=artifact_id, version=version, offset=offset
        ),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    messages = [message async for message in call]
    assert messages[0].WhichOneof("payload") == "metadata"
    chunks = [m.chunk for m in messages[1:]]
    assert all(m.WhichOneof("payload") == "chunk" for m in messages[1:])
    return messages[0].metadata, b"".join(chunks), [len(c) for c in chunks]


async def test_create_then_update_twice_keeps_three_versions_byte_exact(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifacts = stub(channel)
    created = await create(channel, team, PY_V1, title="Greeting")
    assert created.latest_version == 1
    assert created.kind == artifacts_pb2.ARTIFACT_KIND_CODE
    assert created.content_type == "text/x-python"
    assert created.origin == artifacts_pb2.ARTIFACT_ORIGIN_API
    assert created.sha256 == sha256(PY_V1)
    assert created.size_bytes == len(PY_V1)
    assert created.creator_user_id == team.editor.user_id

    latest = created
    for base, content in ((1, PY_V2), (2, PY_V3)):
        latest = await artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=created.id),
                content=content,
                base_version=base,
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
        assert latest.latest_version == base + 1
    assert latest.sha256 == sha256(PY_V3)
    assert latest.title == "Greeting"  # content-only updates leave the metadata alone
    assert latest.update_time.ToDatetime() >= created.update_time.ToDatetime()
    assert latest.create_time == created.create_time

    listed = await artifacts.ListArtifactVersions(
        artifacts_pb2.ListArtifactVersionsRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [v.version for v in listed.versions] == [1, 2, 3]
    assert [v.sha256 for v in listed.versions] == [sha256(c) for c in (PY_V1, PY_V2, PY_V3)]
    assert all(v.creator_user_id == team.editor.user_id for v in listed.versions)

    for number, content in ((1, PY_V1), (2, PY_V2), (3, PY_V3), (0, PY_V3)):
        body = await artifacts.GetArtifactContent(
            artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id, version=number),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
        assert body.data == content
        assert body.content_type == "text/x-python"
        metadata, streamed, _ = await download(channel, team, created.id, number)
        assert streamed == content
        assert metadata.version == (number or 3)

    # Someone who still has version 2 loses the race: nothing changes.
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=created.id),
                content=b"stale edit\n",
                base_version=2,
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert conflict.value.code() == grpc.StatusCode.ABORTED
    info = error_info(conflict.value)
    assert info.reason == "VERSION_CONFLICT"
    assert info.metadata["latest_version"] == "3"
    after = await artifacts.GetArtifact(
        artifacts_pb2.GetArtifactRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert (after.latest_version, after.sha256) == (3, sha256(PY_V3))


async def test_version_pages_and_missing_versions(channel: grpc.aio.Channel, team: Team) -> None:
    artifacts = stub(channel)
    created = await create(channel, team, b"1\n", filename="n.txt")
    for base in (1, 2, 3):
        await artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=created.id),
                content=f"{base + 1}\n".encode(),
                base_version=base,
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    seen: list[int] = []
    token = ""
    while True:
        page = await artifacts.ListArtifactVersions(
            artifacts_pb2.ListArtifactVersionsRequest(
                artifact_id=created.id, page_size=3, page_token=token
            ),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
        seen += [v.version for v in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert seen == [1, 2, 3, 4]

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await artifacts.GetArtifactContent(
            artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id, version=5),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "ARTIFACT_VERSION_NOT_FOUND"

    _, rest, _ = await download(channel, team, created.id, version=4, offset=1)
    assert rest == b"\n"
    with pytest.raises(grpc.aio.AioRpcError) as past_the_end:
        await download(channel, team, created.id, offset=3)
    assert error_info(past_the_end.value).reason == "OFFSET_OUT_OF_RANGE"


async def test_metadata_updates_follow_the_mask(channel: grpc.aio.Channel, team: Team) -> None:
    artifacts = stub(channel)
    created = await create(channel, team, b"# notes\n", filename="notes.md")
    assert created.kind == artifacts_pb2.ARTIFACT_KIND_MARKDOWN

    renamed = await artifacts.UpdateArtifact(
        artifacts_pb2.UpdateArtifactRequest(
            artifact=artifacts_pb2.Artifact(
                id=created.id, title="Release notes", filename="ignored.txt"
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert (renamed.title, renamed.filename) == ("Release notes", "notes.md")
    assert renamed.latest_version == 1

    relabelled = await artifacts.UpdateArtifact(
        artifacts_pb2.UpdateArtifactRequest(
            artifact=artifacts_pb2.Artifact(id=created.id, content_type="text/plain"),
            update_mask=field_mask_pb2.FieldMask(paths=["content_type"]),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert relabelled.content_type == "text/plain"
    body = await artifacts.GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert body.content_type == "text/plain"

    bad_requests = [
        (["owner"], artifacts_pb2.Artifact(id=created.id), "update_mask"),
        (["title"], artifacts_pb2.Artifact(id=created.id, title=""), "artifact.title"),
        (
            ["content_type"],
            artifacts_pb2.Artifact(id=created.id, content_type="video/mp4"),
            "artifact.content_type",
        ),
        ([], artifacts_pb2.Artifact(id=created.id), "update_mask"),
    ]
    for paths, artifact, field in bad_requests:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await artifacts.UpdateArtifact(
                artifacts_pb2.UpdateArtifactRequest(
                    artifact=artifact, update_mask=field_mask_pb2.FieldMask(paths=paths)
                ),
                metadata=team.editor.metadata,
                timeout=DEADLINE,
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, paths
        assert field in field_violations(bad.value), paths


async def test_strangers_see_nothing_and_viewers_cannot_write(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifacts = stub(channel)
    created = await create(channel, team, b"secret = 1\n", filename="secret.py")
    stranger = team.stranger.metadata

    stranger_calls: list[Awaitable[object]] = [
        artifacts.GetArtifact(
            artifacts_pb2.GetArtifactRequest(artifact_id=created.id), metadata=stranger
        ),
        artifacts.GetArtifactContent(
            artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id), metadata=stranger
        ),
        artifacts.ListArtifacts(
            artifacts_pb2.ListArtifactsRequest(project_id=team.project_id), metadata=stranger
        ),
        artifacts.ListArtifactVersions(
            artifacts_pb2.ListArtifactVersionsRequest(artifact_id=created.id), metadata=stranger
        ),
        artifacts.DeleteArtifact(
            artifacts_pb2.DeleteArtifactRequest(artifact_id=created.id), metadata=stranger
        ),
    ]
    for call in stranger_calls:
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    # The same answer as for an artifact that does not exist.
    with pytest.raises(grpc.aio.AioRpcError) as absent:
        await artifacts.GetArtifact(
            artifacts_pb2.GetArtifactRequest(artifact_id="0190a000-0000-7000-8000-000000000000"),
            metadata=stranger,
        )
    assert error_info(absent.value).reason == "ARTIFACT_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as hidden_one:
        await artifacts.GetArtifact(
            artifacts_pb2.GetArtifactRequest(artifact_id=created.id), metadata=stranger
        )
    assert error_info(hidden_one.value).reason == "ARTIFACT_NOT_FOUND"

    viewer = team.viewer.metadata
    seen = await artifacts.GetArtifact(
        artifacts_pb2.GetArtifactRequest(artifact_id=created.id), metadata=viewer
    )
    assert seen.id == created.id
    viewer_writes: list[Awaitable[object]] = [
        artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=created.id, title="mine now"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=viewer,
        ),
        artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=created.id), content=b"x", base_version=1
            ),
            metadata=viewer,
        ),
        artifacts.CreateArtifact(
            artifacts_pb2.CreateArtifactRequest(
                project_id=team.project_id,
                artifact=artifacts_pb2.Artifact(filename="v.py"),
                content=b"v",
            ),
            metadata=viewer,
        ),
        artifacts.DeleteArtifact(
            artifacts_pb2.DeleteArtifactRequest(artifact_id=created.id), metadata=viewer
        ),
    ]
    for call in viewer_writes:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(denied.value).reason == "PROJECT_ROLE_TOO_LOW"

    unchanged = await artifacts.GetArtifact(
        artifacts_pb2.GetArtifactRequest(artifact_id=created.id), metadata=viewer
    )
    assert (unchanged.title, unchanged.latest_version) == (created.title, 1)


async def test_list_filters_newest_first_in_pages(channel: grpc.aio.Channel, team: Team) -> None:
    artifacts = stub(channel)
    conversation = (
        await agents_pb2_grpc.AgentServiceStub(channel).CreateConversation(
            agents_pb2.CreateConversationRequest(project_id=team.project_id),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    ).id
    made = [
        await create(channel, team, b"a = 1\n", filename="a.py"),
        await create(channel, team, b"<p>b</p>\n", filename="b.html"),
        await create(channel, team, b"c = 3\n", filename="c.py", conversation_id=conversation),
        await create(channel, team, b"d\n", filename="d.bin", content_type="application/zip"),
    ]
    assert made[1].kind == artifacts_pb2.ARTIFACT_KIND_HTML
    assert made[3].kind == artifacts_pb2.ARTIFACT_KIND_FILE

    async def ids(**filters: object) -> list[str]:
        found: list[str] = []
        token = ""
        while True:
            page = await artifacts.ListArtifacts(
                artifacts_pb2.ListArtifactsRequest(
                    project_id=team.project_id,
                    page_size=2,
                    page_token=token,
                    **filters,  # type: ignore[arg-type]
                ),
                metadata=team.viewer.metadata,
                timeout=DEADLINE,
            )
            found += [a.id for a in page.artifacts]
            token = page.next_page_token
            if not token:
                return found

    assert await ids() == [a.id for a in reversed(made)]
    assert await ids(language="") == [a.id for a in reversed(made)]
    assert await ids(kind=artifacts_pb2.ARTIFACT_KIND_HTML) == [made[1].id]
    assert await ids(conversation_id=conversation) == [made[2].id]

    first = await artifacts.ListArtifacts(
        artifacts_pb2.ListArtifactsRequest(project_id=team.project_id, page_size=1),
        metadata=team.viewer.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await artifacts.ListArtifacts(
            artifacts_pb2.ListArtifactsRequest(
                project_id=team.project_id,
                page_size=1,
                page_token=first.next_page_token,
                kind=artifacts_pb2.ARTIFACT_KIND_CODE,
            ),
            metadata=team.viewer.metadata,
        )
    assert replayed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_requests_name_each_field(channel: grpc.aio.Channel, team: Team) -> None:
    artifacts = stub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await artifacts.CreateArtifact(
            artifacts_pb2.CreateArtifactRequest(
                artifact=artifacts_pb2.Artifact(
                    filename="../etc/passwd",
                    content_type="not a type",
                    conversation_id="nope",
                    title="x" * 201,
                )
            ),
            metadata=team.editor.metadata,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {
        "project_id",
        "artifact.filename",
        "artifact.content_type",
        "artifact.conversation_id",
        "artifact.title",
    }
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await artifacts.GetArtifact(
            artifacts_pb2.GetArtifactRequest(artifact_id="not-an-id"),
            metadata=team.editor.metadata,
        )
    assert field_violations(malformed.value) == {"artifact_id": "must be an id (a UUID)"}


async def test_raw_content_through_envoy(
    channel: grpc.aio.Channel, team: Team, http: aiohttp.ClientSession
) -> None:
    page = b"<!doctype html>\n<h1>Hi \xe2\x9c\x93</h1>\n"
    created = await create(channel, team, page, filename="index.html")
    await stub(channel).UpdateArtifact(
        artifacts_pb2.UpdateArtifactRequest(
            artifact=artifacts_pb2.Artifact(id=created.id), content=b"<p>v2</p>\n", base_version=1
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    headers = {"authorization": f"Bearer {team.viewer.access_token}"}

    async with http.get(
        f"/v1/artifacts/{created.id}:content", params={"version": "1"}, headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/html"
        # A browser saves it rather than running it in the gateway's origin.
        assert response.headers["content-disposition"] == "attachment"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
        assert await response.read() == page
    async with http.get(f"/v1/artifacts/{created.id}:content", headers=headers) as latest:
        assert await latest.read() == b"<p>v2</p>\n"
    stranger = {"authorization": f"Bearer {team.stranger.access_token}"}
    async with http.get(f"/v1/artifacts/{created.id}:content", headers=stranger) as hidden:
        assert hidden.status == 404


async def test_download_urls_need_s3(channel: grpc.aio.Channel, team: Team) -> None:
    created = await create(channel, team, b"x = 1\n", filename="x.py")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(channel).GetDownloadUrl(
            artifacts_pb2.GetDownloadUrlRequest(artifact_id=created.id),
            metadata=team.viewer.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.value).reason == "PRESIGN_UNSUPPORTED"


async def test_generate_image_offline_makes_a_png_and_counts_usage(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifacts = stub(channel)
    request = artifacts_pb2.GenerateImageRequest(
        project_id=team.project_id,
        prompt="A lighthouse at dusk",
        size="640x360",
        style="watercolor",
        model="echo",
    )
    image = await artifacts.GenerateImage(request, metadata=team.editor.metadata, timeout=60)
    assert image.kind == artifacts_pb2.ARTIFACT_KIND_IMAGE
    assert image.origin == artifacts_pb2.ARTIFACT_ORIGIN_IMAGE_GENERATION
    assert image.content_type == "image/png"
    assert image.filename == "a-lighthouse-at-dusk.png"
    assert image.title == "A lighthouse at dusk"
    body = await artifacts.GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=image.id),
        metadata=team.viewer.metadata,
    )
    assert body.content_type == "image/png"
    assert png_size(body.data) == (640, 360)

    again = await artifacts.GenerateImage(request, metadata=team.editor.metadata, timeout=60)
    assert again.id != image.id
    assert again.sha256 == image.sha256  # deterministic, and stored once

    # Counted in the caller's usage, per model and day.
    usage = await agents_pb2_grpc.AgentServiceStub(channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.editor.metadata
    )
    assert sum(r.image_count for r in usage.records if r.model == "echo") == 2

    refusals = [
        (artifacts_pb2.GenerateImageRequest(project_id=team.project_id), {"prompt"}),
        (
            artifacts_pb2.GenerateImageRequest(project_id=team.project_id, prompt="p", size="huge"),
            {"size"},
        ),
        (
            artifacts_pb2.GenerateImageRequest(
                project_id=team.project_id, prompt="p", model="anthropic/claude-sonnet-5-5"
            ),
            {"model"},
        ),
    ]
    for bad, fields in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await artifacts.GenerateImage(bad, metadata=team.editor.metadata)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(refused.value)) == fields
    with pytest.raises(grpc.aio.AioRpcError) as keyless:
        await artifacts.GenerateImage(
            artifacts_pb2.GenerateImageRequest(
                project_id=team.project_id, prompt="p", model="gemini/gemini-2.5-flash-image"
            ),
            metadata=team.editor.metadata,
        )
    assert keyless.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await artifacts.GenerateImage(request, metadata=team.viewer.metadata)
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_deleting_the_project_removes_its_artifacts_and_blobs(
    channel: grpc.aio.Channel, team: Team, forge: ForgeServer
) -> None:
    view = BlobView.of(forge)
    content = f"only in {team.project_id}\n".encode()
    created = await create(channel, team, content, filename="only.txt")
    assert sha256(content) in await view.blobs()

    await projects_pb2_grpc.ProjectServiceStub(channel).DeleteProject(
        projects_pb2.DeleteProjectRequest(project_id=team.project_id),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )

    assert sha256(content) not in await view.blobs()
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub(channel).GetArtifact(
            artifacts_pb2.GetArtifactRequest(artifact_id=created.id),
            metadata=team.owner.metadata,
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_concurrent_updates_from_one_base_make_one_version(
    channel: grpc.aio.Channel, team: Team, forge: ForgeServer
) -> None:
    artifacts = stub(channel)
    created = await create(channel, team, b"v1\n", filename="race.txt")

    async def update(n: int) -> grpc.StatusCode:
        try:
            await artifacts.UpdateArtifact(
                artifacts_pb2.UpdateArtifactRequest(
                    artifact=artifacts_pb2.Artifact(id=created.id),
                    content=f"edit {n}\n".encode(),
                    base_version=1,
                ),
                metadata=team.editor.metadata,
                timeout=DEADLINE,
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    outcomes = await asyncio.gather(*(update(n) for n in range(6)))
    assert sorted(outcomes, key=str) == sorted(
        [grpc.StatusCode.OK] + [grpc.StatusCode.ABORTED] * 5, key=str
    )
    versions = await artifacts.ListArtifactVersions(
        artifacts_pb2.ListArtifactVersionsRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
    )
    assert [v.version for v in versions.versions] == [1, 2]
    # The losers' content, if it was stored before they lost, is gone again.
    stored = await BlobView.of(forge).blobs()
    assert [sha256(f"edit {n}\n".encode()) in stored for n in range(6)].count(True) == 1


async def test_plain_content_is_shown_in_place_and_never_sniffed(
    channel: grpc.aio.Channel, team: Team, http: aiohttp.ClientSession
) -> None:
    created = await create(channel, team, b"print('hi')\n", filename="hi.py")
    headers = {"authorization": f"Bearer {team.viewer.access_token}"}
    async with http.get(f"/v1/artifacts/{created.id}:content", headers=headers) as response:
        assert response.status == 200
        assert response.headers["content-disposition"] == "inline"
        assert response.headers["x-content-type-options"] == "nosniff"
    # Every gateway response says so, errors included.
    async with http.get("/v1/projects", headers={}) as refused:
        assert refused.status == 401
        assert refused.headers["x-content-type-options"] == "nosniff"


async def test_an_artifacts_sources_must_be_its_projects(
    channel: grpc.aio.Channel, team: Team
) -> None:
    agents = agents_pb2_grpc.AgentServiceStub(channel)

    async def conversation_in(project_id: str, account_metadata: object) -> str:
        created = await agents.CreateConversation(
            agents_pb2.CreateConversationRequest(project_id=project_id),
            metadata=account_metadata,  # type: ignore[arg-type]
            timeout=DEADLINE,
        )
        return created.id

    ours = await conversation_in(team.project_id, team.editor.metadata)
    other_team = await new_team(channel)
    theirs = await conversation_in(other_team.project_id, other_team.editor.metadata)

    linked = await create(channel, team, b"x = 1\n", conversation_id=ours)
    assert linked.conversation_id == ours
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await create(channel, team, b"x = 2\n", conversation_id=theirs)
    assert foreign.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(foreign.value) == {"artifact.conversation_id": "is not in the project"}
    with pytest.raises(grpc.aio.AioRpcError) as made_up:
        await create(channel, team, b"x = 3\n", run_id="01a248c6-23f3-7556-9f97-17ea93a47e0b")
    assert field_violations(made_up.value) == {"artifact.run_id": "is not in the project"}
