"""Requests made safe to retry (AIP-155): one row per (user, method, request id).

A row is `pending` while its first call runs (`owner` names that call; a retry waits for
it, or takes it over once `claimed_at` is older than the lease) and `done` once the
result is stored. `response` is the result, encrypted (it can hold a secret, e.g. a new
API key); `resource` names what a streaming call created, for calls replayed from their
own tables (Chat). Rows expire after a day; times are compared with the database clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import Base

IDEMPOTENCY_STATES = ("pending", "done")


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    resource: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            f"state IN ('{IDEMPOTENCY_STATES[0]}', '{IDEMPOTENCY_STATES[1]}')", name="state"
        ),
        Index("ix_idempotency_records_expire_time", "expire_time"),
    )
