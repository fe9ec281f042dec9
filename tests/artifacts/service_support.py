"""Helpers of the ArtifactService tests: teams made through the real Auth and Project
services, stubs, chunked uploads and a look at what a server's blob store holds."""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc

from server.app import ForgeServer
from server.artifacts.storage import CHUNK_SIZE
from tests.fakes.s3 import MotoS3Server
from tests.support.accounts import Account, register
from tests.support.rpc import error_info

MiB = 1024 * 1024
DEADLINE = 60.0


@dataclass
class Team:
    project_id: str
    owner: Account
    editor: Account
    viewer: Account
    stranger: Account


async def new_team(channel: grpc.aio.Channel) -> Team:
    owner, editor, viewer, stranger = [await register(channel) for _ in range(4)]
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    project = await projects.CreateProject(
        projects_pb2.CreateProjectRequest(
            project=projects_pb2.Project(name=f"artifacts {secrets.token_hex(3)}")
        ),
        metadata=owner.metadata,
        timeout=DEADLINE,
    )
    for account, role in (
        (editor, projects_pb2.PROJECT_ROLE_EDITOR),
        (viewer, projects_pb2.PROJECT_ROLE_VIEWER),
    ):
        await projects.AddMember(
            projects_pb2.AddMemberRequest(project_id=project.id, email=account.email, role=role),
            metadata=owner.metadata,
            timeout=DEADLINE,
        )
    return Team(project.id, owner, editor, viewer, stranger)


def stub(channel: grpc.aio.Channel) -> artifacts_pb2_grpc.ArtifactServiceAsyncStub:
    return artifacts_pb2_grpc.ArtifactServiceStub(channel)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pseudo_random_chunks(total: int, seed: int, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """`total` reproducible bytes in pieces, made on demand (never all held at once)."""
    rnd = random.Random(seed)
    sent = 0
    while sent < total:
        size = min(chunk_size, total - sent)
        yield rnd.randbytes(size)
        sent += size


def digest_of(chunks: Iterator[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def upload_metadata(
    project_id: str,
    filename: str,
    *,
    size: int = 0,
    sha: str = "",
    content_type: str = "application/octet-stream",
) -> artifacts_pb2.UploadArtifactRequest:
    return artifacts_pb2.UploadArtifactRequest(
        metadata=artifacts_pb2.UploadArtifactMetadata(
            project_id=project_id,
            artifact=artifacts_pb2.Artifact(filename=filename, content_type=content_type),
            size_bytes=size,
            sha256=sha,
        )
    )


async def upload_requests(
    first: artifacts_pb2.UploadArtifactRequest,
    chunks: Iterator[bytes],
    sizes: list[int] | None = None,
) -> AsyncIterator[artifacts_pb2.UploadArtifactRequest]:
    yield first
    for chunk in chunks:
        if sizes is not None:
            sizes.append(len(chunk))
        yield artifacts_pb2.UploadArtifactRequest(chunk=chunk)


async def upload_refused(
    artifacts: Any,
    requests: AsyncIterator[artifacts_pb2.UploadArtifactRequest],
    metadata: Any,
    timeout: float,
) -> grpc.aio.AioRpcError:
    """Sends an upload the server is expected to refuse part-way and returns the server's
    status. A write racing the server's answer fails with grpc's own INTERNAL ("Failed
    execute_batch"), so writes are made one by one and the call's status is read after."""
    call = artifacts.UploadArtifact(metadata=metadata, timeout=timeout)
    try:
        async for request in requests:
            await call.write(request)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass  # the server ended the call while we were writing: its status says why
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the upload was expected to be refused")


def refused_for(error: grpc.aio.AioRpcError, reason: str) -> bool:
    """Whether `error` is the server refusing an upload for `reason`. When the server ends
    the call while the client is still writing, grpc-python's client reports its own failed
    write (INTERNAL, "Failed execute_batch") instead of the server's status; that is
    accepted here, and callers check what the server left behind."""
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return bool(error_info(error).reason == reason)
    debug = str(error.debug_error_string() or "")
    return error.code() == grpc.StatusCode.INTERNAL and "execute_batch" in debug


@dataclass
class BlobView:
    """What a server's blob store holds: blobs by SHA-256, and unfinished uploads."""

    root: Path | None = None
    moto: MotoS3Server | None = None
    bucket: str = ""
    prefix: str = ""

    @classmethod
    def of(cls, forge: ForgeServer, moto: MotoS3Server | None = None) -> BlobView:
        settings = forge.settings
        if settings.blob_store == "s3":
            assert moto is not None
            prefix = settings.s3_prefix.strip("/")
            return cls(moto=moto, bucket=settings.s3_bucket, prefix=f"{prefix}/" if prefix else "")
        return cls(root=settings.blob_dir or settings.data_dir / "blobs")

    async def blobs(self) -> set[str]:
        if self.root is not None:
            return await asyncio.to_thread(_local_blobs, self.root)
        keys, _ = await self._s3()
        return {key.rsplit("/", 1)[1] for key in keys if key.startswith(f"{self.prefix}blobs/")}

    async def unfinished(self) -> list[str]:
        """Temporary files (local), temporary objects and open multipart uploads (S3)."""
        if self.root is not None:
            tmp = self.root / "tmp"
            return await asyncio.to_thread(lambda: sorted(p.name for p in tmp.glob("*")))
        keys, uploads = await self._s3()
        return sorted([k for k in keys if k.startswith(f"{self.prefix}tmp/")] + uploads)

    async def _s3(self) -> tuple[list[str], list[str]]:
        assert self.moto is not None
        async with self.moto.client() as client:
            objects = await client.list_objects_v2(Bucket=self.bucket)
            uploads = await client.list_multipart_uploads(Bucket=self.bucket)
        keys = [o["Key"] for o in objects.get("Contents", [])]
        return keys, [f"multipart:{u['Key']}" for u in uploads.get("Uploads", [])]


def _local_blobs(root: Path) -> set[str]:
    """Blob files are named by their SHA-256 (64 hex digits); temporary files are not."""
    return {p.name for p in root.rglob("*") if p.is_file() and len(p.name) == 64}


def png_size(data: bytes) -> tuple[int, int]:
    """Checks the PNG's structure (signature, chunk CRCs, image data) and returns its size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks[kind] = body
        position += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)
    return width, height


def as_files(files: dict[str, bytes]) -> list[artifacts_pb2.ArtifactFile]:
    return [artifacts_pb2.ArtifactFile(path=path, content=data) for path, data in files.items()]


async def create_tree(
    channel: grpc.aio.Channel, team: Team, files: dict[str, bytes], **fields: object
) -> artifacts_pb2.Artifact:
    return await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(**fields),  # type: ignore[arg-type]
            files=as_files(files),
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )


async def update_tree(
    channel: grpc.aio.Channel, team: Team, artifact_id: str, files: dict[str, bytes], base: int
) -> artifacts_pb2.Artifact:
    return await stub(channel).UpdateArtifact(
        artifacts_pb2.UpdateArtifactRequest(
            artifact=artifacts_pb2.Artifact(id=artifact_id),
            files=as_files(files),
            base_version=base,
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
