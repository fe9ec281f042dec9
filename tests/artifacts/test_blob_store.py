"""The blob store contract, on both stores: the local directory and S3 (moto on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from server.artifacts.storage import CHUNK_SIZE, BlobInfo
from server.artifacts.storage.errors import (
    BLOB_NOT_FOUND,
    CHECKSUM_MISMATCH,
    INVALID_EXPIRY,
    INVALID_SHA256,
    OFFSET_OUT_OF_RANGE,
    PRESIGN_UNSUPPORTED,
    UPLOAD_TOO_LARGE,
)
from server.artifacts.storage.s3 import S3BlobStore
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.artifacts.conftest import PART_SIZE, StoreUnderTest

MiB = 1024 * 1024
LIMIT = 50 * MiB


def pseudo_random_chunks(total: int, chunk_size: int, seed: int) -> Iterator[bytes]:
    """`total` reproducible bytes in `chunk_size` pieces, made on demand (never all held)."""
    rnd = random.Random(seed)
    sent = 0
    while sent < total:
        size = min(chunk_size, total - sent)
        yield rnd.randbytes(size)
        sent += size


async def stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def digest(chunks: Iterator[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


async def test_20_mib_streamed_in_chunks_round_trips_byte_exact(blobs: StoreUnderTest) -> None:
    total, seed = 20 * MiB, 20
    expected = digest(pseudo_random_chunks(total, CHUNK_SIZE, seed))

    info = await blobs.store.put_stream(
        stream(pseudo_random_chunks(total, CHUNK_SIZE, seed)),
        max_bytes=LIMIT,
        expected_sha256=expected,
        expected_size=total,
        content_type="application/octet-stream",
    )

    assert info == BlobInfo(sha256=expected, size=total, created=True)
    stored = await blobs.store.open(info.sha256)
    assert stored.size == total
    sizes = []
    async with stored:
        expected_chunks = pseudo_random_chunks(total, CHUNK_SIZE, seed)
        async for chunk in stored:
            sizes.append(len(chunk))
            assert chunk == next(expected_chunks)  # byte-exact, chunk by chunk
    assert sum(sizes) == total
    assert set(sizes) == {CHUNK_SIZE}  # streamed out in 64 KiB chunks
    assert await blobs.leftovers() == [blob_entry(blobs, info.sha256)]


async def test_a_20_mib_upload_never_holds_the_blob_in_memory(blobs: StoreUnderTest) -> None:
    total = 20 * MiB
    tracemalloc.start()
    try:
        info = await blobs.store.put_stream(
            stream(pseudo_random_chunks(total, CHUNK_SIZE, seed=21)), max_bytes=LIMIT
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info.size == total
    # Local: one write batch (1 MiB). S3: one part buffer (5 MiB here) and small change.
    budget = 2 * MiB if blobs.kind == "local" else PART_SIZE + 2 * MiB
    assert peak < budget, f"peak {peak / MiB:.1f} MiB while storing {total / MiB:.0f} MiB"


@pytest.mark.parametrize("when", ["waiting for the client", "while storing"])
async def test_an_upload_cancelled_halfway_leaves_nothing(blobs: StoreUnderTest, when: str) -> None:
    halfway = asyncio.Event()
    task: asyncio.Task[BlobInfo] | None = None

    async def client() -> AsyncIterator[bytes]:
        for sent, chunk in enumerate(pseudo_random_chunks(12 * MiB, CHUNK_SIZE, seed=3)):
            if sent * CHUNK_SIZE == 6 * MiB:  # past the first S3 part
                halfway.set()
                if when == "while storing":
                    assert task is not None
                    task.cancel()  # lands at the store's next await: storing this chunk
                else:
                    await asyncio.Event().wait()  # a client that stops sending
            yield chunk

    task = asyncio.create_task(blobs.store.put_stream(client(), max_bytes=LIMIT))
    await asyncio.wait_for(halfway.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await blobs.leftovers() == []


@pytest.mark.parametrize("blobs", ["s3"], indirect=True)
@pytest.mark.parametrize("moment", ["before-send", "response-received"])
@pytest.mark.parametrize(
    "operation", ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]
)
async def test_cancelled_during_an_s3_request_leaves_nothing(
    blobs: StoreUnderTest, operation: str, moment: str
) -> None:
    """Cancelled as a request goes out, or once S3 has done it but before we learn the
    answer: e.g. a multipart upload S3 created but whose id we never saw."""
    assert isinstance(blobs.store, S3BlobStore)
    events: Any = blobs.store._client.meta.events
    total = MiB if operation == "PutObject" else 12 * MiB
    task = asyncio.create_task(
        blobs.store.put_stream(
            stream(pseudo_random_chunks(total, CHUNK_SIZE, seed=4)), max_bytes=LIMIT
        )
    )
    hit = asyncio.Event()

    async def cancel_there(**_: object) -> None:
        hit.set()
        task.cancel()
        await asyncio.sleep(0)  # a suspension point: the cancellation lands here

    event = f"{moment}.s3.{operation}"
    events.register(event, cancel_there)
    try:
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        events.unregister(event, cancel_there)
    assert hit.is_set()
    assert await blobs.leftovers() == []


async def test_an_upload_over_the_limit_fails_and_leaves_nothing(blobs: StoreUnderTest) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await blobs.store.put_stream(
            stream(pseudo_random_chunks(12 * MiB, CHUNK_SIZE, seed=5)), max_bytes=7 * MiB
        )
    assert raised.value.reason == UPLOAD_TOO_LARGE
    assert raised.value.metadata == {"max_bytes": str(7 * MiB)}
    assert await blobs.leftovers() == []


async def test_a_declared_size_over_the_limit_fails_before_reading(
    blobs: StoreUnderTest,
) -> None:
    read = False

    async def client() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"x"

    with pytest.raises(InvalidArgument) as raised:
        await blobs.store.put_stream(client(), max_bytes=10, expected_size=11)
    assert raised.value.reason == UPLOAD_TOO_LARGE
    assert not read
    assert await blobs.leftovers() == []


@pytest.mark.parametrize("total", [100_000, 7 * MiB], ids=["one-put", "multipart"])
async def test_a_wrong_expected_hash_fails_and_leaves_nothing(
    blobs: StoreUnderTest, total: int
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(InvalidArgument) as raised:
        await blobs.store.put_stream(
            stream(pseudo_random_chunks(total, CHUNK_SIZE, seed=6)),
            max_bytes=LIMIT,
            expected_sha256=wrong.upper(),  # hex digits in either case
        )
    assert raised.value.reason == CHECKSUM_MISMATCH
    assert raised.value.metadata["expected_sha256"] == wrong
    assert await blobs.leftovers() == []


@pytest.mark.parametrize("declared", [999, 1001])
async def test_a_wrong_expected_size_fails_and_leaves_nothing(
    blobs: StoreUnderTest, declared: int
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await blobs.store.put_stream(
            stream(iter([b"a" * 500, b"b" * 500])), max_bytes=LIMIT, expected_size=declared
        )
    assert raised.value.reason == CHECKSUM_MISMATCH
    assert raised.value.metadata["expected_size"] == str(declared)
    assert await blobs.leftovers() == []


async def test_a_malformed_expected_hash_is_rejected(blobs: StoreUnderTest) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await blobs.store.put_stream(stream(iter([b"x"])), max_bytes=10, expected_sha256="abc")
    assert raised.value.reason == INVALID_SHA256
    assert [v.field for v in raised.value.violations] == ["sha256"]


async def test_identical_content_is_stored_once(blobs: StoreUnderTest) -> None:
    data = b"print('hello')\n" * 1000
    first = await blobs.store.put_bytes(data, "text/x-python")
    second = await blobs.store.put_stream(
        stream(iter([data[:7], data[7:]])), max_bytes=LIMIT, content_type="text/x-python"
    )

    assert first.created
    assert not second.created
    assert (second.sha256, second.size) == (first.sha256, first.size)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert await blobs.leftovers() == [blob_entry(blobs, first.sha256)]


@pytest.mark.parametrize("chunk_size", [1, 1000, 3 * MiB])
async def test_any_chunking_stores_the_same_bytes(blobs: StoreUnderTest, chunk_size: int) -> None:
    total = 6 * MiB if chunk_size > 1 else 5000
    data = b"".join(pseudo_random_chunks(total, MiB, seed=7))
    chunks = (data[i : i + chunk_size] for i in range(0, total, chunk_size))

    info = await blobs.store.put_stream(stream(chunks), max_bytes=LIMIT)

    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert await blobs.store.read(info.sha256) == data


async def test_empty_content(blobs: StoreUnderTest) -> None:
    info = await blobs.store.put_bytes(b"")
    assert (info.sha256, info.size) == (hashlib.sha256(b"").hexdigest(), 0)
    assert await blobs.store.read(info.sha256) == b""
    assert [chunk async for chunk in await blobs.store.open(info.sha256)] == []


async def test_delete_removes_the_blob(blobs: StoreUnderTest) -> None:
    info = await blobs.store.put_bytes(b"short-lived")
    assert await blobs.store.exists(info.sha256)

    assert await blobs.store.delete(info.sha256)

    assert not await blobs.store.exists(info.sha256)
    assert not await blobs.store.delete(info.sha256)
    with pytest.raises(NotFound) as raised:
        await blobs.store.read(info.sha256)
    assert raised.value.reason == BLOB_NOT_FOUND
    assert await blobs.leftovers() == []


async def test_open_resumes_from_an_offset(blobs: StoreUnderTest) -> None:
    data = b"".join(pseudo_random_chunks(3 * CHUNK_SIZE + 123, CHUNK_SIZE, seed=8))
    info = await blobs.store.put_bytes(data)

    for offset in (0, 1, CHUNK_SIZE, 100_000, len(data) - 1):
        stored = await blobs.store.open(info.sha256, offset=offset)
        chunks = [chunk async for chunk in stored]
        assert b"".join(chunks) == data[offset:], offset
        assert all(len(chunk) == CHUNK_SIZE for chunk in chunks[:-1])
        assert (stored.size, stored.offset) == (len(data), offset)

    at_end = await blobs.store.open(info.sha256, offset=len(data))
    assert [chunk async for chunk in at_end] == []
    for past in (len(data) + 1, -1):
        with pytest.raises(InvalidArgument) as raised:
            await blobs.store.open(info.sha256, offset=past)
        assert raised.value.reason == OFFSET_OUT_OF_RANGE


async def test_a_stream_closed_early_releases_its_source(blobs: StoreUnderTest) -> None:
    data = b"z" * (5 * CHUNK_SIZE)
    info = await blobs.store.put_bytes(data)
    async with asyncio.timeout(30):  # a leaked response would exhaust the S3 pool: hang
        for _ in range(40):  # more than the pool's 32 connections
            async with await blobs.store.open(info.sha256) as stored:
                assert await anext(stored) == data[:CHUNK_SIZE]
    assert await blobs.store.read(info.sha256) == data


async def test_unknown_and_malformed_keys(blobs: StoreUnderTest) -> None:
    unknown = hashlib.sha256(b"never stored").hexdigest()
    assert not await blobs.store.exists(unknown)
    for call in (blobs.store.read, blobs.store.open):
        with pytest.raises(NotFound):
            await call(unknown)
    for bad in ("../../etc/passwd", "ab" * 40, ""):
        with pytest.raises(InvalidArgument) as raised:
            await blobs.store.read(bad)
        assert raised.value.reason == INVALID_SHA256


async def test_presigned_url_downloads_with_plain_http(blobs: StoreUnderTest) -> None:
    data = b"<h1>hello</h1>\n"
    info = await blobs.store.put_bytes(data, "text/html")
    presign: Callable[..., Any] = blobs.store.presign_get

    if blobs.kind == "local":
        with pytest.raises(FailedPrecondition) as refused:
            await presign(info.sha256, expires=timedelta(minutes=5), filename="index.html")
        assert refused.value.reason == PRESIGN_UNSUPPORTED
        return

    url = await presign(
        info.sha256,
        expires=timedelta(minutes=5),
        filename="héllo page.html",
        content_type="text/html; charset=utf-8",
    )
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.read() == data
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="h_llo page.html"')
        assert "filename*=UTF-8''h%C3%A9llo%20page.html" in disposition

    with pytest.raises(NotFound):
        await presign(hashlib.sha256(b"nope").hexdigest(), expires=timedelta(minutes=5))
    for expires in (timedelta(0), timedelta(days=8)):
        with pytest.raises(InvalidArgument) as bad:
            await presign(info.sha256, expires=expires)
        assert bad.value.reason == INVALID_EXPIRY


def blob_entry(blobs: StoreUnderTest, sha256: str) -> str:
    """How a stored blob shows in `leftovers()`."""
    if blobs.kind == "local":
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
    return f"forge/blobs/{sha256}"
