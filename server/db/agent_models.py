"""Agent tables: project agent profiles, conversations, their messages, and daily token usage.

Built-in agent profiles live in code (server/agents/builtins.py), so `conversations.agent_id`
is a string without a foreign key: a built-in's well-known id or a project profile's UUID.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base

MESSAGE_ROLES = ("user", "assistant", "system", "tool", "summary")
"""`summary`: the model's summary of older messages (compaction, server/agents/compaction.py)."""
MESSAGE_STATUSES = ("in_progress", "complete", "cancelled", "failed", "interrupted")
"""`interrupted`: the server streaming the answer died; the sweeper kept its saved text."""


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class AgentProfile(Base):
    """A project's own agent profile."""

    __tablename__ = "agent_profiles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(2000), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    tools: Mapped[list[str]] = mapped_column(JSONB, default=list)
    temperature: Mapped[float | None] = mapped_column(Float)
    max_output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    top_p: Mapped[float | None] = mapped_column(Float)
    stop_sequences: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_agent_profiles_name"),)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    last_message_time: Mapped[datetime | None]

    __table_args__ = (
        # ListConversations: a project's conversations, most recently updated first.
        Index("ix_conversations_project_recent", "project_id", "update_time", "id"),
    )


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    tool_call_id: Mapped[str | None] = mapped_column(String(200))
    artifact_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # {"code": int, "reason": str, "message": str, "metadata": {...}} of a failed answer.
    error: Mapped[dict[str, Any] | None]
    summarized_through_id: Mapped[uuid.UUID | None]
    """A summary's newest covered message (no foreign key: the history it covers is read
    by id order only)."""
    # No Python-side default: the chat hot path's one-statement insert names its columns.
    summarized_message_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cancel_requested_at: Mapped[datetime | None]
    """When CancelAnswer asked for this answer to stop (its writer, in any process, is also
    notified; this catches a notification it missed: server/core/cancels.py)."""
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (
        CheckConstraint(f"role IN ({_in(MESSAGE_ROLES)})", name="role"),
        CheckConstraint(f"status IN ({_in(MESSAGE_STATUSES)})", name="status"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # A chat's history starts at its conversation's newest summary.
        Index(
            "ix_messages_summaries",
            "conversation_id",
            "id",
            postgresql_where=text("role = 'summary'"),
        ),
        # The sweeper's candidates (few rows). On `id`, so saving an answer's text does not
        # touch the index; only its settling does.
        Index("ix_messages_in_progress", "id", postgresql_where=text("status = 'in_progress'")),
    )


class DailyUsage(Base):
    """Tokens one user spent on one model on one UTC day (upserted per answer)."""

    __tablename__ = "token_usage_daily"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    image_count: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    """What the tokens and images cost, in billionths of a US dollar, at the model's prices
    when they were used."""
