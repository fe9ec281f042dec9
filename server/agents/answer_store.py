"""Queries of durable answers (store.py is the rest of the agents' queries): saving the text
of answers being streamed, and finding and settling the answers of a server that died."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from server.agents.charges import UsageCharge, add_usage
from server.db.agent_models import MessageRow
from server.db.reads import engine_of

# One statement for every answer a server is streaming. Rows being settled or swept right
# now are skipped rather than waited for (a save never waits on a lock, so it can never be
# part of a deadlock), and a settled answer is never written again. A NULL content only
# marks the answer alive (its `update_time`, which the sweeper reads).
_SAVE = """
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS b(id, content, input_tokens)
), mine AS (
    SELECT m.id FROM messages AS m JOIN batch ON batch.id = m.id
    WHERE m.status = 'in_progress'
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages AS m
SET content = coalesce(batch.content, m.content),
    input_tokens = batch.input_tokens,
    update_time = now()
FROM batch JOIN mine ON mine.id = batch.id
WHERE m.id = batch.id
"""


async def save_answers(
    sessions: async_sessionmaker[AsyncSession],
    message_ids: Sequence[uuid.UUID],
    contents: Sequence[str | None],
    input_tokens: Sequence[int],
) -> None:
    """Stores the text so far (None: unchanged) and the estimated input tokens of answers
    still in progress; one statement, outside a transaction."""
    async with engine_of(sessions).connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(_SAVE, list(message_ids), list(contents), list(input_tokens))


@dataclass(frozen=True, slots=True)
class Orphan:
    """An answer left in progress by a server that stopped saving it."""

    message_id: uuid.UUID
    content: str
    model: str
    input_tokens: int
    user_id: uuid.UUID | None
    """Who asked: the author of the user message just before it (None: deleted since)."""


_asked = aliased(MessageRow)
_MESSAGES = cast(Table, MessageRow.__table__)


async def lock_orphans(db: AsyncSession, older_than_seconds: float, limit: int) -> list[Orphan]:
    """Answers in progress not saved for `older_than_seconds`, locked for this transaction;
    answers another sweeper holds are skipped."""
    asker = (
        select(_asked.author_id)
        .where(
            _asked.conversation_id == MessageRow.conversation_id,
            _asked.role == "user",
            _asked.id < MessageRow.id,
        )
        .order_by(_asked.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            MessageRow.id,
            MessageRow.content,
            MessageRow.model,
            MessageRow.input_tokens,
            asker.label("user_id"),
        )
        .where(
            MessageRow.status == "in_progress",
            MessageRow.role == "assistant",
            MessageRow.update_time < func.now() - timedelta(seconds=older_than_seconds),
        )
        .order_by(MessageRow.id)
        .limit(limit)
        .with_for_update(of=MessageRow, skip_locked=True)
    )
    rows = (await db.execute(query)).all()
    return [Orphan(row[0], row[1], row[2], row[3], row[4]) for row in rows]


async def interrupt(db: AsyncSession, settled: Sequence[tuple[uuid.UUID, int, int]]) -> None:
    """Settles locked answers as interrupted: (message id, input tokens, output tokens); one
    someone asked to cancel (CancelAnswer, its writer gone) as cancelled."""
    statement = (
        update(_MESSAGES)
        .where(_MESSAGES.c.id == bindparam("message_id"))
        .values(
            status=case(
                (_MESSAGES.c.cancel_requested_at.is_not(None), "cancelled"),
                else_="interrupted",
            ),
            input_tokens=bindparam("input"),
            output_tokens=bindparam("output"),
            update_time=func.now(),
        )
    )
    await db.execute(
        statement,
        [{"message_id": key, "input": given, "output": taken} for key, given, taken in settled],
    )


async def charge(db: AsyncSession, charges: Sequence[UsageCharge], requests: Sequence[int]) -> None:
    """Adds tokens and requests to users' daily usage; rows are locked in the order given
    (callers sort, so two sweepers never wait on each other in a circle)."""
    for owed, count in zip(charges, requests, strict=True):
        await add_usage(db, owed, count)
