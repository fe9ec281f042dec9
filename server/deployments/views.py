"""What the deployment domain returns: frozen views of targets and deployments."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from server.db.deployment_models import DeploymentRow, DeployTargetRow


class TargetKind(StrEnum):
    S3_WEBSITE = "s3_website"
    NETLIFY = "netlify"
    VERCEL = "vercel"
    GITHUB_PAGES = "github_pages"


class Status(StrEnum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    LIVE = "live"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def settled(self) -> bool:
        """No longer changes by itself (a LIVE one may still be superseded)."""
        return self not in (Status.QUEUED, Status.UPLOADING)


@dataclass(frozen=True, slots=True)
class TargetView:
    id: uuid.UUID
    project_id: uuid.UUID
    display_name: str
    kind: TargetKind
    config: dict[str, Any]
    token_hint: str
    creator_id: uuid.UUID | None
    create_time: datetime

    @classmethod
    def of(cls, row: DeployTargetRow) -> TargetView:
        return cls(
            id=row.id,
            project_id=row.project_id,
            display_name=row.display_name,
            kind=TargetKind(row.kind),
            config=dict(row.config),
            token_hint=row.token_hint,
            creator_id=row.creator_id,
            create_time=row.create_time,
        )


@dataclass(frozen=True, slots=True)
class DeploymentView:
    id: uuid.UUID
    project_id: uuid.UUID
    target_id: uuid.UUID
    build_id: uuid.UUID | None
    artifact_id: uuid.UUID | None
    artifact_version: int
    status: Status
    url: str
    file_count: int
    uploaded_file_count: int
    error_reason: str
    error_message: str
    creator_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime
    live_time: datetime | None

    @classmethod
    def of(cls, row: DeploymentRow) -> DeploymentView:
        return cls(
            id=row.id,
            project_id=row.project_id,
            target_id=row.target_id,
            build_id=row.build_id,
            artifact_id=row.artifact_id,
            artifact_version=row.artifact_version,
            status=Status(row.status),
            url=row.url,
            file_count=row.file_count,
            uploaded_file_count=row.uploaded_file_count,
            error_reason=row.error_reason,
            error_message=row.error_message,
            creator_id=row.creator_id,
            create_time=row.create_time,
            update_time=row.update_time,
            live_time=row.live_time,
        )
