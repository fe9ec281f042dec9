"""S3 gone under a running server: the calls that need it answer UNAVAILABLE
BLOB_STORE_UNAVAILABLE with a RetryInfo, within seconds, and a download cut mid-stream ends
with the same status; ArtifactService health goes NOT_SERVING (the rest of the server stays
SERVING). S3 back on the same port: health SERVING, the same calls succeed without a
restart, and nothing stored before the outage is lost.

The server reaches moto through a TCP relay of this test: cutting it closes the port and
every connection through it, which is what a client sees of an S3 that went away; moto
itself (which keeps objects in memory) keeps running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from forge.artifacts.v1 import artifacts_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import ForgeServer
from server.artifacts.storage.s3errors import is_unreachable
from server.db.embedded import EmbeddedPostgres
from tests.artifacts.conftest import s3_settings
from tests.artifacts.service_support import (
    MiB,
    Team,
    digest_of,
    new_team,
    pseudo_random_chunks,
    stub,
    upload_metadata,
    upload_requests,
)
from tests.conftest import make_settings
from tests.fakes.s3 import MotoS3Server
from tests.support.rpc import error_info
from tests.test_database_unavailable import NOT_SERVING, SERVING, HealthWatch, retry_delay

ARTIFACTS = "forge.artifacts.v1.ArtifactService"
DEADLINE = 30.0
"""Far above what a call against a gone S3 takes (seconds): only a hang reaches it."""
Download = artifacts_pb2.DownloadArtifactResponse
BIG = 24 * MiB
"""More than the relay, the sockets and HTTP/2 windows hold, so a download of it is still
reading from S3 when S3 goes."""


class Relay:
    """Loopback TCP relay to `target_port`. `cut()` closes its port and every connection
    through it; `restore()` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            s3_in, s3 = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            client.transport.abort()
            return
        self._links.update((client, s3))
        await asyncio.gather(_pipe(client_in, s3), _pipe(s3_in, client))
        self._links.difference_update((client, s3))
        client.transport.abort()
        s3.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()


@pytest.fixture
async def relay(moto_s3: MotoS3Server) -> AsyncIterator[Relay]:
    relay = Relay(moto_s3.port)
    await relay.restore()
    try:
        yield relay
    finally:
        with contextlib.suppress(AssertionError):
            await relay.cut()


@pytest.fixture
async def forge_on_relay(
    postgres: EmbeddedPostgres, moto_s3: MotoS3Server, relay: Relay, tmp_path: Path
) -> AsyncIterator[ForgeServer]:
    bucket = await moto_s3.create_bucket()
    s3 = s3_settings(moto_s3, bucket, s3_endpoint_url=relay.endpoint_url)
    overrides = {name: getattr(s3, name) for name in s3.model_fields_set}
    url = await postgres.ensure_database("forge_blob_outage")
    settings = make_settings(url, tmp_path / "data", blob_store_probe_seconds=0.5, **overrides)
    app = ForgeServer(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


def assert_blob_store_unavailable(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    assert error_info(error).reason == "BLOB_STORE_UNAVAILABLE"
    assert retry_delay(error) == 1.0


async def test_s3_gone_is_unavailable_and_health_follows_it(
    forge_on_relay: ForgeServer, relay: Relay
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{forge_on_relay.port}") as channel:
        team = await new_team(channel)
        watch = HealthWatch(channel, ARTIFACTS)
        try:
            await watch.until(SERVING)
            await _outage(channel, team, relay, watch)
        finally:
            watch.cancel()


async def _outage(channel: grpc.aio.Channel, team: Team, relay: Relay, watch: HealthWatch) -> None:
    artifacts = stub(channel)
    metadata = team.owner.metadata

    async def create(name: str, content: bytes) -> artifacts_pb2.Artifact:
        request = artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(filename=name),
            content=content,
        )
        return await artifacts.CreateArtifact(request, metadata=metadata, timeout=DEADLINE)

    async def content_of(artifact_id: str) -> bytes:
        request = artifacts_pb2.GetArtifactContentRequest(artifact_id=artifact_id)
        body = await artifacts.GetArtifactContent(request, metadata=metadata, timeout=DEADLINE)
        return bytes(body.data)

    def download(artifact_id: str) -> grpc.aio.UnaryStreamCall[Any, Download]:
        request = artifacts_pb2.DownloadArtifactRequest(artifact_id=artifact_id)
        return artifacts.DownloadArtifact(request, metadata=metadata, timeout=DEADLINE)

    async def download_digest(artifact_id: str) -> str:
        chunks = [message.chunk async for message in download(artifact_id)]  # metadata: b""
        return digest_of(iter(chunks))

    small = await create("before.py", b"print('stored before the outage')\n")
    big = await artifacts.UploadArtifact(
        upload_requests(
            upload_metadata(team.project_id, "big.bin", size=BIG), pseudo_random_chunks(BIG, 7)
        ),
        metadata=metadata,
        timeout=DEADLINE,
    )
    big_digest = digest_of(pseudo_random_chunks(BIG, 7))

    # A download under way when S3 goes ends with the same status as the calls after it.
    cut_short = download(big.id)
    assert await _payload(cut_short) == "metadata"
    assert await _payload(cut_short) == "chunk"
    await relay.cut()
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await _read_to_end(cut_short)
    assert_blob_store_unavailable(ended.value)

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: create("during.py", b"x = 1\n"),
        lambda: content_of(small.id),
        lambda: download_digest(small.id),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call()
        assert_blob_store_unavailable(failure.value)
    await watch.until(NOT_SERVING)
    health = health_pb2_grpc.HealthStub(channel)
    overall = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE)
    assert overall.status == SERVING  # only the artifacts depend on S3

    await relay.restore()
    await watch.until(SERVING)
    assert await content_of(small.id) == b"print('stored before the outage')\n"
    assert await download_digest(big.id) == big_digest
    after = await create("after.py", b"y = 2\n")
    assert await content_of(after.id) == b"y = 2\n"


async def _payload(call: grpc.aio.UnaryStreamCall[Any, Download]) -> str | None:
    message = await call.read()
    assert isinstance(message, Download)
    return message.WhichOneof("payload")


async def _read_to_end(call: grpc.aio.UnaryStreamCall[Any, Download]) -> None:
    while await call.read() is not grpc.aio.EOF:
        pass


def _client_error(status: int, code: str) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetObject")


def test_s3_out_of_reach_is_told_apart_from_s3_refusing() -> None:
    assert is_unreachable(EndpointConnectionError(endpoint_url="http://s3"))
    assert is_unreachable(ReadTimeoutError(endpoint_url="http://s3"))
    assert is_unreachable(aiohttp.ClientPayloadError("received 720896 of 25165824 bytes"))
    assert is_unreachable(_client_error(503, "SlowDown"))
    assert is_unreachable(_client_error(500, "InternalError"))
    assert not is_unreachable(_client_error(404, "NoSuchKey"))
    assert not is_unreachable(_client_error(403, "AccessDenied"))
    assert not is_unreachable(_client_error(404, "NoSuchBucket"))
    assert not is_unreachable(RuntimeError("a bug"))
