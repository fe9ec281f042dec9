"""Archives of a version's files (zip or tar.gz), produced while they are sent: each file's
blob is read in 64 KiB chunks, packed, and what the packing has output so far is handed on,
so neither a file nor the archive is ever held whole. Compression runs on worker threads.

The zip is written by `zipfile` to a sink that cannot seek (each entry then carries a data
descriptor); the tar by hand (headers from `tarfile.TarInfo`, PAX for long paths) through a
streaming gzip compressor.
"""

from __future__ import annotations

import asyncio
import tarfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from server.artifacts.kinds import essence
from server.artifacts.storage import CHUNK_SIZE, BlobStore
from server.artifacts.views import FileView

FILE_MODE = 0o644
_ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)
_TAR_BLOCK = tarfile.BLOCKSIZE
_TAR_RECORD = tarfile.RECORDSIZE
# Content compressed already: stored as it is in a zip.
_COMPRESSED = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/zip",
        "application/gzip",
        "application/pdf",
    }
)


class ArchiveFormat(StrEnum):
    ZIP = "zip"
    TAR_GZ = "tar.gz"

    @property
    def content_type(self) -> str:
        return "application/zip" if self is ArchiveFormat.ZIP else "application/gzip"


class _Sink:
    """Where the packer writes: collects the output until it is taken. Write-only and not
    seekable, as a network stream is."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes) -> int:
        if data:
            self._parts.append(bytes(data))
            self.pending += len(data)
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return data


async def archive_chunks(
    archive_format: ArchiveFormat,
    files: Sequence[FileView],
    blobs: BlobStore,
    modified: datetime,
) -> AsyncIterator[bytes]:
    """The archive of `files` (their blobs), as chunks of about 64 KiB; each entry is dated
    `modified` (the version's creation)."""
    packer = _zip if archive_format is ArchiveFormat.ZIP else _tar_gz
    async for chunk in packer(files, blobs, modified):
        yield chunk


async def _zip(
    files: Sequence[FileView], blobs: BlobStore, modified: datetime
) -> AsyncIterator[bytes]:
    sink = _Sink()
    when = max(modified, _ZIP_EPOCH)
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    with zipfile.ZipFile(sink, mode="w") as archive:  # type: ignore[call-overload]
        for file in files:
            info = zipfile.ZipInfo(file.path, date_time=stamp)
            info.file_size = file.size_bytes
            info.external_attr = (0o100000 | FILE_MODE) << 16
            stored = essence(file.content_type) in _COMPRESSED
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with archive.open(info, mode="w") as entry:
                async with await blobs.open(file.sha256) as chunks:
                    async for chunk in chunks:
                        await asyncio.to_thread(entry.write, chunk)
                        if sink.pending >= CHUNK_SIZE:
                            yield sink.take()
            if sink.pending >= CHUNK_SIZE:
                yield sink.take()
    yield sink.take()


async def _tar_gz(
    files: Sequence[FileView], blobs: BlobStore, modified: datetime
) -> AsyncIterator[bytes]:
    gzip = zlib.compressobj(level=6, wbits=31)  # 31: the gzip container
    pending: list[bytes] = []
    pending_size = 0
    written = 0  # uncompressed tar bytes

    async def pack(data: bytes) -> None:
        nonlocal pending_size, written
        written += len(data)
        out = await asyncio.to_thread(gzip.compress, data)
        if out:
            pending.append(out)
            pending_size += len(out)

    def take() -> bytes:
        nonlocal pending_size
        data = b"".join(pending)
        pending.clear()
        pending_size = 0
        return data

    for file in files:
        info = tarfile.TarInfo(file.path)
        info.size = file.size_bytes
        info.mode = FILE_MODE
        info.mtime = int(modified.timestamp())
        info.type = tarfile.REGTYPE
        await pack(info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict"))
        async with await blobs.open(file.sha256) as chunks:
            async for chunk in chunks:
                await pack(chunk)
                if pending_size >= CHUNK_SIZE:
                    yield take()
        await pack(b"\0" * (-file.size_bytes % _TAR_BLOCK))
    # The end: two zero blocks, then zeros up to a whole record (as tarfile writes it).
    end = 2 * _TAR_BLOCK
    end += -(written + end) % _TAR_RECORD
    await pack(b"\0" * end)
    pending.append(gzip.flush())
    yield take()
