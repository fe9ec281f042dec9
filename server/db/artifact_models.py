"""Artifact tables: artifacts, their immutable, content-addressed versions, and the files of
tree versions.

A version's bytes live in the blob store under their SHA-256 (`artifact_versions.sha256`);
identical content is stored once and shared by every version that has it. The artifact row
repeats the latest version's size, hash and content type, so reads need no join. A tree
version's content is its manifest; each of its files is a row of `artifact_files` whose
bytes are a blob of their own (`artifact_files.sha256`), so a blob is referenced by versions
and by files.
"""

from __future__ import annotations

import uuid
from datetime import datetime

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
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base

ARTIFACT_KINDS = ("code", "html", "react", "markdown", "image", "file", "tree")
ARTIFACT_ORIGINS = ("chat", "run", "api", "upload", "image_generation")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    # Fetch server-side defaults (times) on INSERT/UPDATE: rows outlive their sessions.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read by SQLAlchemy

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255), default="")
    language: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(255))
    origin: Mapped[str] = mapped_column(String(24))
    # Conversations and runs belong to AgentService: plain references, no foreign keys.
    conversation_id: Mapped[uuid.UUID | None]
    message_id: Mapped[uuid.UUID | None]
    run_id: Mapped[uuid.UUID | None]
    latest_version: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(ARTIFACT_KINDS)})", name="kind"),
        CheckConstraint(f"origin IN ({_in(ARTIFACT_ORIGINS)})", name="origin"),
        CheckConstraint("latest_version >= 1", name="latest_version"),
        Index("ix_artifacts_project_id_id", "project_id", "id"),
        # Chat extraction finds a conversation's artifact by file name.
        Index(
            "ix_artifacts_conversation_filename",
            "conversation_id",
            "filename",
            postgresql_where="conversation_id IS NOT NULL",
        ),
    )


class ArtifactVersionRow(Base):
    __tablename__ = "artifact_versions"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read by SQLAlchemy

    artifact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[uuid.UUID | None]
    run_id: Mapped[uuid.UUID | None]
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
    )


class ArtifactFileRow(Base):
    """One file of a tree version (kind "tree"); its bytes are the blob `sha256`."""

    __tablename__ = "artifact_files"

    artifact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        ForeignKeyConstraint(
            ["artifact_id", "version"],
            ["artifact_versions.artifact_id", "artifact_versions.version"],
            ondelete="CASCADE",
        ),
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
    )
