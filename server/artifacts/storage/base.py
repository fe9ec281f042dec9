"""The blob store contract: content-addressed bytes, streamed in and out.

A blob's key is the SHA-256 of its bytes (64 lowercase hex digits), so identical content is
stored once. Writes are all-or-nothing: a failed, rejected or cancelled upload leaves nothing
behind, and a blob is visible only once it is complete and verified.

Errors are the typed errors of `server.artifacts.storage.errors` (reasons listed there).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Protocol, Self

from server.artifacts.storage.errors import invalid_sha256

CHUNK_SIZE = 64 * 1024
"""Size of the chunks `BlobStore.open` yields (all but the last are exactly this long)."""

DEFAULT_CONTENT_TYPE = "application/octet-stream"

_SHA256 = re.compile(r"[0-9a-f]{64}")


def normalize_sha256(value: str, field: str = "sha256") -> str:
    """`value` as a blob key (lowercase hex); INVALID_SHA256 if it is not a SHA-256 digest."""
    lowered = value.strip().lower()
    if not _SHA256.fullmatch(lowered):
        raise invalid_sha256(field)
    return lowered


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob. `created` is False when identical content was already stored.

    `created` is advisory: two concurrent uploads of the same new content may both report
    True. Nothing should depend on it beyond metrics and logs.
    """

    sha256: str
    size: int
    created: bool

    @property
    def key(self) -> str:
        return self.sha256


async def iter_bytes(data: bytes, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """`data` as a chunk stream, for `put_stream`."""
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


class BlobStream(ABC):
    """The bytes of one blob from an offset, as `CHUNK_SIZE` chunks.

    Iterate it to the end, or close it (`aclose()`, or use it as an async context manager);
    either releases the file or HTTP response behind it. `size` is the whole blob's size.
    """

    def __init__(self, size: int, offset: int) -> None:
        self.size = size
        self.offset = offset
        self._closed = False

    @abstractmethod
    async def _read(self, count: int) -> bytes:
        """Up to `count` bytes; empty only at the end."""

    @abstractmethod
    async def _release(self) -> None:
        """Frees the underlying file or response (called once)."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            parts: list[bytes] = []
            wanted = CHUNK_SIZE
            while wanted:
                data = await self._read(wanted)
                if not data:
                    break
                parts.append(data)
                wanted -= len(data)
        except BaseException:
            await self.aclose()
            raise
        if not parts:
            await self.aclose()
            raise StopAsyncIteration
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class EmptyBlobStream(BlobStream):
    """A stream positioned at the end of its blob."""

    async def _read(self, count: int) -> bytes:
        return b""

    async def _release(self) -> None:
        return None


class BlobStore(Protocol):
    """Content-addressed blob storage. Call `start()` before use and `close()` after."""

    async def start(self) -> None:
        """Prepares the store (directories, the S3 client)."""

    async def close(self) -> None:
        """Releases the store's resources; waits for clean-ups still running."""

    async def probe(self) -> None:
        """Raises if the store cannot be used now (health asks, storage/health.py)."""

    def on_unreachable(self, listener: Callable[[], None]) -> None:
        """`listener()` runs (it must not block) whenever a call finds the store out of
        reach, so health probes at once instead of at its next tick."""

    async def put_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> BlobInfo:
        """Stores the bytes of `chunks`, hashing them as they arrive (memory stays O(chunk)
        locally, O(part size) on S3).

        Raises UPLOAD_TOO_LARGE as soon as more than `max_bytes` arrive (or at once if
        `expected_size` is larger), CHECKSUM_MISMATCH if `expected_sha256`/`expected_size`
        are given and wrong. On any error or cancellation nothing is left behind.
        """
        ...

    async def put_bytes(self, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> BlobInfo:
        """Stores `data` (no size limit: the caller holds it already)."""
        ...

    async def open(self, sha256: str, offset: int = 0) -> BlobStream:
        """The blob's bytes from `offset` as `CHUNK_SIZE` chunks.

        Raises BLOB_NOT_FOUND or OFFSET_OUT_OF_RANGE here, before any byte is read;
        `offset == size` gives an empty stream.
        """
        ...

    async def read(self, sha256: str) -> bytes:
        """The whole blob in memory: for small content only."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def delete(self, sha256: str) -> bool:
        """Removes the blob; False if there was none."""
        ...

    async def presign_get(
        self,
        sha256: str,
        *,
        expires: timedelta,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A URL that downloads the blob with a plain HTTP GET until `expires` has passed,
        served as an attachment named `filename` with `content_type`.

        BLOB_NOT_FOUND if there is no such blob; PRESIGN_UNSUPPORTED on the local store.
        """
        ...
