"""Content streamed in and out through ArtifactService, on both blob stores: two servers of
this module's own (own databases), one on a local directory, one on S3 (moto on loopback).
Large uploads stream in 64 KiB messages and download as 64 KiB chunks; failed, cancelled
and oversized uploads leave no row and no blob; identical content is stored once."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2
from google.protobuf import duration_pb2

from server.app import ForgeServer
from server.artifacts.storage import CHUNK_SIZE
from server.db.embedded import EmbeddedPostgres
from tests.artifacts.conftest import PART_SIZE, s3_settings
from tests.artifacts.service_support import (
    DEADLINE,
    BlobView,
    MiB,
    Team,
    digest_of,
    new_team,
    pseudo_random_chunks,
    refused_for,
    sha256,
    stub,
    upload_metadata,
    upload_refused,
    upload_requests,
)
from tests.conftest import make_settings
from tests.fakes.s3 import MotoS3Server
from tests.support.rpc import error_info
from tests.support.waiting import eventually

LIMIT = 21 * MiB
BIG = 20 * MiB


@dataclass
class Target:
    kind: str
    forge: ForgeServer
    channel: grpc.aio.Channel
    view: BlobView
    team: Team


async def _start(database_url: str, data_dir: Path, **overrides: object) -> ForgeServer:
    app = ForgeServer(
        make_settings(
            database_url,
            data_dir,
            max_upload_bytes=LIMIT,
            echo_token_delay_ms=0.0,
            **overrides,
        )
    )
    await app.start()
    return app


@pytest.fixture(scope="module")
async def targets(
    postgres: EmbeddedPostgres,
    moto_s3: MotoS3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, Target]]:
    bucket = await moto_s3.create_bucket()
    s3 = s3_settings(moto_s3, bucket)
    s3_overrides = {name: getattr(s3, name) for name in s3.model_fields_set}
    local_db, s3_db = await asyncio.gather(
        postgres.ensure_database("forge_artifacts_local"),
        postgres.ensure_database("forge_artifacts_s3"),
    )
    servers = {
        "local": await _start(local_db, tmp_path_factory.mktemp("artifacts-local")),
        "s3": await _start(s3_db, tmp_path_factory.mktemp("artifacts-s3"), **s3_overrides),
    }
    channels = {
        kind: grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") for kind, app in servers.items()
    }
    try:
        made = {}
        for kind, app in servers.items():
            team = await new_team(channels[kind])
            view = BlobView.of(app, moto_s3)
            made[kind] = Target(kind, app, channels[kind], view, team)
        yield made
    finally:
        for chan in channels.values():
            await chan.close()
        for app in servers.values():
            await app.stop(grace=0)


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, targets: dict[str, Target]) -> Target:
    return targets[request.param]


async def artifact_count(target: Target) -> int:
    listed = await stub(target.channel).ListArtifacts(
        artifacts_pb2.ListArtifactsRequest(project_id=target.team.project_id, page_size=1000),
        metadata=target.team.viewer.metadata,
        timeout=DEADLINE,
    )
    return len(listed.artifacts)


async def test_20_mib_streams_up_and_down_byte_exact(target: Target) -> None:
    team = target.team
    expected = digest_of(pseudo_random_chunks(BIG, seed=20))
    sent: list[int] = []
    tracemalloc.start()
    try:
        artifact = await stub(target.channel).UploadArtifact(
            upload_requests(
                upload_metadata(team.project_id, "big.bin", size=BIG, sha=expected),
                pseudo_random_chunks(BIG, seed=20),
                sent,
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (artifact.sha256, artifact.size_bytes) == (expected, BIG)
    assert artifact.origin == artifacts_pb2.ARTIFACT_ORIGIN_UPLOAD
    assert artifact.kind == artifacts_pb2.ARTIFACT_KIND_FILE
    assert len(sent) == BIG // CHUNK_SIZE  # never one big message
    assert max(sent) == CHUNK_SIZE
    # Client and server share this process: neither held the file (S3 buffers one part).
    budget = 4 * MiB if target.kind == "local" else PART_SIZE + 4 * MiB
    assert peak < budget, f"peak {peak / MiB:.1f} MiB while uploading {BIG // MiB} MiB"

    call = stub(target.channel).DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(artifact_id=artifact.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    messages = aiter(call)
    first = await anext(messages)
    assert first.WhichOneof("payload") == "metadata"
    assert (first.metadata.version, first.metadata.size_bytes) == (1, BIG)
    expected_chunks = pseudo_random_chunks(BIG, seed=20)
    count = 0
    async for message in messages:
        assert message.WhichOneof("payload") == "chunk"
        assert len(message.chunk) <= CHUNK_SIZE
        assert message.chunk == next(expected_chunks)  # byte-exact, in order
        count += 1
    assert count == BIG // CHUNK_SIZE

    # Resuming from an offset sends only the rest.
    tail = b"".join(
        [
            m.chunk
            async for m in stub(target.channel).DownloadArtifact(
                artifacts_pb2.DownloadArtifactRequest(artifact_id=artifact.id, offset=BIG - 1000),
                metadata=team.viewer.metadata,
                timeout=DEADLINE,
            )
            if m.WhichOneof("payload") == "chunk"
        ]
    )
    last = b""
    for chunk in pseudo_random_chunks(BIG, seed=20):
        last = chunk
    assert tail == last[-1000:]


async def test_an_upload_cancelled_halfway_leaves_no_row_and_no_blob(target: Target) -> None:
    team = target.team
    before_rows, before_blobs = await artifact_count(target), await target.view.blobs()
    stop = asyncio.Event()

    async def requests() -> AsyncIterator[artifacts_pb2.UploadArtifactRequest]:
        yield upload_metadata(team.project_id, "half.bin", size=12 * MiB)
        for index, chunk in enumerate(pseudo_random_chunks(12 * MiB, seed=7)):
            if index * CHUNK_SIZE == 6 * MiB:  # past the first S3 part
                await stop.wait()  # a client that goes quiet; then the call is cancelled
            yield artifacts_pb2.UploadArtifactRequest(chunk=chunk)

    call = stub(target.channel).UploadArtifact(
        requests(), metadata=team.editor.metadata, timeout=DEADLINE
    )
    await eventually(target.view.unfinished, timeout=DEADLINE)  # the server is storing it
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    async def cleaned_up() -> bool:
        return not await target.view.unfinished()

    await eventually(cleaned_up, timeout=DEADLINE)
    assert await target.view.blobs() == before_blobs
    assert await artifact_count(target) == before_rows


async def test_uploads_over_the_limit_leave_nothing(target: Target) -> None:
    team = target.team
    artifacts = stub(target.channel)
    before_rows, before_blobs = await artifact_count(target), await target.view.blobs()

    # Announced too large: refused before a byte is stored.
    announced = await upload_refused(
        artifacts,
        upload_requests(upload_metadata(team.project_id, "huge.bin", size=LIMIT + 1), iter(())),
        team.editor.metadata,
        DEADLINE,
    )
    assert announced.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(announced).reason == "UPLOAD_TOO_LARGE"

    # Not announced: cut off as soon as it passes the limit.
    streamed = await upload_refused(
        artifacts,
        upload_requests(
            upload_metadata(team.project_id, "huge.bin"),
            pseudo_random_chunks(LIMIT + MiB, seed=2),
        ),
        team.editor.metadata,
        DEADLINE,
    )
    assert refused_for(streamed, "UPLOAD_TOO_LARGE"), streamed

    # Announced small, then more sent; and a wrong hash.
    for metadata in (
        upload_metadata(team.project_id, "liar.bin", size=MiB),
        upload_metadata(team.project_id, "liar.bin", sha="0" * 64),
    ):
        lied = await upload_refused(
            artifacts,
            upload_requests(metadata, pseudo_random_chunks(2 * MiB, seed=3)),
            team.editor.metadata,
            DEADLINE,
        )
        assert refused_for(lied, "CHECKSUM_MISMATCH"), lied

    # Clean-up may finish just after the error reached the client (under load, S3 aborts
    # race the response): wait for it with a deadline rather than sampling once.
    async def left_behind() -> bool:
        return (
            await target.view.unfinished() == []
            and await target.view.blobs() == before_blobs
            and await artifact_count(target) == before_rows
        )

    await eventually(left_behind, timeout=15)


async def test_upload_refuses_types_off_the_allow_list(target: Target) -> None:
    team = target.team
    refused = await upload_refused(
        stub(target.channel),
        upload_requests(
            upload_metadata(team.project_id, "movie.mp4", content_type="video/mp4"),
            iter([b"not a movie"]),
        ),
        team.editor.metadata,
        DEADLINE,
    )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_metadata = await upload_refused(
        stub(target.channel),
        upload_requests(artifacts_pb2.UploadArtifactRequest(chunk=b"x"), iter([])),
        team.editor.metadata,
        DEADLINE,
    )
    assert no_metadata.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await target.view.unfinished() == []


async def test_an_upload_can_be_the_next_version(target: Target) -> None:
    team = target.team
    artifacts = stub(target.channel)
    first = await artifacts.UploadArtifact(
        upload_requests(
            upload_metadata(team.project_id, "data.csv", content_type="text/csv"),
            iter([b"a,b\n", b"1,2\n"]),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert (first.content_type, first.kind) == ("text/csv", artifacts_pb2.ARTIFACT_KIND_FILE)

    def next_version(base: int) -> artifacts_pb2.UploadArtifactRequest:
        return artifacts_pb2.UploadArtifactRequest(
            metadata=artifacts_pb2.UploadArtifactMetadata(artifact_id=first.id, base_version=base)
        )

    second = await artifacts.UploadArtifact(
        upload_requests(next_version(1), iter([b"a,b\n3,4\n"])),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert (second.id, second.latest_version, second.content_type) == (first.id, 2, "text/csv")
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await artifacts.UploadArtifact(
            upload_requests(next_version(1), iter([b"a,b\n5,6\n"])),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert error_info(stale.value).reason == "VERSION_CONFLICT"
    assert sha256(b"a,b\n5,6\n") not in await target.view.blobs()


async def test_identical_content_is_stored_once_and_outlives_one_delete(target: Target) -> None:
    team = target.team
    artifacts = stub(target.channel)
    content = f"shared by two artifacts on {target.kind}\n".encode()

    async def create(name: str) -> artifacts_pb2.Artifact:
        return await artifacts.CreateArtifact(
            artifacts_pb2.CreateArtifactRequest(
                project_id=team.project_id,
                artifact=artifacts_pb2.Artifact(filename=name),
                content=content,
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )

    before = await target.view.blobs()
    one, two = await create("one.txt"), await create("two.txt")
    assert one.sha256 == two.sha256 == sha256(content)
    assert await target.view.blobs() == before | {one.sha256}  # one blob, not two

    await artifacts.DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(artifact_id=one.id),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert one.sha256 in await target.view.blobs()
    body = await artifacts.GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=two.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert body.data == content

    await artifacts.DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(artifact_id=two.id),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert await target.view.blobs() == before


async def test_presigned_urls_download_with_plain_http(targets: dict[str, Target]) -> None:
    target = targets["s3"]
    team = target.team
    artifacts = stub(target.channel)
    content = b"<svg xmlns='http://www.w3.org/2000/svg'/>\n"
    created = await artifacts.CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(filename="assets/logo.svg"),
            content=content,
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert created.content_type == "image/svg+xml"
    response = await artifacts.GetDownloadUrl(
        artifacts_pb2.GetDownloadUrlRequest(
            artifact_id=created.id, ttl=duration_pb2.Duration(seconds=120)
        ),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    remaining = response.expire_time.ToSeconds() - created.create_time.ToSeconds()
    assert 100 <= remaining <= 180

    async with aiohttp.ClientSession() as plain, plain.get(response.url) as download:
        assert download.status == 200
        assert await download.read() == content
        assert download.headers["content-type"] == "image/svg+xml"
        assert 'filename="logo.svg"' in download.headers["content-disposition"]

    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await artifacts.GetDownloadUrl(
            artifacts_pb2.GetDownloadUrlRequest(
                artifact_id=created.id, ttl=duration_pb2.Duration(seconds=8 * 24 * 3600)
            ),
            metadata=team.viewer.metadata,
        )
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
