"""Files under /workspace: confined, and immune to paths swapped while a request runs.

A running sandbox's files are read, written, listed and deleted inside it, as the sandbox
user, by file_helper.py (see there why that cannot be raced). A paused sandbox cannot run
anything; its files are read and written through the engine's archive API while it is held
paused (archive_files.py). Paths are first confined lexically (paths.py).
"""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.sandbox.archive import ArchiveTooLarge, regular_files, tree_budget
from server.sandbox.archive_files import (
    DEFAULT_FILE_MODE,
    ArchiveFiles,
    Resolved,
    _invalid,
    file_not_found,
    is_a_directory,
)
from server.sandbox.backend import WORKSPACE, ContainerPaused, NoSpace, SandboxBackend
from server.sandbox.file_helper import Answer, FileHelper
from server.sandbox.paths import ancestors
from server.sandbox.views import FileInfo

T = TypeVar("T")

# Paused-or-not can change between the attempts (a resume, a pause): try a few times.
_ATTEMPTS = 3

NOT_A_DIRECTORY = "NOT_A_DIRECTORY"
DIRECTORY_TOO_LARGE = "DIRECTORY_TOO_LARGE"


def directory_too_large(path: str, max_files: int, max_bytes: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"{path} holds more than {max_files} files or {max_bytes} bytes",
        DIRECTORY_TOO_LARGE,
        metadata={"path": path, "max_files": str(max_files), "max_bytes": str(max_bytes)},
    )


__all__ = ["Resolved", "SandboxFiles", "file_not_found"]


def _parts(path: str) -> list[str]:
    relative = path[len(WORKSPACE) :].strip("/")
    return relative.split("/") if relative else []


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        return None


class SandboxFiles:
    def __init__(self, backend: SandboxBackend, max_file_bytes: int) -> None:
        self._backend = backend
        self._helper = FileHelper(backend)
        self._archive = ArchiveFiles(backend, max_file_bytes)
        self._max_file_bytes = max_file_bytes

    async def _inside_or_paused(
        self,
        container_id: str,
        inside: Callable[[], Awaitable[T]],
        paused: Callable[[], Awaitable[T]],
    ) -> T:
        for _ in range(_ATTEMPTS):
            try:
                return await inside()
            except ContainerPaused:
                async with self._backend.holding_pause(container_id) as held:
                    if held:
                        return await paused()
        raise ContainerPaused("the sandbox was paused and resumed during the request")

    def _refuse(self, answer: Answer, path: str, field: str) -> Exception:
        """The error for a status other than OK."""
        status = answer.status
        if status in ("OUT", "DANGLING", "NOTDIR", "LOOP"):
            step = ancestors(path)[answer.index() - 1]
            why = {
                "OUT": f"is a symbolic link that leads out of {WORKSPACE}",
                "DANGLING": "is a dangling symbolic link",
                "NOTDIR": "is not a directory",
                "LOOP": "has too many levels of symbolic links",
            }[status]
            return _invalid(field, f"{step} {why}")
        if status == "MISSING":
            return file_not_found(path)
        if status == "ISDIR":
            return is_a_directory(path, field)
        if status == "NOSPACE":
            return NoSpace(f"no space left in {WORKSPACE}")
        return FailedPrecondition(f"could not access {path}", "FILE_ACCESS_FAILED")

    async def is_directory(self, container_id: str, path: str, field: str) -> bool:
        """Whether `path` is an existing directory (reached without leaving /workspace)."""
        answer = await self._helper.run(container_id, "dir", _parts(path))
        if answer.status in ("MISSING", "NOTDIR", "DANGLING"):
            return False
        if answer.status != "OK":
            raise self._refuse(answer, path, field)
        return True

    async def write(
        self, container_id: str, path: str, content: bytes, mode: int, field: str
    ) -> FileInfo:
        if len(content) > self._max_file_bytes:
            raise _invalid("content", f"must be at most {self._max_file_bytes} bytes")
        file_mode = mode or DEFAULT_FILE_MODE

        async def inside() -> FileInfo:
            answer = await self._helper.run(
                container_id, "write", [f"{file_mode:o}", *_parts(path)], stdin=content
            )
            if answer.status != "OK":
                raise self._refuse(answer, path, field)
            return FileInfo(
                path=path,
                size=len(content),
                is_dir=False,
                mode=file_mode,
                modify_time=datetime.now(UTC),
                is_symlink=False,
            )

        async def paused() -> FileInfo:
            return await self._archive.write(container_id, path, content, mode, field)

        return await self._inside_or_paused(container_id, inside, paused)

    async def read(self, container_id: str, path: str, field: str) -> tuple[FileInfo, bytes]:
        limit = self._max_file_bytes

        async def inside() -> tuple[FileInfo, bytes]:
            answer = await self._helper.run(
                container_id, "read", [str(limit), *_parts(path)], max_output=limit + 1
            )
            if answer.status == "TOOBIG" or len(answer.payload) > limit:
                size = answer.words[0] if answer.status == "TOOBIG" else str(len(answer.payload))
                raise FailedPrecondition(
                    f"{path} is {size} bytes; ReadFile returns at most {limit}",
                    "FILE_TOO_LARGE",
                    metadata={"path": path, "size_bytes": size},
                )
            if answer.status != "OK":
                raise self._refuse(answer, path, field)
            if answer.exit_code != 0:  # it changed into something unreadable meanwhile
                raise file_not_found(path)
            mode, mtime, symlinked = answer.words
            info = FileInfo(
                path=path,
                size=len(answer.payload),
                is_dir=False,
                mode=int(mode, 8),
                modify_time=_time(mtime),
                is_symlink=symlinked == "1",
            )
            return info, answer.payload

        async def paused() -> tuple[FileInfo, bytes]:
            return await self._archive.read(container_id, path, field)

        return await self._inside_or_paused(container_id, inside, paused)

    async def list(
        self,
        container_id: str,
        path: str,
        recursive: bool,
        field: str,
        *,
        after: str | None,
        limit: int,
    ) -> list[FileInfo]:
        """Up to `limit` entries below `path` whose paths sort after `after`, in order."""
        prefix = path.rstrip("/") + "/"
        relative_after = ""
        if after is not None:
            if after.startswith(prefix):
                relative_after = after[len(prefix) :]
            elif after >= prefix:
                limit = 0  # every entry sorts before it

        async def inside() -> list[FileInfo]:
            answer = await self._helper.run(
                container_id,
                "list",
                ["1" if recursive else "0", str(limit), *_parts(path)],
                max_output=64 * 1024 * 1024,
                env={"FORGE_AFTER": relative_after},
            )
            if answer.status != "OK":
                raise self._refuse(answer, path, field)
            return _entries(answer, prefix)

        async def paused() -> list[FileInfo]:
            entries = await self._archive.list(container_id, path, recursive, field)
            chosen = [entry for entry in entries if after is None or entry.path > after]
            return chosen[:limit]

        return await self._inside_or_paused(container_id, inside, paused)

    async def read_tree(
        self, container_id: str, path: str, field: str, *, max_files: int, max_bytes: int
    ) -> dict[str, bytes]:
        """The regular files under the directory `path` (running sandboxes only), by their
        paths relative to it; links are not followed."""
        budget = tree_budget(max_files, max_bytes)
        parts = _parts(path)
        answer = await self._helper.run(
            container_id, "tree", [str(budget), *parts], max_output=budget + 1
        )
        if answer.status == "NOTDIR" and answer.index() == len(parts):
            raise InvalidArgument.of(
                [FieldViolation(field, f"{path} is not a directory")], reason=NOT_A_DIRECTORY
            )
        if answer.status != "OK":
            raise self._refuse(answer, path, field)
        if len(answer.payload) > budget:
            raise directory_too_large(path, max_files, max_bytes)
        try:
            return await asyncio.to_thread(regular_files, answer.payload, max_files, max_bytes)
        except ArchiveTooLarge:
            raise directory_too_large(path, max_files, max_bytes) from None
        except tarfile.TarError:
            raise FailedPrecondition(
                f"could not read {path}", "FILE_ACCESS_FAILED", metadata={"path": path}
            ) from None

    async def delete(self, container_id: str, path: str, recursive: bool, field: str) -> None:
        if path == WORKSPACE:
            raise _invalid(field, f"{WORKSPACE} itself cannot be deleted")
        answer = await self._helper.run(
            container_id, "delete", ["1" if recursive else "0", *_parts(path)]
        )
        if answer.status == "OK":
            return
        if answer.status == "NOTEMPTY":
            raise FailedPrecondition(
                f"{path} is a non-empty directory: set recursive to delete it",
                "DIRECTORY_NOT_EMPTY",
                metadata={"path": path},
            )
        if answer.status == "FAILED":
            raise FailedPrecondition(
                f"could not delete {path}", "FILE_DELETE_FAILED", metadata={"path": path}
            )
        raise self._refuse(answer, path, field)


def _entries(answer: Answer, prefix: str) -> list[FileInfo]:
    """The listing records that are on the workspace's filesystem (anything else was reached
    through a directory swapped for a symlink while listing)."""
    device = answer.words[0]
    files = []
    for record in answer.payload.split(b"\0"):
        if not record:
            continue
        fields = record.split(b" ", 5)
        if len(fields) < 6 or fields[0].decode() != device:
            continue
        kind = int(fields[1], 16) & 0o170000
        files.append(
            FileInfo(
                path=prefix + fields[5].decode(errors="replace"),
                size=int(fields[2]) if kind == 0o100000 else 0,
                is_dir=kind == 0o040000,
                mode=int(fields[3], 8),
                modify_time=_time(fields[4].decode()),
                is_symlink=kind == 0o120000,
            )
        )
    return files
