"""Artifact transfers through gRPC, one phase per run.

- `setup`: signs up, creates a project, and uploads then downloads a small artifact once
  (so the server has imported and warmed everything a transfer uses); prints the token and
  project for the next phases;
- `upload`: uploads `count` artifacts of `size` random bytes in `chunk`-byte messages
  (metadata announces the size and SHA-256); prints each upload's seconds and artifact id;
- `download`: downloads the given artifacts whole, checking size and SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc

from bench.loadgen.common import args, emit

PASSWORD = "Bench-Passw0rd"
Metadata = tuple[tuple[str, str], ...]


async def upload(
    stub: artifacts_pb2_grpc.ArtifactServiceAsyncStub,
    metadata: Metadata,
    project_id: str,
    content: bytes,
    sha256: str,
    chunk: int,
) -> artifacts_pb2.Artifact:
    async def requests() -> AsyncIterator[artifacts_pb2.UploadArtifactRequest]:
        yield artifacts_pb2.UploadArtifactRequest(
            metadata=artifacts_pb2.UploadArtifactMetadata(
                project_id=project_id,
                artifact=artifacts_pb2.Artifact(
                    title="bench blob",
                    filename=f"blob-{secrets.token_hex(3)}.bin",
                    content_type="application/octet-stream",
                ),
                size_bytes=len(content),
                sha256=sha256,
            )
        )
        view = memoryview(content)
        for offset in range(0, len(content), chunk):
            yield artifacts_pb2.UploadArtifactRequest(chunk=bytes(view[offset : offset + chunk]))

    artifact: artifacts_pb2.Artifact = await stub.UploadArtifact(
        requests(), metadata=metadata, timeout=120
    )
    return artifact


async def download(
    stub: artifacts_pb2_grpc.ArtifactServiceAsyncStub, metadata: Metadata, artifact_id: str
) -> int:
    digest = hashlib.sha256()
    size = 0
    expected: artifacts_pb2.ArtifactVersion | None = None
    call = stub.DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(artifact_id=artifact_id),
        metadata=metadata,
        timeout=120,
    )
    async for response in call:
        if response.WhichOneof("payload") == "metadata":
            expected = response.metadata
        else:
            digest.update(response.chunk)
            size += len(response.chunk)
    if expected is None or size != expected.size_bytes or digest.hexdigest() != expected.sha256:
        raise RuntimeError("the download does not match its metadata")
    return size


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def setup(channel: grpc.aio.Channel, chunk: int) -> dict[str, Any]:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    email = f"bench-artifacts-{secrets.token_hex(4)}@example.com"
    registered = await auth.Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=30
    )
    token = registered.tokens.access_token
    metadata = (("authorization", f"Bearer {token}"),)
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    project = await projects.CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="bench artifacts")),
        metadata=metadata,
        timeout=30,
    )
    stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    content = os.urandom(3 * chunk + 17)
    warm = await upload(stub, metadata, project.id, content, _sha(content), chunk)
    await download(stub, metadata, warm.id)
    return {"token": token, "project_id": project.id, "warm_id": warm.id}


async def main() -> None:
    params = args()
    chunk: int = params["chunk"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{params['port']}") as channel:
        if params["phase"] == "setup":
            emit(await setup(channel, chunk))
            return
        stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        metadata = (("authorization", f"Bearer {params['token']}"),)
        times: list[float] = []
        if params["phase"] == "upload":
            ids: list[str] = []
            for _ in range(params["count"]):
                content = os.urandom(params["size"])  # fresh bytes: no deduplication
                sha256 = _sha(content)
                started = time.perf_counter()
                artifact = await upload(
                    stub, metadata, params["project_id"], content, sha256, chunk
                )
                times.append(time.perf_counter() - started)
                if artifact.size_bytes != len(content):
                    raise RuntimeError("the uploaded artifact has the wrong size")
                ids.append(artifact.id)
            emit({"times": times, "ids": ids})
        else:
            sizes: list[int] = []
            for artifact_id in params["ids"]:
                started = time.perf_counter()
                sizes.append(await download(stub, metadata, artifact_id))
                times.append(time.perf_counter() - started)
            emit({"times": times, "sizes": sizes})


if __name__ == "__main__":
    asyncio.run(main())
