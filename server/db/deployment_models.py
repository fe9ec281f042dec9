"""Deploy targets (where a project's sites are published, their token sealed at rest) and
deployments (one publication each, with its progress) — server/deployments/."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base

TARGET_KINDS = ("s3_website", "netlify", "vercel", "github_pages")
DEPLOYMENT_STATUSES = ("queued", "uploading", "live", "failed", "superseded")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class DeployTargetRow(Base):
    __tablename__ = "deploy_targets"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read by SQLAlchemy

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The kind's settings (bucket, site id, remote, ...), never a secret."""
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The token, sealed (server/core/sealing.py); None when the target needs none."""
    encryption_key_id: Mapped[str] = mapped_column(String(16), default="")
    token_hint: Mapped[str] = mapped_column(String(8), default="")
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(TARGET_KINDS)})", name="kind"),
        Index("ix_deploy_targets_project_id_id", "project_id", "id"),
    )


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read by SQLAlchemy

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # A target with deployments is not deleted (DEPLOY_TARGET_IN_USE); with its project, both go.
    target_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deploy_targets.id", ondelete="CASCADE")
    )
    # Artifacts belong to ArtifactService: plain references, no foreign keys.
    build_id: Mapped[uuid.UUID | None]
    artifact_id: Mapped[uuid.UUID | None]
    artifact_version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048), default="")
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_file_count: Mapped[int] = mapped_column(Integer, default=0)
    error_reason: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(String(1024), default="")
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """What the target needs to remove the deployment (its `Published.handle`)."""
    heartbeat_time: Mapped[datetime] = mapped_column(server_default=func.now())
    """Refreshed while a process publishes it; a stale one was interrupted."""
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    live_time: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"status IN ({_in(DEPLOYMENT_STATUSES)})", name="status"),
        CheckConstraint("(build_id IS NULL) <> (artifact_id IS NULL)", name="one_source"),
        Index("ix_deployments_project_id_id", "project_id", "id"),
        Index("ix_deployments_target_id", "target_id"),
        # The sweeper looks for deployments in progress.
        Index(
            "ix_deployments_in_progress",
            "heartbeat_time",
            postgresql_where="status IN ('queued', 'uploading')",
        ),
    )
