"""A version's files: a tree's, or a single artifact's content as its one file (named by
its file name, or "content"), so that clients can treat every artifact alike. Listed in
path order, found by path, or packed into an archive produced as it is sent (archive.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import store
from server.artifacts.access import artifact_for
from server.artifacts.archive import ArchiveFormat, archive_chunks
from server.artifacts.core import ArtifactsCore, checked_version_request, version_of
from server.artifacts.kinds import Kind
from server.artifacts.views import FileView
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, NotFound
from server.core.pagination import Listed, Page, listed
from server.db.artifact_models import ArtifactRow, ArtifactVersionRow

FILE_NOT_FOUND = "ARTIFACT_FILE_NOT_FOUND"
SINGLE_FILE_NAME = "content"
"""The one file of an artifact that is not a tree and has no file name."""
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Archive:
    filename: str
    content_type: str
    chunks: AsyncIterator[bytes]


def file_not_found(path: str) -> NotFound:
    return NotFound("the version has no file at that path", FILE_NOT_FOUND, {"path": path})


def single_file(artifact: ArtifactRow, version: ArtifactVersionRow) -> FileView:
    """A non-tree version's content as its one file, named by the artifact's file name."""
    return FileView(
        path=artifact.filename or SINGLE_FILE_NAME,
        size_bytes=version.size_bytes,
        sha256=version.sha256,
        content_type=version.content_type,
    )


class ArtifactFiles:
    def __init__(self, core: ArtifactsCore) -> None:
        self._core = core

    async def list_files(
        self, caller: Caller, aid: uuid.UUID, version: int, page: Page
    ) -> Listed[FileView]:
        """A version's files in path order. Later pages stay on the version of the first."""
        if version < 0:
            raise InvalidArgument.of(
                [FieldViolation("version", "must be a version number, or 0 for the latest")]
            )
        listed_version, after = _file_cursor(page.after)
        async with self._core.sessions() as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            row = await version_of(db, artifact, listed_version or version)
            if artifact.kind == Kind.TREE.value:
                rows = await store.list_files(db, aid, row.version, after, page.size + 1)
                files = [FileView.of(file) for file in rows]
            else:
                files = [] if after else [single_file(artifact, row)]
        return listed(files, page, lambda file: [row.version, file.path])

    async def archive(
        self, caller: Caller, artifact_id: str, version: int, archive_format: ArchiveFormat
    ) -> Archive:
        """A version's files packed as they are sent (a non-tree version: its one file)."""
        aid = checked_version_request(artifact_id, version)
        async with self._core.sessions() as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            row = await version_of(db, artifact, version)
            files: Sequence[FileView]
            if artifact.kind == Kind.TREE.value:
                rows = await store.list_files(db, aid, row.version, "", None)
                files = [FileView.of(file) for file in rows]
            else:
                files = [single_file(artifact, row)]
        return Archive(
            filename=f"{_archive_name(artifact)}.{archive_format.value}",
            content_type=archive_format.content_type,
            chunks=archive_chunks(archive_format, files, self._core.blobs, row.create_time),
        )


async def file_at(
    db: AsyncSession, artifact: ArtifactRow, version: ArtifactVersionRow, path: str
) -> FileView:
    """The version's file at `path`: a tree's file, or a single artifact's one file."""
    if artifact.kind == Kind.TREE.value:
        row = await store.get_file(db, artifact.id, version.version, path)
        if row is None:
            raise file_not_found(path)
        return FileView.of(row)
    file = single_file(artifact, version)
    if path != file.path:
        raise file_not_found(path)
    return file


def _file_cursor(after: Sequence[str] | None) -> tuple[int, str]:
    """The version and last path a ListArtifactFiles page token continues after."""
    if not after:
        return 0, ""
    try:
        return int(after[0]), after[1]
    except (ValueError, IndexError):
        raise InvalidArgument.of(
            [FieldViolation("page_token", "not a page token issued by this API")],
            reason="INVALID_PAGE_TOKEN",
        ) from None


def _archive_name(artifact: ArtifactRow) -> str:
    name = artifact.filename.rsplit("/", 1)[-1] or artifact.title or "artifact"
    return _UNSAFE_IN_NAME.sub("_", name)
