"""Tar archives for Docker's archive API (building one file, reading one file, listing a
tree) and of a directory read inside a sandbox (its regular files)."""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from server.sandbox.backend import SANDBOX_GID, SANDBOX_UID, NewFile, PathStat

DIRECTORY_MODE = 0o755


class ArchiveTooLarge(Exception):
    """The archive holds more than the caller accepts."""


def file_archive(relative_path: str, file: NewFile) -> bytes:
    """A tar with the missing parent directories of `relative_path` and the file itself,
    owned by the sandbox user."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        parts = relative_path.split("/")
        for depth in range(1, len(parts)):
            directory = tarfile.TarInfo("/".join(parts[:depth]))
            directory.type = tarfile.DIRTYPE
            directory.mode = DIRECTORY_MODE
            _own(directory, now)
            tar.addfile(directory)
        info = tarfile.TarInfo(relative_path)
        info.size = len(file.content)
        info.mode = file.mode
        _own(info, now)
        tar.addfile(info, io.BytesIO(file.content))
    return buffer.getvalue()


def _own(info: tarfile.TarInfo, mtime: float) -> None:
    info.uid = SANDBOX_UID
    info.gid = SANDBOX_GID
    info.uname = "sandbox"
    info.gname = "sandbox"
    info.mtime = mtime


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (Docker's archive stream)."""

    def __init__(self, chunks: Iterator[bytes], max_bytes: int | None) -> None:
        self._chunks = chunks
        self._pending = b""
        self._max = max_bytes
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            self.total += len(self._pending)
            if self._max is not None and self.total > self._max:
                raise ArchiveTooLarge(f"archive larger than {self._max} bytes")
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def single_file(chunks: Iterator[bytes], max_bytes: int) -> bytes:
    """The content of the one regular file in an archive of at most ~`max_bytes` content."""
    # Tar adds headers and padding: allow for them on top of the content limit.
    reader = _ChunkReader(chunks, max_bytes + 64 * 1024)
    with tarfile.open(fileobj=io.BufferedReader(reader), mode="r|") as tar:
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                if extracted is None:
                    break
                return extracted.read()
    raise FileNotFoundError("the archive holds no regular file")


def list_entries(chunks: Iterator[bytes], directory: str) -> list[PathStat]:
    """Every entry below `directory` in Docker's archive of it (whose names start with the
    directory's base name), as absolute paths; file contents are skipped, not kept."""
    reader = _ChunkReader(chunks, None)
    parent = posixpath.dirname(directory.rstrip("/")) or "/"
    entries: list[PathStat] = []
    with tarfile.open(fileobj=io.BufferedReader(reader), mode="r|") as tar:
        for member in tar:
            name = member.name.rstrip("/")
            path = posixpath.normpath(posixpath.join(parent, name))
            if path == directory or not path.startswith(directory.rstrip("/") + "/"):
                continue
            entries.append(
                PathStat(
                    path=path,
                    size=member.size if member.isfile() else 0,
                    mode=member.mode & 0o7777,
                    modify_time=datetime.fromtimestamp(member.mtime, UTC),
                    is_dir=member.isdir(),
                    is_symlink=member.issym(),
                    link_target=member.linkname if member.issym() else "",
                )
            )
    return entries


TREE_OVERHEAD_PER_FILE = 3 * tarfile.BLOCKSIZE
"""A member's header (and PAX header, for long names) and padding, at most (names up to
1024 bytes)."""


def tree_budget(max_files: int, max_bytes: int) -> int:
    """The largest tar of at most `max_files` files and `max_bytes` bytes (directories,
    which count as entries too, are allowed as many again)."""
    return max_bytes + (2 * max_files + 2) * TREE_OVERHEAD_PER_FILE + tarfile.RECORDSIZE


def regular_files(data: bytes, max_files: int, max_bytes: int) -> dict[str, bytes]:
    """The regular files of a tar of a directory ("./src/a.ts" -> "src/a.ts"), hard links
    included; symbolic links, directories and special files left out. ArchiveTooLarge when
    there are more than `max_files` files or `max_bytes` bytes."""
    files: dict[str, bytes] = {}
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            if not (member.isfile() or member.islnk()):
                continue
            name = posixpath.normpath(member.name)
            if name.startswith(("/", "../")) or name in (".", ".."):
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            content = extracted.read()
            total += len(content)
            files[name] = content
            if len(files) > max_files or total > max_bytes:
                raise ArchiveTooLarge(f"more than {max_files} files or {max_bytes} bytes")
    return files
