"""Queries on the agent tables. Callers own the session and the transaction, and check the
project role (access.py) before touching a project's rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    ScalarSelect,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnClause

from server.db.agent_models import AgentProfile, Conversation, DailyUsage, MessageRow
from server.db.models import ProjectMember
from server.db.reads import DirectRead, DirectWrite
from server.db.run_models import RunRow

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


async def get_conversation(db: AsyncSession, conversation_id: uuid.UUID) -> Conversation | None:
    query = select(Conversation).where(Conversation.id == conversation_id)
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


@dataclass(frozen=True, slots=True)
class StoredHistory:
    """What a chat's history is built from: the conversation's newest summary (if any) and
    the user and assistant messages with text after the newest message it covers."""

    summary_id: uuid.UUID | None
    summary: str
    turns: list[tuple[uuid.UUID, str, str]]
    """(id, role, content), oldest first."""


async def recent_turns(db: AsyncSession, conversation_id: uuid.UUID, limit: int) -> StoredHistory:
    """The newest summary and the newest `limit` user and assistant messages with text that
    it does not cover, oldest first."""
    newest_summary = (
        await db.execute(
            select(MessageRow.id, MessageRow.content, MessageRow.summarized_through_id)
            .where(MessageRow.conversation_id == conversation_id, MessageRow.role == "summary")
            .order_by(MessageRow.id.desc())
            .limit(1)
        )
    ).first()
    query = (
        select(MessageRow.id, MessageRow.role, MessageRow.content)
        .where(
            MessageRow.conversation_id == conversation_id,
            MessageRow.role.in_(("user", "assistant")),
            MessageRow.content != "",
        )
        .order_by(MessageRow.id.desc())
        .limit(limit)
    )
    if newest_summary is not None and newest_summary[2] is not None:
        query = query.where(MessageRow.id > newest_summary[2])
    rows = (await db.execute(query)).all()
    return StoredHistory(
        summary_id=newest_summary[0] if newest_summary is not None else None,
        summary=newest_summary[1] if newest_summary is not None else "",
        turns=[(key, role, content) for key, role, content in reversed(rows)],
    )


async def settle_message(db: AsyncSession, message_id: uuid.UUID, **values: Any) -> None:
    await db.execute(
        update(MessageRow)
        .where(MessageRow.id == message_id)
        .values(update_time=func.now(), **values)
    )


# --- usage -------------------------------------------------------------------------------


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


# --- the chat hot path ---------------------------------------------------------------------
# Every answer opens with one read and one write and ends with one write, each one statement
# built and compiled once and run straight on asyncpg outside a transaction (one statement is
# atomic by itself): the read on the read lane (server/db/reads.py), the writes on a pooled
# connection. Through Sessions, with BEGIN and COMMIT, the same work took 5 statements more
# and about 2 ms more CPU per answer (bench/bench_chat.py, "server CPU per chat": 3.3 ms
# before, 1.4 ms after).


_MESSAGES = cast(Table, MessageRow.__table__)
_CONVERSATIONS = cast(Table, Conversation.__table__)
_USAGE = cast(Table, DailyUsage.__table__)
_EMPTY_LIST: ColumnClause[Any] = literal_column("'[]'::jsonb")


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """The conversation a chat answers in, with the caller's membership role in its project
    (None: not a member)."""

    id: uuid.UUID
    project_id: uuid.UUID
    agent_id: str | None
    title: str
    model: str
    message_count: int
    member_role: str | None


_CHAT_TARGET = DirectRead(
    select(
        Conversation.id,
        Conversation.project_id,
        Conversation.agent_id,
        Conversation.title,
        Conversation.model,
        Conversation.message_count,
        select(ProjectMember.role)
        .where(
            ProjectMember.project_id == Conversation.project_id,
            ProjectMember.user_id == bindparam("user_id"),
        )
        .scalar_subquery()
        .label("member_role"),
    ).where(Conversation.id == bindparam("conversation_id"))
)


async def chat_target(
    sessions: async_sessionmaker[AsyncSession], conversation_id: uuid.UUID, user_id: uuid.UUID
) -> ChatTarget | None:
    row = await _CHAT_TARGET.first(sessions, conversation_id=conversation_id, user_id=user_id)
    return ChatTarget(**dict(row.items())) if row is not None else None


def _turn_message(prefix: str, role: str, status: str) -> dict[str, Any]:
    return {
        "id": bindparam(f"{prefix}_id"),
        "conversation_id": bindparam("conversation_id"),
        "role": literal_column(f"'{role}'"),
        "content": bindparam(f"{prefix}_content"),
        "model": bindparam(f"{prefix}_model"),
        "status": literal_column(f"'{status}'"),
        "author_id": bindparam(f"{prefix}_author_id"),
        "input_tokens": literal_column("0"),
        "output_tokens": literal_column("0"),
        "tool_calls": _EMPTY_LIST,
        "artifact_ids": _EMPTY_LIST,
    }


ADD_TURN_STATEMENT = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("conversation_id"))
    .values(
        message_count=_CONVERSATIONS.c.message_count + literal_column("2"),
        update_time=func.now(),
        last_message_time=func.now(),
        title=func.coalesce(
            func.nullif(bindparam("title", type_=String()), literal_column("''")),
            _CONVERSATIONS.c.title,
        ),
    )
    .add_cte(
        insert(_MESSAGES)
        .values(
            [
                _turn_message("user_message", "user", "complete"),
                _turn_message("assistant_message", "assistant", "in_progress"),
            ]
        )
        .cte("added")
    )
)
_ADD_TURN = DirectWrite(ADD_TURN_STATEMENT)


async def add_turn(
    sessions: async_sessionmaker[AsyncSession],
    conversation_id: uuid.UUID,
    *,
    user_message_id: uuid.UUID,
    assistant_message_id: uuid.UUID,
    user_id: uuid.UUID,
    content: str,
    model: str,
    title: str,
) -> None:
    """Stores the user's message and the assistant's, IN_PROGRESS, in one statement, and
    moves the conversation to the top of the recently updated list; `title` names an
    untitled conversation ("" keeps the title)."""
    await _ADD_TURN.execute(
        sessions,
        conversation_id=conversation_id,
        user_message_id=user_message_id,
        user_message_content=content,
        user_message_model="",
        user_message_author_id=user_id,
        assistant_message_id=assistant_message_id,
        assistant_message_content="",
        assistant_message_model=model,
        assistant_message_author_id=None,
        title=title,
    )


async def count_generated_image(
    db: AsyncSession, user_id: uuid.UUID, model: str, day: date, cost_nanos: int = 0
) -> None:
    """Adds one image (and what it cost) to the user's usage of `model` on `day`."""
    statement = insert(DailyUsage).values(
        user_id=user_id,
        day=day,
        model=model,
        input_tokens=0,
        output_tokens=0,
        request_count=0,
        image_count=1,
        cost_nanos=cost_nanos,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[DailyUsage.user_id, DailyUsage.day, DailyUsage.model],
        set_={
            "image_count": DailyUsage.image_count + 1,
            "cost_nanos": DailyUsage.cost_nanos + statement.excluded.cost_nanos,
        },
    )
    await db.execute(statement)


def system_counters() -> dict[str, ScalarSelect[int]]:
    """What GetSystemStats counts of conversations, messages, tokens and runs."""
    total = func.coalesce
    active = ("queued", "running", "waiting_for_approval")
    return {
        "runs": select(func.count()).select_from(RunRow).scalar_subquery(),
        "active_runs": select(func.count())
        .select_from(RunRow)
        .where(RunRow.status.in_(active))
        .scalar_subquery(),
        "conversations": select(func.count()).select_from(Conversation).scalar_subquery(),
        "messages": select(func.count()).select_from(MessageRow).scalar_subquery(),
        "input_tokens": select(total(func.sum(DailyUsage.input_tokens), 0)).scalar_subquery(),
        "output_tokens": select(total(func.sum(DailyUsage.output_tokens), 0)).scalar_subquery(),
    }
