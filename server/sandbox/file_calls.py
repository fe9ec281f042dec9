"""The file RPCs of a sandbox: their checks and access rule around files.SandboxFiles.

Viewers may read and list; editors write and delete. Files can be read while a sandbox is
paused; writes and deletes need it running (a delete runs a command in it).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, Violations
from server.core.pagination import Listed, Page, listed
from server.core.timestamps import utcnow
from server.db.sandbox_models import SandboxRow
from server.sandbox import store
from server.sandbox.access import sandbox_for
from server.sandbox.backend import BackendError
from server.sandbox.engine import EngineProvider
from server.sandbox.failures import failure, require_state
from server.sandbox.files import SandboxFiles
from server.sandbox.paths import confine
from server.sandbox.views import FileInfo


class FileCalls:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], engine: EngineProvider) -> None:
        self._sessions = sessions
        self._engine = engine

    async def _target(
        self, caller: Caller, sandbox_id: str, needed: ProjectRole
    ) -> tuple[SandboxRow, str, SandboxFiles]:
        """The sandbox, its container and the files helper, once the caller may do this."""
        self._engine.require()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, needed)
        require_state(row, ("running", "paused"))
        assert row.container_id is not None
        return row, row.container_id, self._engine.for_row(row).files

    async def _touch(self, row: SandboxRow) -> None:
        async with self._sessions() as db:
            await store.touch(db, row.id, utcnow())
            await db.commit()

    async def write(
        self, caller: Caller, sandbox_id: str, path: str, content: bytes, mode: int
    ) -> FileInfo:
        violations = Violations()
        violations.check(bool(path), "path", "is required")
        violations.check(0 <= mode <= 0o7777, "mode", "must be Unix permission bits (0 to 07777)")
        violations.raise_if_any()
        confined = confine(path, "path")
        row, container_id, files = await self._target(caller, sandbox_id, ProjectRole.EDITOR)
        try:
            info = await files.write(container_id, confined, content, mode, "path")
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        await self._touch(row)
        return info

    async def read(self, caller: Caller, sandbox_id: str, path: str) -> tuple[FileInfo, bytes]:
        if not path:
            raise InvalidArgument.of([FieldViolation("path", "is required")])
        confined = confine(path, "path")
        row, container_id, files = await self._target(caller, sandbox_id, ProjectRole.VIEWER)
        try:
            return await files.read(container_id, confined, "path")
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error

    async def list(
        self,
        caller: Caller,
        sandbox_id: str,
        path: str,
        recursive: bool,
        page: Page,
    ) -> Listed[FileInfo]:
        """By path; with `recursive`, everything below `path`."""
        confined = confine(path, "path", allow_root=True)
        row, container_id, files = await self._target(caller, sandbox_id, ProjectRole.VIEWER)
        try:
            entries = await files.list(
                container_id,
                confined,
                recursive,
                "path",
                after=page.after[0] if page.after else None,
                limit=page.size + 1,
            )
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        return listed(entries, page, lambda entry: [entry.path])

    async def read_tree(
        self, caller: Caller, sandbox_id: str, path: str, *, max_files: int, max_bytes: int
    ) -> dict[str, bytes]:
        """The regular files under a directory of a running sandbox (viewers may)."""
        confined = confine(path, "path", allow_root=True)
        row, container_id, files = await self._target(caller, sandbox_id, ProjectRole.VIEWER)
        require_state(row, ("running",))
        try:
            return await files.read_tree(
                container_id, confined, "path", max_files=max_files, max_bytes=max_bytes
            )
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error

    async def delete(self, caller: Caller, sandbox_id: str, path: str, recursive: bool) -> None:
        if not path:
            raise InvalidArgument.of([FieldViolation("path", "is required")])
        confined = confine(path, "path", allow_root=True)
        row, container_id, files = await self._target(caller, sandbox_id, ProjectRole.EDITOR)
        require_state(row, ("running",))
        try:
            await files.delete(container_id, confined, recursive, "path")
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        await self._touch(row)
