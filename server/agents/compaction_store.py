"""The writes and reads of compaction in chats (compaction.py): a summary stored with the
turn it was written for, and found again for a retried call's replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from server.agents.charges import UsageCharge, add_usage
from server.agents.store import ADD_TURN_STATEMENT
from server.db.agent_models import Conversation, MessageRow


@dataclass(frozen=True, slots=True)
class NewSummary:
    """A summary message to store before a chat's new turn (compaction.py)."""

    id: uuid.UUID
    content: str
    model: str
    input_tokens: int
    output_tokens: int
    summarized_through_id: uuid.UUID
    summarized_message_count: int


async def add_turn_after_summary(
    sessions: async_sessionmaker[AsyncSession],
    conversation_id: uuid.UUID,
    summary: NewSummary,
    charge: UsageCharge | None,
    *,
    user_message_id: uuid.UUID,
    assistant_message_id: uuid.UUID,
    user_id: uuid.UUID,
    content: str,
    model: str,
    title: str,
) -> MessageRow:
    """`add_turn` with the summary written for it stored first and its tokens charged, all
    in one transaction (so no summary is ever stored without its turn, or charged twice).
    Returns the stored summary."""
    async with sessions() as db, db.begin():
        row = MessageRow(
            id=summary.id,
            conversation_id=conversation_id,
            role="summary",
            content=summary.content.replace("\x00", ""),
            model=summary.model,
            status="complete",
            finish_reason="stop",
            input_tokens=summary.input_tokens,
            output_tokens=summary.output_tokens,
            tool_calls=[],
            artifact_ids=[],
            summarized_through_id=summary.summarized_through_id,
            summarized_message_count=summary.summarized_message_count,
        )
        db.add(row)
        await db.flush()
        if charge is not None:
            await add_usage(db, charge)
        await db.execute(
            ADD_TURN_STATEMENT,
            {
                "conversation_id": conversation_id,
                "user_message_id": user_message_id,
                "user_message_content": content,
                "user_message_model": "",
                "user_message_author_id": user_id,
                "assistant_message_id": assistant_message_id,
                "assistant_message_content": "",
                "assistant_message_model": model,
                "assistant_message_author_id": None,
                "title": title,
            },
        )
        await db.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(message_count=Conversation.message_count + 1)
        )
    return row


async def summary_before(db: AsyncSession, user_message_id: uuid.UUID) -> MessageRow | None:
    """The summary stored together with the turn of `user_message_id` (None if that turn
    needed none): its conversation's summary written in the same transaction (so with the
    same create_time), just before it."""
    asked = aliased(MessageRow)
    query = (
        select(MessageRow)
        .join(
            asked,
            (asked.id == user_message_id)
            & (asked.conversation_id == MessageRow.conversation_id)
            & (asked.create_time == MessageRow.create_time),
        )
        .where(MessageRow.role == "summary", MessageRow.id < user_message_id)
        .order_by(MessageRow.id.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()
