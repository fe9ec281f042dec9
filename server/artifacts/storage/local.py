"""The local directory blob store (the default): `root/ab/cd/<sha256>`.

An upload is written to a temporary file under `root/tmp/` (same file system, so the final
step is atomic), hashed as it is written, fsynced, verified, then linked into place. All
file work of one upload runs, in order, on one worker thread of its own: the event loop
only hands it chunks, and a clean-up queued after a cancelled write runs after that write.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import BufferedReader, BufferedWriter
from pathlib import Path
from typing import ParamSpec, TypeVar

from server.artifacts.storage.base import (
    DEFAULT_CONTENT_TYPE,
    BlobInfo,
    BlobStream,
    EmptyBlobStream,
    iter_bytes,
    normalize_sha256,
)
from server.artifacts.storage.errors import (
    blob_not_found,
    offset_out_of_range,
    presign_unsupported,
    store_unavailable,
)
from server.artifacts.storage.upload import UploadGuard, finish_cleanup

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

WRITE_BATCH_BYTES = 1024 * 1024
"""Chunks are gathered up to this size before a write: fewer thread hand-offs for small
chunks (64 KiB gRPC messages), and memory stays bounded by it."""

STALE_TEMP_AGE = timedelta(hours=1)


@contextlib.contextmanager
def _disk_errors() -> Iterator[None]:
    try:
        yield
    except OSError as error:
        log.error("local blob store: %s", error)
        raise store_unavailable() from error


class _TempBlob:
    """One upload's temporary file. Every method runs on the upload's worker thread."""

    def __init__(self, tmp_dir: Path) -> None:
        self._tmp_dir = tmp_dir
        self.path: Path | None = None
        self._file: BufferedWriter | None = None
        self._hash = hashlib.sha256()

    def create(self) -> None:
        try:
            fd, name = tempfile.mkstemp(dir=self._tmp_dir, prefix="upload-", suffix=".part")
        except FileNotFoundError:  # the directory was removed under us
            self._tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._tmp_dir, prefix="upload-", suffix=".part")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        self._hash.update(data)
        self._file.write(data)

    def finish(self) -> str:
        """Flushes the file to disk and returns its SHA-256."""
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        return self._hash.hexdigest()

    def commit(self, final: Path) -> bool:
        """Moves the file to `final`; False (and the copy dropped) if `final` exists."""
        assert self.path is not None
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                os.link(self.path, final)  # atomic "create if absent"
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
                    raise
                if final.exists():  # a file system without hard links
                    return False
                os.replace(self.path, final)
            _fsync_dir(final.parent)
            return True
        finally:
            self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Removes the temporary file; never raises (it runs while another error unwinds)."""
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self.path is not None:
                self.path.unlink(missing_ok=True)
        except OSError:
            log.exception("local blob store: could not remove %s", self.path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Worker:
    """A thread of one upload's own: jobs run one at a time, in the order submitted."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-upload")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.wrap_future(self._executor.submit(fn, *args, **kwargs))

    async def run_to_end(self, fn: Callable[[], None]) -> None:
        """Runs `fn` and waits for it, even through cancellation (then re-raised)."""
        await finish_cleanup(asyncio.wrap_future(self._executor.submit(fn)))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)


class _LocalBlobStream(BlobStream):
    def __init__(self, file: BufferedReader, size: int, offset: int) -> None:
        super().__init__(size, offset)
        self._file = file

    async def _read(self, count: int) -> bytes:
        with _disk_errors():
            return await asyncio.to_thread(self._file.read, count)

    async def _release(self) -> None:
        self._file.close()


class LocalBlobStore:
    """Blobs as files under `root`. Safe for one process (or several sharing a disk)."""

    def __init__(self, root: Path, *, write_batch_bytes: int = WRITE_BATCH_BYTES) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self._write_batch_bytes = write_batch_bytes

    def path_for(self, sha256: str) -> Path:
        key = normalize_sha256(sha256)
        return self.root / key[:2] / key[2:4] / key

    async def start(self) -> None:
        with _disk_errors():
            await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_AGE.total_seconds()
        for leftover in self.tmp_dir.glob("upload-*.part"):  # from a crash
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    async def close(self) -> None:
        return None

    def on_unreachable(self, listener: Callable[[], None]) -> None:
        """A local disk is never out of reach; its failures are not outages."""

    async def probe(self) -> None:
        """Raises unless the directory is there (or can be made again) and writable."""
        await asyncio.to_thread(self._writable)

    def _writable(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(self.tmp_dir, os.W_OK):
            raise PermissionError(f"{self.tmp_dir} is not writable")

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
            max_bytes=max_bytes, expected_sha256=expected_sha256, expected_size=expected_size
        )
        worker = _Worker()
        temp = _TempBlob(self.tmp_dir)
        try:
            with _disk_errors():
                await worker.run(temp.create)
                limit = max_bytes if expected_size is None else expected_size
                buffer = bytearray(min(self._write_batch_bytes, limit))  # reused: flat memory
                filled = 0
                async for chunk in chunks:
                    guard.add(len(chunk))
                    if filled + len(chunk) > len(buffer):
                        if filled:
                            await worker.run(temp.write, memoryview(buffer)[:filled])
                            filled = 0
                        if len(chunk) >= len(buffer):
                            await worker.run(temp.write, chunk)
                            continue
                    buffer[filled : filled + len(chunk)] = chunk
                    filled += len(chunk)
                if filled:
                    await worker.run(temp.write, memoryview(buffer)[:filled])
                sha256 = await worker.run(temp.finish)
            guard.verify(sha256)
            with _disk_errors():
                created = await worker.run(temp.commit, self.path_for(sha256))
            return BlobInfo(sha256=sha256, size=guard.size, created=created)
        except BaseException:
            await worker.run_to_end(temp.discard)
            raise
        finally:
            worker.shutdown()

    async def put_bytes(self, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> BlobInfo:
        return await self.put_stream(
            iter_bytes(data),
            max_bytes=len(data),
            expected_size=len(data),
            content_type=content_type,
        )

    async def open(self, sha256: str, offset: int = 0) -> BlobStream:
        path = self.path_for(sha256)
        try:
            file, size = await asyncio.to_thread(_open_at, path, offset)
        except FileNotFoundError:
            raise blob_not_found() from None
        except _OffsetError as error:
            raise offset_out_of_range(offset, error.size) from None
        except OSError as error:
            log.error("local blob store: %s", error)
            raise store_unavailable() from error
        if file is None:
            return EmptyBlobStream(size, offset)
        return _LocalBlobStream(file, size, offset)

    async def read(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise blob_not_found() from None
        except OSError as error:
            log.error("local blob store: %s", error)
            raise store_unavailable() from error

    async def exists(self, sha256: str) -> bool:
        path = self.path_for(sha256)
        with _disk_errors():
            return await asyncio.to_thread(path.is_file)

    async def delete(self, sha256: str) -> bool:
        path = self.path_for(sha256)
        with _disk_errors():
            return await asyncio.to_thread(_unlink, path)

    async def presign_get(
        self,
        sha256: str,
        *,
        expires: timedelta,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        normalize_sha256(sha256)
        raise presign_unsupported()


class _OffsetError(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _open_at(path: Path, offset: int) -> tuple[BufferedReader | None, int]:
    """The open file positioned at `offset` (None when that is its end), and its size."""
    file = path.open("rb")
    try:
        size = os.fstat(file.fileno()).st_size
        if not 0 <= offset <= size:
            raise _OffsetError(size)
        if offset == size:
            file.close()
            return None, size
        file.seek(offset)
        return file, size
    except BaseException:
        file.close()
        raise


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
