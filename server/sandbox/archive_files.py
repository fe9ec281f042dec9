"""Files of a PAUSED sandbox, through the engine's archive API (put/get archive).

Only while the container is paused (and held paused, see SandboxBackend.holding_pause):
the path is resolved first and used later by the root-privileged engine, which is safe only
because nothing inside runs in between to swap a component. A running sandbox's files are
handled inside it (file_helper.py).

Each existing component on the way is looked at, and a symlink whose full resolution leaves
/workspace makes the request INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass

from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from server.core.ports import IS_A_DIRECTORY
from server.core.timestamps import utcnow
from server.sandbox.archive import ArchiveTooLarge
from server.sandbox.backend import WORKSPACE, NewFile, PathStat, SandboxBackend
from server.sandbox.paths import ancestors, is_inside_workspace
from server.sandbox.views import FileInfo

DEFAULT_FILE_MODE = 0o644


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument.of([FieldViolation(field, description)])


def is_a_directory(path: str, field: str) -> InvalidArgument:
    """A file operation on a directory (reason IS_A_DIRECTORY: a run saves it as a tree)."""
    return InvalidArgument.of(
        [FieldViolation(field, f"{path} is a directory")], reason=IS_A_DIRECTORY
    )


def file_not_found(path: str) -> NotFound:
    return NotFound(f"{path} does not exist", "FILE_NOT_FOUND", metadata={"path": path})


@dataclass(frozen=True)
class Resolved:
    """A confined path after looking at what exists on the way to it."""

    path: str
    # Where the final component really is: `path`, or its symlink's target in /workspace.
    target: str
    # The target as it is now, None when it does not exist.
    stat: PathStat | None
    # The deepest existing directory on the way (symlinks followed), and what is missing
    # below it, for a write that creates parents.
    base_dir: str
    missing: tuple[str, ...]


class ArchiveFiles:
    def __init__(self, backend: SandboxBackend, max_file_bytes: int) -> None:
        self._backend = backend
        self._max_file_bytes = max_file_bytes

    async def resolve(self, container_id: str, path: str, field: str) -> Resolved:
        backend = self._backend
        chain = ancestors(path)
        if not chain:
            root = await backend.stat(container_id, WORKSPACE)
            return Resolved(path, WORKSPACE, root, WORKSPACE, ())
        # All at once; a failure below a component that is not a directory does not count.
        results = await asyncio.gather(
            *(backend.stat(container_id, step) for step in chain), return_exceptions=True
        )
        base_dir = WORKSPACE
        for depth, (step, result) in enumerate(zip(chain, results, strict=True)):
            last = depth == len(chain) - 1
            if isinstance(result, BaseException):
                raise result
            stat = result
            if stat is None:
                names = tuple(part.rsplit("/", 1)[-1] for part in chain[depth:])
                return Resolved(path, path, None, base_dir, names)
            target = step
            if stat.is_symlink:
                if not is_inside_workspace(stat.link_target):
                    raise _invalid(
                        field, f"{step} is a symbolic link that leads out of {WORKSPACE}"
                    )
                target = stat.link_target
                stat_of_target = await backend.stat(container_id, target)
                if stat_of_target is None:
                    # A dangling link: nothing to read, and a write would follow it.
                    names = (posixpath.basename(target),)
                    if last:
                        return Resolved(path, target, None, posixpath.dirname(target), names)
                    raise _invalid(field, f"{step} is a dangling symbolic link")
                stat = stat_of_target
            if last:
                return Resolved(path, target, stat, base_dir, ())
            if not stat.is_dir:
                raise _invalid(field, f"{step} is not a directory")
            base_dir = target
        raise AssertionError("unreachable")

    async def write(
        self, container_id: str, path: str, content: bytes, mode: int, field: str
    ) -> FileInfo:
        if len(content) > self._max_file_bytes:
            raise _invalid("content", f"must be at most {self._max_file_bytes} bytes")
        resolved = await self.resolve(container_id, path, field)
        if resolved.stat is not None and resolved.stat.is_dir:
            raise is_a_directory(path, field)
        if resolved.stat is not None:
            directory = posixpath.dirname(resolved.target)
            relative = posixpath.basename(resolved.target)
        else:
            directory = resolved.base_dir
            relative = "/".join(resolved.missing)
        file_mode = mode or DEFAULT_FILE_MODE
        await self._backend.write_file(
            container_id, directory, relative, NewFile(content, file_mode)
        )
        return FileInfo(
            path=path,
            size=len(content),
            is_dir=False,
            mode=file_mode,
            modify_time=utcnow(),
            is_symlink=False,
        )

    async def read(self, container_id: str, path: str, field: str) -> tuple[FileInfo, bytes]:
        resolved = await self.resolve(container_id, path, field)
        stat = resolved.stat
        if stat is None:
            raise file_not_found(path)
        if stat.is_dir:
            raise is_a_directory(path, field)
        if stat.size > self._max_file_bytes:
            raise FailedPrecondition(
                f"{path} is {stat.size} bytes; ReadFile returns at most {self._max_file_bytes}",
                "FILE_TOO_LARGE",
                metadata={"path": path, "size_bytes": str(stat.size)},
            )
        try:
            content = await self._backend.read_file(
                container_id, resolved.target, self._max_file_bytes
            )
        except ArchiveTooLarge as error:  # it grew since the stat
            raise FailedPrecondition(
                f"{path} is larger than {self._max_file_bytes} bytes", "FILE_TOO_LARGE"
            ) from error
        except FileNotFoundError as error:
            raise file_not_found(path) from error
        info = FileInfo(
            path=path,
            size=len(content),
            is_dir=False,
            mode=stat.mode,
            modify_time=stat.modify_time,
            is_symlink=resolved.target != path,
        )
        return info, content

    async def list(
        self, container_id: str, path: str, recursive: bool, field: str
    ) -> list[FileInfo]:
        resolved = await self.resolve(container_id, path, field)
        stat = resolved.stat
        if stat is None:
            raise file_not_found(path)
        if not stat.is_dir:
            raise _invalid(field, f"{path} is not a directory")
        entries = await self._backend.list_tree(container_id, resolved.target)
        prefix = resolved.target.rstrip("/") + "/"
        files = []
        for entry in entries:
            relative = entry.path[len(prefix) :]
            if not recursive and "/" in relative:
                continue
            files.append(
                FileInfo(
                    path=posixpath.join(path, relative),
                    size=entry.size,
                    is_dir=entry.is_dir,
                    mode=entry.mode,
                    modify_time=entry.modify_time,
                    is_symlink=entry.is_symlink,
                )
            )
        files.sort(key=lambda info: info.path)
        return files
