"""Builds of artifact versions (esbuild bundles, server/artifacts/builds.py) and their output
files, whose bytes live in the artifacts' blob store under their SHA-256 like versions'."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base


class BuildRow(Base):
    __tablename__ = "artifact_builds"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read by SQLAlchemy

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    artifact_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    requested_entry: Mapped[str] = mapped_column(String(1024), default="")
    """The entry point the request named ("": found by the build); what a rebuild reuses."""
    entry_point: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[str] = mapped_column(String(16))
    diagnostics: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        ForeignKeyConstraint(
            ["artifact_id", "version"],
            ["artifact_versions.artifact_id", "artifact_versions.version"],
            ondelete="CASCADE",
        ),
        CheckConstraint("status IN ('succeeded', 'failed')", name="status"),
        Index("ix_artifact_builds_version", "artifact_id", "version", "requested_entry"),
    )


class BuildFileRow(Base):
    __tablename__ = "artifact_build_files"

    build_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("artifact_builds.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))
