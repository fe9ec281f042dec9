"""Fair shares: an admin's overrides of one user's limits (server/core/limits.py), and the
indexes the shares are counted with."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from server.db.artifact_models import ArtifactVersionRow
from server.db.models import AuditEvent, Base
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow


class UserLimitsRow(Base):
    """Only the limits an admin set: {"max_sandboxes": 50}; absent keys are the defaults."""

    __tablename__ = "user_limits"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


# The counters' indexes are declared here, beside the migration that creates them, so each
# table's model stays its service's alone.

# Registrations per client address in the last hour (auth/registrations.py).
Index(
    "ix_audit_events_register_peer_time",
    AuditEvent.peer_address,
    AuditEvent.create_time,
    postgresql_where=AuditEvent.action == "register",
)

# A user's live sandboxes across projects (sandbox/provision.py).
Index(
    "ix_sandboxes_creator_live",
    SandboxRow.creator_id,
    postgresql_where=SandboxRow.state.in_(LIVE_SANDBOX_STATES) & ~SandboxRow.ephemeral,
)

# The bytes of the artifact versions a user wrote (artifacts/storage_shares.py); an
# index-only sum.
Index(
    "ix_artifact_versions_creator_size",
    ArtifactVersionRow.creator_id,
    ArtifactVersionRow.size_bytes,
)


class ServerProcessRow(Base):
    """A running server process: its concurrency holds count while its lease runs."""

    __tablename__ = "server_processes"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_expires_at: Mapped[datetime]
    start_time: Mapped[datetime] = mapped_column(server_default=func.now())


class ConcurrencyHoldRow(Base):
    """One place held: an open stream of a user, a running execution of a user or project
    (`kind`), by the process `owner` (server/core/holds.py)."""

    __tablename__ = "concurrency_holds"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[uuid.UUID]
    owner: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("ix_concurrency_holds_kind_subject", "kind", "subject"),
        Index("ix_concurrency_holds_owner", "owner"),
    )


class ConcurrencyCountRow(Base):
    """How many places of `kind` for `subject` the process `owner` holds: kept by a trigger
    on concurrency_holds (migration 0021), so that a take sums one row per process."""

    __tablename__ = "concurrency_counts"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    used: Mapped[int]
