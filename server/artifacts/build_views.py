"""What the build domain returns: builds as stored, and the events of a build stream."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from server.builds.events import BuildLog, BuildStatus, Diagnostic, Severity
from server.db.build_models import BuildFileRow, BuildRow


@dataclass(frozen=True, slots=True)
class BuildFileView:
    path: str
    size_bytes: int
    sha256: str
    content_type: str

    @classmethod
    def of(cls, row: BuildFileRow) -> BuildFileView:
        return cls(row.path, row.size_bytes, row.sha256, row.content_type)


@dataclass(frozen=True, slots=True)
class BuildView:
    id: uuid.UUID
    artifact_id: uuid.UUID
    version: int
    status: BuildStatus
    entry_point: str
    outputs: tuple[BuildFileView, ...]
    diagnostics: tuple[Diagnostic, ...]
    duration: timedelta
    creator_id: uuid.UUID | None
    create_time: datetime

    @classmethod
    def of(cls, row: BuildRow, files: list[BuildFileRow]) -> BuildView:
        return cls(
            id=row.id,
            artifact_id=row.artifact_id,
            version=row.version,
            status=BuildStatus(row.status),
            entry_point=row.entry_point,
            outputs=tuple(BuildFileView.of(file) for file in files),
            diagnostics=tuple(diagnostic_of(item) for item in row.diagnostics),
            duration=timedelta(milliseconds=row.duration_ms),
            creator_id=row.creator_id,
            create_time=row.create_time,
        )


def diagnostic_document(diagnostic: Diagnostic) -> dict[str, object]:
    """A diagnostic as stored (JSON)."""
    return {
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
    }


def diagnostic_of(document: dict[str, object]) -> Diagnostic:
    return Diagnostic(
        severity=Severity(str(document.get("severity", "error"))),
        message=str(document.get("message", "")),
        file=str(document.get("file", "")),
        line=int(str(document.get("line", 0))),
        column=int(str(document.get("column", 0))),
    )


@dataclass(frozen=True, slots=True)
class BuildStarted:
    artifact_id: uuid.UUID
    version: int
    """The version built (the latest when 0 was asked for)."""
    cached: bool
    """True: the version was built before; `completed` follows at once."""


@dataclass(frozen=True, slots=True)
class BuildCompleted:
    build: BuildView
    cached: bool


BuildStreamEvent: TypeAlias = BuildStarted | BuildLog | Diagnostic | BuildCompleted
