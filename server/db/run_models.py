"""Agent runs and their event log (see server/agents/runs/ and shared RUNS.md).

`runs.last_seq` is the seq of the run's newest event: appending reserves seqs with
`UPDATE runs SET last_seq = last_seq + n WHERE id = … AND lease_token = …`, which also
proves the writer still holds the lease (fencing). `lease_*` columns are compared with the
database clock only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base

RUN_STATUSES = (
    "queued",
    "running",
    "waiting_for_approval",
    "succeeded",
    "failed",
    "cancelled",
)
APPROVAL_MODES = ("auto", "ask_before_bash", "ask_before_writes")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(64))
    goal: Mapped[str] = mapped_column(Text)
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24), default="queued")
    approval_mode: Mapped[str] = mapped_column(String(24), default="auto")
    sandbox_id: Mapped[uuid.UUID | None]
    result: Mapped[str] = mapped_column(Text, default="")
    # {"code": int, "reason": str, "message": str, "metadata": {...}} of a failed run.
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # {"id", "name", "arguments"} of the call waiting for approval.
    pending_tool_call: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # An editor's decision on it, until the run's owner records it as an event:
    # {"tool_call_id", "approved", "reason", "user_id"}.
    approval: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Steering messages (SendRunMessage) not yet recorded as events, oldest first:
    # [{"content", "author_user_id"}, …].
    inbox: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    step_count: Mapped[int] = mapped_column(Integer, default=0)
    max_steps: Mapped[int] = mapped_column(Integer)
    token_budget: Mapped[int] = mapped_column(BigInteger)
    time_limit_seconds: Mapped[float] = mapped_column(Float)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"status IN ({_in(RUN_STATUSES)})", name="status"),
        CheckConstraint(f"approval_mode IN ({_in(APPROVAL_MODES)})", name="approval_mode"),
        CheckConstraint("max_steps >= 1", name="max_steps"),
        CheckConstraint("last_seq >= 0", name="last_seq"),
        Index("ix_runs_project_id_id", "project_id", "id"),
        Index("ix_runs_creator_id_status", "creator_id", "status"),
        Index("ix_runs_status_lease_expires_at", "status", "lease_expires_at"),
    )


class RunEventRow(Base):
    """One event of a run; `payload` is the encoded event (see server/agents/runs/convert.py)."""

    __tablename__ = "run_events"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # Provider data the run needs back but clients never see (a Gemini thought signature).
    internal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint("seq >= 1", name="seq"),)
