"""Tree artifacts (multi-file projects) on the shared test server (local blob store): created
from several files at once, versioned, listed, read file by file, described by a manifest,
downloaded as zip and tar.gz archives through gRPC and through Envoy, refused when a path or
the request is bad (storing nothing), and deleted with the blobs no one else holds."""

from __future__ import annotations

import base64
import io
import json
import secrets
import tarfile
import zipfile
from collections.abc import AsyncIterable, Awaitable
from typing import TypeAlias

import aiohttp
import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2
from google.protobuf import field_mask_pb2

from server.app import ForgeServer
from tests.artifacts.service_support import (
    DEADLINE,
    BlobView,
    Team,
    as_files,
    create_tree,
    new_team,
    sha256,
    stub,
    update_tree,
)
from tests.support.rpc import error_info, field_violations

TREE_TYPE = "application/vnd.forge.tree+json"
Format: TypeAlias = artifacts_pb2.ArchiveFormat.ValueType


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


def app_files(marker: str) -> dict[str, bytes]:
    """A small React app; `marker` makes its bytes this test's own."""
    return {
        "package.json": b'{"name": "demo", "private": true}\n',
        "src/App.tsx": f"export default function App() {{ return <h1>{marker}</h1>; }}\n".encode(),
        "src/index.tsx": b'import App from "./App";\nconsole.log(App);\n',
    }


async def list_files(
    channel: grpc.aio.Channel, team: Team, artifact_id: str, version: int = 0
) -> list[artifacts_pb2.ArtifactFile]:
    listed = await stub(channel).ListArtifactFiles(
        artifacts_pb2.ListArtifactFilesRequest(artifact_id=artifact_id, version=version),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    return list(listed.files)


async def file_content(
    channel: grpc.aio.Channel, team: Team, artifact_id: str, path: str, version: int = 0
) -> bytes:
    body = await stub(channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(
            artifact_id=artifact_id, version=version, path=path
        ),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    return bytes(body.data)


async def archive_of(
    channel: grpc.aio.Channel,
    team: Team,
    artifact_id: str,
    archive_format: Format,
    version: int = 0,
) -> tuple[str, bytes, int]:
    """The archive's content type, bytes and number of messages."""
    call = stub(channel).DownloadArtifactArchive(
        artifacts_pb2.DownloadArtifactArchiveRequest(
            artifact_id=artifact_id, version=version, format=archive_format
        ),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    messages = [message async for message in call]
    return messages[0].content_type, b"".join(m.data for m in messages), len(messages)


async def drain(call: AsyncIterable[object]) -> None:
    async for _ in call:
        pass


def unpacked(archive_format: Format, data: bytes) -> dict[str, bytes]:
    if archive_format == artifacts_pb2.ARCHIVE_FORMAT_TAR_GZ:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            assert all(member.isfile() and member.mode == 0o644 for member in members)
            return {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every entry's CRC checks out
        return {name: archive.read(name) for name in archive.namelist()}


async def test_a_tree_lists_its_files_reads_each_and_describes_itself_by_a_manifest(
    channel: grpc.aio.Channel, team: Team
) -> None:
    files = app_files(secrets.token_hex(4))
    created = await create_tree(channel, team, files, filename="demo", language="typescript")
    assert created.kind == artifacts_pb2.ARTIFACT_KIND_TREE
    assert created.content_type == TREE_TYPE
    assert created.title == "demo"
    assert created.latest_version == 1
    assert created.size_bytes == sum(len(data) for data in files.values())

    listed = await list_files(channel, team, created.id)
    assert [f.path for f in listed] == ["package.json", "src/App.tsx", "src/index.tsx"]
    assert [(f.size_bytes, f.sha256) for f in listed] == [
        (len(files[f.path]), sha256(files[f.path])) for f in listed
    ]
    assert [f.content_type for f in listed] == [
        "application/json",
        "text/typescript",
        "text/typescript",
    ]
    assert all(f.content == b"" for f in listed)  # listings carry no content

    for path, data in files.items():
        assert await file_content(channel, team, created.id, path) == data
    body = await stub(channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id, path="src/App.tsx"),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert body.content_type == "text/typescript"

    # Without a path: the manifest, whose hash is the version's.
    manifest = await stub(channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert manifest.content_type == TREE_TYPE
    assert sha256(manifest.data) == created.sha256
    assert json.loads(manifest.data) == {
        "files": [
            {
                "path": f.path,
                "sizeBytes": f.size_bytes,
                "sha256": f.sha256,
                "contentType": f.content_type,
            }
            for f in listed
        ]
    }
    assert b" " not in manifest.data.replace(b"private", b"")  # canonical: no whitespace

    # A file streams with metadata describing it.
    call = stub(channel).DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(artifact_id=created.id, path="src/index.tsx"),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    messages = [message async for message in call]
    assert messages[0].metadata.sha256 == sha256(files["src/index.tsx"])
    assert messages[0].metadata.size_bytes == len(files["src/index.tsx"])
    assert messages[0].metadata.version == 1
    assert b"".join(m.chunk for m in messages[1:]) == files["src/index.tsx"]

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await file_content(channel, team, created.id, "src/Missing.tsx")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "ARTIFACT_FILE_NOT_FOUND"
    missing_file = stub(channel).DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(artifact_id=created.id, path="src"),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    with pytest.raises(grpc.aio.AioRpcError) as missing_stream:
        await drain(missing_file)
    assert error_info(missing_stream.value).reason == "ARTIFACT_FILE_NOT_FOUND"


async def test_a_new_version_keeps_the_old_one_and_stores_unchanged_files_once(
    channel: grpc.aio.Channel, team: Team, forge: ForgeServer
) -> None:
    view = BlobView.of(forge)
    first = app_files(secrets.token_hex(4))
    created = await create_tree(channel, team, first, filename="demo")
    second = dict(first, **{"src/App.tsx": b"export default () => null;\n// v2\n"})
    updated = await update_tree(channel, team, created.id, second, base=1)
    assert updated.latest_version == 2
    assert updated.size_bytes == sum(len(data) for data in second.values())
    assert updated.sha256 != created.sha256

    assert (
        await file_content(channel, team, created.id, "src/App.tsx", version=1)
        == first["src/App.tsx"]
    )
    assert await file_content(channel, team, created.id, "src/App.tsx") == second["src/App.tsx"]
    v1 = {f.path: f.sha256 for f in await list_files(channel, team, created.id, version=1)}
    v2 = {f.path: f.sha256 for f in await list_files(channel, team, created.id)}
    assert v1["src/index.tsx"] == v2["src/index.tsx"]
    assert v1["src/App.tsx"] != v2["src/App.tsx"]

    # Content-addressed: one blob per distinct file, and one per manifest.
    stored = await view.blobs()
    distinct = {sha256(data) for data in [*first.values(), *second.values()]}
    assert len(distinct) == 4
    assert distinct <= stored
    assert {created.sha256, updated.sha256} <= stored

    versions = await stub(channel).ListArtifactVersions(
        artifacts_pb2.ListArtifactVersionsRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [(v.version, v.sha256, v.content_type) for v in versions.versions] == [
        (1, created.sha256, TREE_TYPE),
        (2, updated.sha256, TREE_TYPE),
    ]

    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await update_tree(channel, team, created.id, first, base=1)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert error_info(stale.value).reason == "VERSION_CONFLICT"


async def test_file_listings_come_in_pages_that_stay_on_one_version(
    channel: grpc.aio.Channel, team: Team
) -> None:
    files = {f"src/{name}.ts": f"export const {name} = 1;\n".encode() for name in "edcba"}
    created = await create_tree(channel, team, files, filename="pages")
    artifacts = stub(channel)
    first = await artifacts.ListArtifactFiles(
        artifacts_pb2.ListArtifactFilesRequest(artifact_id=created.id, page_size=2),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    # A new version meanwhile: the listing goes on with the version it started on.
    await update_tree(channel, team, created.id, {"only.ts": b"x\n"}, base=1)
    paths = [f.path for f in first.files]
    token = first.next_page_token
    while token:
        page = await artifacts.ListArtifactFiles(
            artifacts_pb2.ListArtifactFilesRequest(
                artifact_id=created.id, page_size=2, page_token=token
            ),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
        paths += [f.path for f in page.files]
        token = page.next_page_token
    assert paths == sorted(files)
    assert [f.path for f in await list_files(channel, team, created.id)] == ["only.ts"]


async def test_a_single_file_artifact_lists_and_archives_as_its_one_file(
    channel: grpc.aio.Channel, team: Team
) -> None:
    content = f"print({secrets.token_hex(4)!r})\n".encode()
    created = await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(filename="tools/main.py"),
            content=content,
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    listed = await list_files(channel, team, created.id)
    assert [(f.path, f.size_bytes, f.sha256, f.content_type) for f in listed] == [
        ("tools/main.py", len(content), sha256(content), "text/x-python")
    ]
    assert await file_content(channel, team, created.id, "tools/main.py") == content
    for archive_format in (artifacts_pb2.ARCHIVE_FORMAT_ZIP, artifacts_pb2.ARCHIVE_FORMAT_TAR_GZ):
        _, data, _ = await archive_of(channel, team, created.id, archive_format)
        assert unpacked(archive_format, data) == {"tools/main.py": content}

    nameless = await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(title="notes", content_type="text/plain"),
            content=b"plain\n",
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert [f.path for f in await list_files(channel, team, nameless.id)] == ["content"]


@pytest.mark.parametrize(
    ("archive_format", "content_type"),
    [
        (artifacts_pb2.ARCHIVE_FORMAT_UNSPECIFIED, "application/zip"),
        (artifacts_pb2.ARCHIVE_FORMAT_ZIP, "application/zip"),
        (artifacts_pb2.ARCHIVE_FORMAT_TAR_GZ, "application/gzip"),
    ],
)
async def test_archives_unpack_to_the_versions_files(
    channel: grpc.aio.Channel, team: Team, archive_format: Format, content_type: str
) -> None:
    files = app_files(secrets.token_hex(4))
    # A file larger than one chunk, incompressible, so the archive streams in several messages.
    files["public/noise.bin"] = secrets.token_bytes(300 * 1024)
    files["public/logo.png"] = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(1000)
    files["docs/" + "deep/" * 30 + "long-name.md"] = b"# a path longer than 100 bytes\n"
    created = await create_tree(channel, team, files, filename="demo")
    await update_tree(channel, team, created.id, {"v2.txt": b"second\n"}, base=1)

    received_type, data, messages = await archive_of(
        channel, team, created.id, archive_format, version=1
    )
    assert received_type == content_type
    assert messages > 2
    assert unpacked(archive_format, data) == files
    _, latest, _ = await archive_of(channel, team, created.id, archive_format)
    assert unpacked(archive_format, latest) == {"v2.txt": b"second\n"}


async def test_archives_and_files_through_envoy(
    channel: grpc.aio.Channel, team: Team, http: aiohttp.ClientSession
) -> None:
    files = app_files(secrets.token_hex(4))
    files["public/noise.bin"] = secrets.token_bytes(200 * 1024)
    editor = {"authorization": f"Bearer {team.editor.access_token}"}
    viewer = {"authorization": f"Bearer {team.viewer.access_token}"}
    body = {
        "artifact": {"filename": "demo app"},
        "files": [
            {"path": path, "content": base64.b64encode(data).decode()}
            for path, data in files.items()
        ],
    }
    async with http.post(
        f"/v1/projects/{team.project_id}/artifacts", json=body, headers=editor
    ) as response:
        assert response.status == 200, await response.text()
        created = await response.json()
    assert created["kind"] == "ARTIFACT_KIND_TREE"
    artifact_id = created["id"]

    async with http.get(f"/v1/artifacts/{artifact_id}/files", headers=viewer) as response:
        assert response.status == 200
        listed = await response.json()
    assert [f["path"] for f in listed["files"]] == sorted(files)
    assert all("content" not in f for f in listed["files"])

    async with http.get(
        f"/v1/artifacts/{artifact_id}:content", params={"path": "src/App.tsx"}, headers=viewer
    ) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/typescript"
        assert await response.read() == files["src/App.tsx"]
    async with http.get(
        f"/v1/artifacts/{artifact_id}:content", params={"path": "nope.ts"}, headers=viewer
    ) as response:
        assert response.status == 404

    for query, content_type, archive_format in (
        ({}, "application/zip", artifacts_pb2.ARCHIVE_FORMAT_ZIP),
        (
            {"format": "ARCHIVE_FORMAT_TAR_GZ"},
            "application/gzip",
            artifacts_pb2.ARCHIVE_FORMAT_TAR_GZ,
        ),
    ):
        async with http.get(
            f"/v1/artifacts/{artifact_id}:archive", params=query, headers=viewer
        ) as response:
            assert response.status == 200
            assert response.headers["content-type"] == content_type
            extension = "zip" if archive_format == artifacts_pb2.ARCHIVE_FORMAT_ZIP else "tar.gz"
            assert response.headers["content-disposition"] == (
                f'attachment; filename="demo_app.{extension}"'
            )
            data = await response.read()
        # The raw archive, not JSON or server-sent events.
        assert unpacked(archive_format, data) == files

    stranger = {"authorization": f"Bearer {team.stranger.access_token}"}
    async with http.get(f"/v1/artifacts/{artifact_id}:archive", headers=stranger) as hidden:
        assert hidden.status == 404


def _bad_requests(
    project_id: str, marker: bytes
) -> list[tuple[str, dict[str, str], artifacts_pb2.CreateArtifactRequest]]:
    """(what, expected field violations, request) of trees the server must refuse."""

    def tree(*paths: str, **fields: object) -> artifacts_pb2.CreateArtifactRequest:
        return artifacts_pb2.CreateArtifactRequest(
            project_id=project_id,
            artifact=artifacts_pb2.Artifact(filename="bad", **fields),  # type: ignore[arg-type]
            files=[
                artifacts_pb2.ArtifactFile(path=path, content=marker + path.encode())
                for path in paths
            ],
        )

    both = tree("a.txt")
    both.content = marker
    return [
        ("duplicate", {"files[2].path": "repeats files[0].path"}, tree("a.txt", "b.txt", "a.txt")),
        (
            "parent",
            {"files[1].path": "must not have empty, '.' or '..' segments"},
            tree("a.txt", "../x"),
        ),
        ("absolute", {"files[0].path": "must be relative (no leading '/')"}, tree("/abs")),
        (
            "backslash",
            {"files[0].path": "must not contain control characters or backslashes"},
            tree("src\\x.ts"),
        ),
        (
            "file and directory",
            {"files[0].path": "is also the directory of other files"},
            tree("src", "src/x.ts"),
        ),
        (
            "empty",
            {"files": "a tree artifact needs at least one file"},
            tree(kind=artifacts_pb2.ARTIFACT_KIND_TREE),
        ),
        (
            "content and files",
            {"content": "must be empty when `files` are set (or use `content`)"},
            both,
        ),
        (
            "other kind",
            {"artifact.kind": "must be unset or TREE when `files` are set"},
            tree("a.txt", kind=artifacts_pb2.ARTIFACT_KIND_CODE),
        ),
        (
            "too many",
            {"files": "must hold at most 2000 files"},
            tree(*(f"f{n}.txt" for n in range(2001))),
        ),
    ]


async def test_bad_trees_are_refused_by_field_and_store_nothing(
    channel: grpc.aio.Channel, team: Team, forge: ForgeServer
) -> None:
    view = BlobView.of(forge)
    marker = secrets.token_hex(8).encode()
    before = await view.blobs()
    for what, expected, request in _bad_requests(team.project_id, marker):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub(channel).CreateArtifact(
                request, metadata=team.editor.metadata, timeout=DEADLINE
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert field_violations(refused.value) == expected, what
    assert await view.blobs() == before
    listed = await stub(channel).ListArtifacts(
        artifacts_pb2.ListArtifactsRequest(project_id=team.project_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert list(listed.artifacts) == []


async def test_a_tree_stays_a_tree_and_a_file_never_becomes_one(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifacts = stub(channel)
    tree = await create_tree(channel, team, app_files(secrets.token_hex(4)), filename="demo")
    single = await artifacts.CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(filename="one.py"),
            content=b"x = 1\n",
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    refusals: list[tuple[Awaitable[object], dict[str, str]]] = [
        (
            artifacts.UpdateArtifact(
                artifacts_pb2.UpdateArtifactRequest(
                    artifact=artifacts_pb2.Artifact(id=tree.id), content=b"flat", base_version=1
                ),
                metadata=team.editor.metadata,
            ),
            {"content": "the artifact is a tree: send its files in `files`"},
        ),
        (
            artifacts.UpdateArtifact(
                artifacts_pb2.UpdateArtifactRequest(
                    artifact=artifacts_pb2.Artifact(id=single.id),
                    files=[artifacts_pb2.ArtifactFile(path="a.py", content=b"a")],
                    base_version=1,
                ),
                metadata=team.editor.metadata,
            ),
            {"files": "the artifact is not a tree: send its bytes in `content`"},
        ),
        (
            artifacts.UpdateArtifact(
                artifacts_pb2.UpdateArtifactRequest(
                    artifact=artifacts_pb2.Artifact(
                        id=single.id, kind=artifacts_pb2.ARTIFACT_KIND_TREE
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["kind"]),
                ),
                metadata=team.editor.metadata,
            ),
            {
                "artifact.kind": "a tree stays a tree and other artifacts never become one: "
                "create a new artifact"
            },
        ),
    ]
    for call, expected in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == expected

    # Nor can content be uploaded to a tree, or uploaded as one.
    for metadata, field in (
        (artifacts_pb2.UploadArtifactMetadata(artifact_id=tree.id, base_version=1), "artifact_id"),
        (
            artifacts_pb2.UploadArtifactMetadata(
                project_id=team.project_id,
                artifact=artifacts_pb2.Artifact(
                    filename="x", kind=artifacts_pb2.ARTIFACT_KIND_TREE
                ),
            ),
            "artifact.kind",
        ),
    ):
        upload = artifacts.UploadArtifact(
            iter(
                [
                    artifacts_pb2.UploadArtifactRequest(metadata=metadata),
                    artifacts_pb2.UploadArtifactRequest(chunk=b"flat"),
                ]
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused_upload:
            await upload
        assert refused_upload.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(refused_upload.value)) == [f"metadata.{field}"]

    # Metadata of a tree still changes.
    renamed = await artifacts.UpdateArtifact(
        artifacts_pb2.UpdateArtifactRequest(
            artifact=artifacts_pb2.Artifact(id=tree.id, title="Renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert (renamed.title, renamed.kind, renamed.latest_version) == (
        "Renamed",
        artifacts_pb2.ARTIFACT_KIND_TREE,
        1,
    )


async def test_deleting_a_tree_removes_only_the_blobs_no_one_else_holds(
    channel: grpc.aio.Channel, team: Team, forge: ForgeServer
) -> None:
    view = BlobView.of(forge)
    shared = f"export const shared = {secrets.token_hex(4)!r};\n".encode()
    own = f"export const own = {secrets.token_hex(4)!r};\n".encode()
    doomed = await create_tree(channel, team, {"shared.ts": shared, "own.ts": own}, filename="a")
    keeper = await create_tree(channel, team, {"lib/shared.ts": shared}, filename="b")
    assert {sha256(shared), sha256(own), doomed.sha256, keeper.sha256} <= await view.blobs()

    await stub(channel).DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(artifact_id=doomed.id),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    stored = await view.blobs()
    assert sha256(own) not in stored
    assert doomed.sha256 not in stored
    assert {sha256(shared), keeper.sha256} <= stored
    assert await file_content(channel, team, keeper.id, "lib/shared.ts") == shared


async def test_viewers_read_trees_and_only_editors_write_them(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifacts = stub(channel)
    files = app_files(secrets.token_hex(4))
    viewer, stranger = team.viewer.metadata, team.stranger.metadata
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await artifacts.CreateArtifact(
            artifacts_pb2.CreateArtifactRequest(
                project_id=team.project_id,
                artifact=artifacts_pb2.Artifact(filename="demo"),
                files=as_files(files),
            ),
            metadata=viewer,
            timeout=DEADLINE,
        )
    assert error_info(denied.value).reason == "PROJECT_ROLE_TOO_LOW"

    created = await create_tree(channel, team, files, filename="demo")
    with pytest.raises(grpc.aio.AioRpcError) as denied_update:
        await artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=created.id),
                files=as_files(files),
                base_version=1,
            ),
            metadata=viewer,
            timeout=DEADLINE,
        )
    assert error_info(denied_update.value).reason == "PROJECT_ROLE_TOO_LOW"

    assert len(await list_files(channel, team, created.id)) == 3
    assert await file_content(channel, team, created.id, "package.json") == files["package.json"]
    _, data, _ = await archive_of(channel, team, created.id, artifacts_pb2.ARCHIVE_FORMAT_ZIP)
    assert unpacked(artifacts_pb2.ARCHIVE_FORMAT_ZIP, data) == files

    hidden_calls: list[Awaitable[object]] = [
        artifacts.ListArtifactFiles(
            artifacts_pb2.ListArtifactFilesRequest(artifact_id=created.id), metadata=stranger
        ),
        artifacts.GetArtifactContent(
            artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id, path="package.json"),
            metadata=stranger,
        ),
    ]
    for call in hidden_calls:
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call
        assert error_info(hidden.value).reason == "ARTIFACT_NOT_FOUND"
    hidden_stream = artifacts.DownloadArtifactArchive(
        artifacts_pb2.DownloadArtifactArchiveRequest(artifact_id=created.id), metadata=stranger
    )
    with pytest.raises(grpc.aio.AioRpcError) as hidden_archive:
        await drain(hidden_stream)
    assert error_info(hidden_archive.value).reason == "ARTIFACT_NOT_FOUND"
