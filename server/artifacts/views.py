"""What the artifact domain hands out: plain values, no ORM rows, no protos."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from server.artifacts.kinds import Kind, Origin
from server.db.artifact_models import ArtifactFileRow, ArtifactRow, ArtifactVersionRow


@dataclass(frozen=True)
class ArtifactView:
    """An artifact as of its latest version."""

    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    filename: str
    language: str
    kind: Kind
    content_type: str
    origin: Origin
    conversation_id: uuid.UUID | None
    message_id: uuid.UUID | None
    run_id: uuid.UUID | None
    latest_version: int
    size_bytes: int
    sha256: str
    creator_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: ArtifactRow) -> ArtifactView:
        return cls(
            id=row.id,
            project_id=row.project_id,
            title=row.title,
            filename=row.filename,
            language=row.language,
            kind=Kind(row.kind),
            content_type=row.content_type,
            origin=Origin(row.origin),
            conversation_id=row.conversation_id,
            message_id=row.message_id,
            run_id=row.run_id,
            latest_version=row.latest_version,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            creator_id=row.creator_id,
            create_time=row.create_time,
            update_time=row.update_time,
        )


@dataclass(frozen=True)
class VersionView:
    """One immutable version of an artifact."""

    artifact_id: uuid.UUID
    version: int
    size_bytes: int
    sha256: str
    content_type: str
    message_id: uuid.UUID | None
    run_id: uuid.UUID | None
    creator_id: uuid.UUID | None
    create_time: datetime

    @classmethod
    def of(cls, row: ArtifactVersionRow) -> VersionView:
        return cls(
            artifact_id=row.artifact_id,
            version=row.version,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            content_type=row.content_type,
            message_id=row.message_id,
            run_id=row.run_id,
            creator_id=row.creator_id,
            create_time=row.create_time,
        )


@dataclass(frozen=True)
class FileView:
    """One file of a version: a tree's file, or a single artifact's content as its one file."""

    path: str
    size_bytes: int
    sha256: str
    content_type: str

    @classmethod
    def of(cls, row: ArtifactFileRow) -> FileView:
        return cls(
            path=row.path,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            content_type=row.content_type,
        )
