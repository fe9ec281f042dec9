"""Sandbox tables: sandboxes (one per container), the executions run in them, and the Docker
hosts whose duties one process at a time holds (a lease, like runs')."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Interval,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base

SANDBOX_STATES = ("creating", "running", "paused", "deleted", "lost", "failed")
LIVE_SANDBOX_STATES = ("creating", "running", "paused")
EXECUTION_STATES = ("running", "finished", "lost")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class SandboxRow(Base):
    """A sandbox; the row mirrors its container (`container_id`)."""

    __tablename__ = "sandboxes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    runtime: Mapped[str] = mapped_column(String(32))
    image: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    state_message: Mapped[str] = mapped_column(String(200), default="")
    container_id: Mapped[str | None] = mapped_column(String(128))
    # The Docker host (engine) the container runs on: sandbox_hosts.id, by value (a host's
    # row appears when a process first claims its duties). NULL: made before hosts were
    # recorded, any host's reconciliation takes it.
    host_id: Mapped[str | None] = mapped_column(String(200))
    warm: Mapped[bool] = mapped_column(Boolean, default=False)
    # RunCode's sandboxes: destroyed when their one execution ends.
    ephemeral: Mapped[bool] = mapped_column(Boolean, default=False)
    start_duration: Mapped[timedelta | None] = mapped_column(Interval)
    # Effective limits: ints, and the timeouts in milliseconds.
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    last_active_time: Mapped[datetime] = mapped_column(server_default=func.now())
    end_time: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"state IN ({_in(SANDBOX_STATES)})", name="state"),
        # Listing, newest first. Not by id alone: a warm sandbox's id was given to its
        # container when the pool started it, so ids do not follow creation order.
        Index("ix_sandboxes_project_id_create_time", "project_id", "create_time", "id"),
        Index(
            "ix_sandboxes_live",
            "last_active_time",
            postgresql_where=f"state IN ({_in(LIVE_SANDBOX_STATES)})",
        ),
        Index(
            "ix_sandboxes_host_id_live",
            "host_id",
            postgresql_where=f"state IN ({_in(LIVE_SANDBOX_STATES)})",
        ),
    )


class SandboxExecution(Base):
    """One Exec or RunCode: what ran, how it ended and how much it printed."""

    __tablename__ = "sandbox_executions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sandbox_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sandboxes.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # {"argv": [...]} or {"shell": "..."} or {"language": "..."}; never env or stdin.
    command: Mapped[dict[str, Any]] = mapped_column(default=dict)
    working_dir: Mapped[str] = mapped_column(String(4096), default="/workspace")
    state: Mapped[str] = mapped_column(String(16), default="running")
    # The command's process group inside the container, to kill it if the server dies.
    process_group: Mapped[int | None] = mapped_column(Integer)
    # The server process relaying it, which renews the lease while it does; once the lease
    # expires (the process died), the host's duty holder kills what it left and marks it lost.
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    """When CancelExecution asked for it to stop (its relaying process is also notified;
    this catches a notification it missed: server/core/cancels.py)."""
    reason: Mapped[str | None] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    timed_out: Mapped[bool] = mapped_column(Boolean, default=False)
    oom_killed: Mapped[bool] = mapped_column(Boolean, default=False)
    output_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    stdout_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stderr_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    start_time: Mapped[datetime] = mapped_column(server_default=func.now())
    end_time: Mapped[datetime | None]
    duration: Mapped[timedelta | None] = mapped_column(Interval)

    __table_args__ = (
        CheckConstraint(f"state IN ({_in(EXECUTION_STATES)})", name="state"),
        Index("ix_sandbox_executions_running_owner", "owner", postgresql_where="state = 'running'"),
    )


class SandboxHostRow(Base):
    """A Docker host's duties (reconciliation, reaper, warm pool, following container ends):
    held by the process `owner` while `lease_expires_at` (database clock) is in the future;
    every takeover increments `lease_token`."""

    __tablename__ = "sandbox_hosts"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None]
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class SandboxPoolRow(Base):
    """A warm container on a Docker host, started ahead of demand with a runtime's default
    limits (`limits_key`) and the id its sandbox will have: any process claims one (deleting
    the row in the transaction that creates the sandbox's); the host's duty holder refills."""

    __tablename__ = "sandbox_pool"

    container_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sandbox_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    host_id: Mapped[str] = mapped_column(String(200))
    runtime: Mapped[str] = mapped_column(String(32))
    image: Mapped[str] = mapped_column(String(255))
    limits_key: Mapped[str] = mapped_column(String(100))
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("ix_sandbox_pool_host_id_runtime_create_time", "host_id", "runtime", "create_time"),
    )
