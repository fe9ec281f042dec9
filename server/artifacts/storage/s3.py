"""The S3 blob store (AWS, MinIO, R2, … through aioboto3): `<prefix>blobs/<sha256>`.

The hash is known only once a stream ends, so an upload goes to a temporary key
(`<prefix>tmp/<uuid>`): one PUT when the whole blob fits in one part, a multipart upload
otherwise. It is then verified, copied server-side to its final key (unless that exists
already: identical content is stored once) and the temporary key deleted. On any error or
cancellation the multipart upload is aborted and the temporary key deleted before the error
reaches the caller, even if the caller is cancelled again meanwhile.

Memory per upload is one part (`part_size`, ≥ 5 MiB as S3 requires). Each full part is
hashed on a worker thread (the blob's SHA-256, and the part's Content-MD5 that S3 checks),
then streamed from the buffer without a copy (see `bufferio`). A cancellation that lands
during the final server-side copy may leave the complete, verified blob in place, unreferenced:
deleting it could race a concurrent upload of the same content that now relies on it.

Blobs up to 5 GiB (the limit of a single server-side copy).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from server.artifacts.storage.base import (
    DEFAULT_CONTENT_TYPE,
    BlobInfo,
    BlobStream,
    EmptyBlobStream,
    iter_bytes,
    normalize_sha256,
)
from server.artifacts.storage.bufferio import BufferReader
from server.artifacts.storage.errors import blob_not_found, invalid_expiry, offset_out_of_range
from server.artifacts.storage.s3errors import NOT_FOUND_CODES, S3Failures, error_code
from server.artifacts.storage.upload import UploadGuard, finish_cleanup

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_COPY_SIZE = 5 * 1024 * MiB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit

# A call against an S3 that is gone answers within seconds (it gets BLOB_STORE_UNAVAILABLE
# with a RetryInfo, and may retry itself): each request is tried twice, a refused connection
# costs nothing, a host that does not answer CONNECT_TIMEOUT, and the standard mode waits
# under a second between the tries.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 20.0
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class S3Options:
    """Where and how to reach the bucket. Credentials left unset come from the usual AWS
    chain (environment, shared config files, container or instance roles)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    part_size: int = 8 * MiB
    max_pool_connections: int = 32

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 part size must be at least {MIN_PART_SIZE} bytes")

    @property
    def key_prefix(self) -> str:
        """The prefix as a folder: "" or "<something>/"."""
        prefix = self.prefix.strip("/")
        return f"{prefix}/" if prefix else ""


def _hash_part(blob_hash: hashlib._Hash, data: memoryview) -> str:
    """Feeds a part to the whole blob's SHA-256; returns the part's own Content-MD5."""
    blob_hash.update(data)
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def content_disposition(filename: str) -> str:
    """`attachment` with `filename` both as ASCII fallback and as RFC 5987 UTF-8."""
    cleaned = "".join(c for c in filename if c.isprintable() and c not in '\\/"')
    cleaned = cleaned.strip() or "download"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


class _S3BlobStream(BlobStream):
    def __init__(self, body: Any, size: int, offset: int, failures: S3Failures) -> None:
        super().__init__(size, offset)
        self._body = body
        self._failures = failures

    async def _read(self, count: int) -> bytes:
        with self._failures.mapped():
            data: bytes = await self._body.read(count)
            return data

    async def _release(self) -> None:
        self._body.close()


class _TempUpload:
    """The temporary object one upload writes: one PUT, or a multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str, content_type: str) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key
        self._content_type = content_type
        self._upload_id: str | None = None
        self._creating = False
        self._parts: list[dict[str, Any]] = []

    @property
    def multipart(self) -> bool:
        return self._upload_id is not None

    async def put(self, body: BufferReader, md5: str) -> None:
        await self._client.put_object(
            Bucket=self._bucket,
            Key=self.key,
            Body=body,
            ContentMD5=md5,
            ContentType=self._content_type,
        )

    async def upload_part(self, body: BufferReader, md5: str) -> None:
        if self._upload_id is None:
            self._creating = True
            created = await self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type
            )
            self._upload_id = str(created["UploadId"])
            self._creating = False
        number = len(self._parts) + 1
        part = await self._client.upload_part(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=md5,
        )
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})

    async def complete(self) -> None:
        await self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def discard(self) -> None:
        """Aborts the multipart upload and deletes the key; logs, never raises."""
        try:
            upload_ids = [self._upload_id] if self._upload_id else []
            if self._creating:  # cancelled while S3 was creating it: find it by key
                listed = await self._client.list_multipart_uploads(
                    Bucket=self._bucket, Prefix=self.key
                )
                upload_ids += [
                    u["UploadId"] for u in listed.get("Uploads", []) if u["Key"] == self.key
                ]
            for upload_id in upload_ids:
                with contextlib.suppress(ClientError):  # already gone
                    await self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=self.key, UploadId=upload_id
                    )
            await self._client.delete_object(Bucket=self._bucket, Key=self.key)
        except (BotoCoreError, ClientError, aiohttp.ClientError):
            log.exception("S3 blob store: could not clean up %s", self.key)


class S3BlobStore:
    """Blobs as objects in one bucket. One aioboto3 client from `start()` to `close()`."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self.bucket = options.bucket
        self._prefix = options.key_prefix
        self._stack: AsyncExitStack | None = None
        self._client_or_none: Any = None
        self._failures = S3Failures()

    def on_unreachable(self, listener: Callable[[], None]) -> None:
        """`listener()` runs whenever a call finds S3 unreachable (health probes at once)."""
        self._failures.on_unreachable(listener)

    async def probe(self) -> None:
        """Raises unless the bucket answers (S3's own error: a probe tells no listener)."""
        await self._client.head_bucket(Bucket=self.bucket)

    def key_for(self, sha256: str) -> str:
        return f"{self._prefix}blobs/{normalize_sha256(sha256)}"

    def temp_key(self) -> str:
        return f"{self._prefix}tmp/{uuid.uuid4().hex}"

    @property
    def _client(self) -> Any:
        if self._client_or_none is None:
            raise RuntimeError("S3BlobStore.start() has not been called")
        return self._client_or_none

    async def start(self) -> None:
        if self._stack is not None:
            return
        opts = self.options
        session = aioboto3.Session(
            aws_access_key_id=opts.access_key_id,
            aws_secret_access_key=opts.secret_access_key,
            region_name=opts.region,
        )
        config = AioConfig(
            s3={"addressing_style": opts.addressing_style, "payload_signing_enabled": False},
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=opts.max_pool_connections,
            # Botocore would checksum (CRC32) or sign (SHA-256) each body on the event loop;
            # instead each part carries a Content-MD5 computed on a worker thread, which
            # every S3-compatible store checks, and which is itself signed.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        stack = AsyncExitStack()
        self._client_or_none = await stack.enter_async_context(
            session.client("s3", endpoint_url=opts.endpoint_url, config=config)
        )
        self._stack = stack

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
            self._client_or_none = None

    async def put_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> BlobInfo:
        guard = UploadGuard(
            max_bytes=min(max_bytes, MAX_COPY_SIZE),
            expected_sha256=expected_sha256,
            expected_size=expected_size,
        )
        temp = _TempUpload(self._client, self.bucket, self.temp_key(), content_type)
        hasher = hashlib.sha256()
        limit = guard.max_bytes if expected_size is None else expected_size
        buffer = bytearray(min(self.options.part_size, limit))  # reused for every part
        part_size = len(buffer)  # below the option only when the whole blob fits in it
        filled = 0

        async def send(last: bool) -> None:
            data = memoryview(buffer)[:filled]
            md5 = await asyncio.to_thread(_hash_part, hasher, data)
            with BufferReader(data) as body:
                if last and not temp.multipart:
                    await temp.put(body, md5)
                else:
                    await temp.upload_part(body, md5)

        try:
            with self._failures.mapped():
                async for chunk in chunks:
                    guard.add(len(chunk))
                    view = memoryview(chunk)
                    while view:
                        if filled == part_size:  # full, and more is coming: send it
                            await send(last=False)
                            filled = 0
                        count = min(part_size - filled, len(view))
                        buffer[filled : filled + count] = view[:count]
                        filled += count
                        view = view[count:]
                    del view
                if filled or not temp.multipart:
                    await send(last=True)
                if temp.multipart:
                    await temp.complete()
            sha256 = hasher.hexdigest()
            guard.verify(sha256)
            with self._failures.mapped():
                created = await self._commit(temp.key, sha256)
            return BlobInfo(sha256=sha256, size=guard.size, created=created)
        except BaseException:
            await finish_cleanup(temp.discard())  # few small requests, bounded by timeouts
            raise

    async def _commit(self, temp_key: str, sha256: str) -> bool:
        """Copies the verified temporary object to its final key, unless that exists."""
        final = self.key_for(sha256)
        created = not await self._head(final)
        if created:
            await self._client.copy_object(
                Bucket=self.bucket,
                Key=final,
                CopySource={"Bucket": self.bucket, "Key": temp_key},
                MetadataDirective="COPY",
            )
        await self._client.delete_object(Bucket=self.bucket, Key=temp_key)
        return created

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = await self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error_code(error) in NOT_FOUND_CODES:
                return None
            raise
        return head

    async def put_bytes(self, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> BlobInfo:
        return await self.put_stream(
            iter_bytes(data),
            max_bytes=len(data),
            expected_size=len(data),
            content_type=content_type,
        )

    async def open(self, sha256: str, offset: int = 0) -> BlobStream:
        key = self.key_for(sha256)
        if offset < 0:
            raise offset_out_of_range(offset, await self._size(key))
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset:
            params["Range"] = f"bytes={offset}-"
        with self._failures.mapped():
            try:
                response = await self._client.get_object(**params)
            except ClientError as error:
                code = error_code(error)
                if code in NOT_FOUND_CODES:
                    raise blob_not_found() from None
                if code != "InvalidRange":
                    raise
                size = await self._size(key)  # at or past the end
                if offset != size:
                    raise offset_out_of_range(offset, size) from None
                return EmptyBlobStream(size, offset)
        content_range = response.get("ContentRange")  # "bytes 10-99/100"
        if content_range:
            size = int(str(content_range).rsplit("/", 1)[1])
        else:
            size = int(response["ContentLength"])
        return _S3BlobStream(response["Body"], size, offset, self._failures)

    async def _size(self, key: str) -> int:
        with self._failures.mapped():
            head = await self._head(key)
        if head is None:
            raise blob_not_found()
        return int(head["ContentLength"])

    async def read(self, sha256: str) -> bytes:
        async with await self.open(sha256) as stream:
            return b"".join([chunk async for chunk in stream])

    async def exists(self, sha256: str) -> bool:
        key = self.key_for(sha256)
        with self._failures.mapped():
            return await self._head(key) is not None

    async def delete(self, sha256: str) -> bool:
        key = self.key_for(sha256)
        with self._failures.mapped():
            if await self._head(key) is None:
                return False
            await self._client.delete_object(Bucket=self.bucket, Key=key)
        return True

    async def presign_get(
        self,
        sha256: str,
        *,
        expires: timedelta,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        key = self.key_for(sha256)
        seconds = int(expires.total_seconds())
        if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
            raise invalid_expiry(MAX_PRESIGN_SECONDS)
        await self._size(key)  # BLOB_NOT_FOUND rather than a URL that answers 404
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type:
            params["ResponseContentType"] = content_type
        with self._failures.mapped():
            url: str = await self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=seconds
            )
        return url
