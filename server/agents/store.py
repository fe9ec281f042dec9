"""Queries on the agent tables. Callers own the session and the transaction, and check the
project role (access.py) before touching a project's rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.agent_models import AgentProfile, Conversation, DailyUsage, MessageRow

# --- agent profiles ----------------------------------------------------------------------


async def get_profile(
    db: AsyncSession, project_id: uuid.UUID, profile_id: uuid.UUID, *, lock: bool = False
) -> AgentProfile | None:
    query = select(AgentProfile).where(
        AgentProfile.project_id == project_id, AgentProfile.id == profile_id
    )
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def list_profiles(
    db: AsyncSession, project_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> list[AgentProfile]:
    query = select(AgentProfile).where(AgentProfile.project_id == project_id)
    if after is not None:
        query = query.where(AgentProfile.id > after)
    query = query.order_by(AgentProfile.id).limit(limit)
    return list((await db.execute(query)).scalars())


async def profile_name_taken(
    db: AsyncSession, project_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None
) -> bool:
    query = select(AgentProfile.id).where(
        AgentProfile.project_id == project_id, func.lower(AgentProfile.name) == name.lower()
    )
    if except_id is not None:
        query = query.where(AgentProfile.id != except_id)
    return (await db.scalar(query.limit(1))) is not None


async def forget_agent(db: AsyncSession, project_id: uuid.UUID, agent_id: str) -> None:
    """Conversations of a deleted profile go on without one."""
    await db.execute(
        update(Conversation)
        .where(Conversation.project_id == project_id, Conversation.agent_id == agent_id)
        .values(agent_id=None)
    )


# --- conversations -----------------------------------------------------------------------


async def get_conversation(
    db: AsyncSession, conversation_id: uuid.UUID, *, lock: bool = False
) -> Conversation | None:
    query = select(Conversation).where(Conversation.id == conversation_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def list_conversations(
    db: AsyncSession,
    project_id: uuid.UUID,
    agent_id: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Conversation]:
    """Most recently updated first; `after` is the (update_time, id) of the last row served."""
    query = select(Conversation).where(Conversation.project_id == project_id)
    if agent_id:
        query = query.where(Conversation.agent_id == agent_id)
    if after is not None:
        query = query.where(tuple_(Conversation.update_time, Conversation.id) < tuple_(*after))
    query = query.order_by(Conversation.update_time.desc(), Conversation.id.desc()).limit(limit)
    return list((await db.execute(query)).scalars())


async def add_messages(
    db: AsyncSession,
    conversation_id: uuid.UUID,
    messages: Sequence[dict[str, Any]],
    title: str = "",
) -> None:
    """Adds messages (column values) to a conversation and moves it to the top of the
    recently updated list; `title` names an untitled conversation."""
    await db.execute(
        insert(MessageRow), [{"conversation_id": conversation_id, **row} for row in messages]
    )
    values: dict[str, Any] = {
        "message_count": Conversation.message_count + len(messages),
        "update_time": func.now(),
        "last_message_time": func.now(),
    }
    if title:
        values["title"] = title
    await db.execute(update(Conversation).where(Conversation.id == conversation_id).values(values))


# --- messages ----------------------------------------------------------------------------


async def list_messages(
    db: AsyncSession, conversation_id: uuid.UUID, after: uuid.UUID | None, limit: int | None
) -> list[MessageRow]:
    """Oldest first (ids are time-ordered)."""
    query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
    if after is not None:
        query = query.where(MessageRow.id > after)
    query = query.order_by(MessageRow.id)
    if limit is not None:
        query = query.limit(limit)
    return list((await db.execute(query)).scalars())


async def recent_turns(
    db: AsyncSession, conversation_id: uuid.UUID, limit: int
) -> list[tuple[str, str]]:
    """(role, content) of the newest user and assistant messages with text, oldest first."""
    query = (
        select(MessageRow.role, MessageRow.content)
        .where(
            MessageRow.conversation_id == conversation_id,
            MessageRow.role.in_(("user", "assistant")),
            MessageRow.content != "",
        )
        .order_by(MessageRow.id.desc())
        .limit(limit)
    )
    rows = (await db.execute(query)).all()
    return [(role, content) for role, content in reversed(rows)]


async def settle_message(db: AsyncSession, message_id: uuid.UUID, **values: Any) -> None:
    await db.execute(
        update(MessageRow)
        .where(MessageRow.id == message_id)
        .values(update_time=func.now(), **values)
    )


# --- usage -------------------------------------------------------------------------------


async def add_usage(
    db: AsyncSession,
    user_id: uuid.UUID,
    day: date,
    model: str,
    input_tokens: int,
    output_tokens: int,
    requests: int = 1,
) -> None:
    statement = insert(DailyUsage).values(
        user_id=user_id,
        day=day,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        request_count=requests,
        image_count=0,
    )
    excluded = statement.excluded
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=[DailyUsage.user_id, DailyUsage.day, DailyUsage.model],
            set_={
                "input_tokens": DailyUsage.input_tokens + excluded.input_tokens,
                "output_tokens": DailyUsage.output_tokens + excluded.output_tokens,
                "request_count": DailyUsage.request_count + excluded.request_count,
            },
        )
    )


async def tokens_used_on(db: AsyncSession, user_id: uuid.UUID, day: date) -> int:
    total = await db.scalar(
        select(
            func.coalesce(func.sum(DailyUsage.input_tokens + DailyUsage.output_tokens), 0)
        ).where(DailyUsage.user_id == user_id, DailyUsage.day == day)
    )
    return int(total or 0)


async def usage_between(
    db: AsyncSession, user_id: uuid.UUID, start: date, end: date
) -> list[DailyUsage]:
    query = (
        select(DailyUsage)
        .where(DailyUsage.user_id == user_id, DailyUsage.day >= start, DailyUsage.day <= end)
        .order_by(DailyUsage.day, DailyUsage.model)
    )
    return list((await db.execute(query)).scalars())
