"""Typed SQLAlchemy models. Every schema change comes with an Alembic migration."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.core.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Fetch server-generated values (create/update times) with RETURNING on INSERT and
    # UPDATE, so rows stay readable after their session has closed.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _id_column() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(server_default=func.now(), onupdate=func.now())


# --- auth ---------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _id_column()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16), default="user")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_time: Mapped[datetime | None]
    create_time: Mapped[datetime] = _created()
    update_time: Mapped[datetime] = _updated()

    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)


class Session(Base):
    """A login: refresh tokens rotate within it; reuse of a rotated one revokes it."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = _id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    peer_address: Mapped[str] = mapped_column(String(64), default="")
    create_time: Mapped[datetime] = _created()
    last_use_time: Mapped[datetime] = _created()
    expire_time: Mapped[datetime]
    revoke_time: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """Every refresh token ever issued, stored as a SHA-256 hash; `rotate_time` marks used ones."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    create_time: Mapped[datetime] = _created()
    rotate_time: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    create_time: Mapped[datetime] = _created()
    expire_time: Mapped[datetime | None]
    last_used_time: Mapped[datetime | None]
    revoke_time: Mapped[datetime | None]
    scopes: Mapped[list[str]] = mapped_column(
        JSONB, server_default=text('\'["read", "write", "sandbox:exec"]\'::jsonb')
    )


class OneTimeToken(Base):
    """Password-reset and email-verification tokens, stored hashed, single use."""

    __tablename__ = "one_time_tokens"

    id: Mapped[uuid.UUID] = _id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    create_time: Mapped[datetime] = _created()
    expire_time: Mapped[datetime]
    use_time: Mapped[datetime | None]


class EmailOutbox(Base):
    """Mail to send; a background sender delivers it (or logs it when no SMTP is set)."""

    __tablename__ = "email_outbox"

    id: Mapped[uuid.UUID] = _id_column()
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = _created()
    send_time: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_email_outbox_pending", "create_time", postgresql_where="send_time IS NULL"),
    )


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = _id_column()
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    subject_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(320), default="")
    peer_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    create_time: Mapped[datetime] = _created()

    __table_args__ = (
        Index("ix_audit_events_action_target_time", "action", "target", "create_time"),
    )


# --- projects -----------------------------------------------------------------------


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = _id_column()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(2000), default="")
    repository_url: Mapped[str] = mapped_column(String(500), default="")
    default_runtime: Mapped[str] = mapped_column(String(32), default="")
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = _created()
    update_time: Mapped[datetime] = _updated()


class ProjectMember(Base):
    __tablename__ = "project_members"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[datetime] = _created()
    update_time: Mapped[datetime] = _updated()

    __table_args__ = (CheckConstraint("role IN ('owner', 'editor', 'viewer')", name="role"),)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = _id_column()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="todo")
    position: Mapped[int] = mapped_column(Integer)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    agent_id: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[uuid.UUID | None]
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = _created()
    update_time: Mapped[datetime] = _updated()

    __table_args__ = (
        CheckConstraint("status IN ('todo', 'in_progress', 'review', 'done')", name="status"),
        CheckConstraint("position >= 0", name="position"),
        UniqueConstraint(
            "project_id",
            "status",
            "position",
            name="uq_tasks_column_position",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
