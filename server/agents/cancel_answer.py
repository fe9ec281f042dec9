"""CancelAnswer: stops an answer being written, from any server process.

The call records the request on the message (`cancel_requested_at`, only while it is in
progress) and notifies every process in the same transaction (server/core/cancels.py). The
process writing the answer (the chat stream, cancel_stream.py) closes the provider stream,
settles the answer as CANCELLED with its text so far, and ends the Chat stream with an
`error` event (CANCELLED, ANSWER_CANCELLED). Meanwhile this call waits, at most
`SETTLE_WAIT_SECONDS`, for the answer to settle, and returns it as it then is.

An answer whose writer is gone (its server died) is not settled here: it stays in progress
until the sweeper of any server settles it as INTERRUPTED with its saved text (sweeper.py),
as every orphan is. An answer that already ended is returned unchanged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.access import conversation_with_role, require_field
from server.agents.rows import message_view
from server.agents.views import MessageView
from server.core.access import ProjectRole
from server.core.cancels import Cancels
from server.core.context import Caller
from server.core.errors import NotFound
from server.core.ids import parse_id
from server.db.agent_models import MessageRow
from server.db.engine import reading

ANSWER = "answer"
"""The kind of cancel (server/core/cancels.py) that stops an answer."""
SETTLE_WAIT_SECONDS = 3.0
"""How long CancelAnswer waits for the writer to settle the answer."""
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.25


def message_not_found() -> NotFound:
    return NotFound("message not found", "MESSAGE_NOT_FOUND")


async def _read(db: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID) -> MessageRow:
    row = await db.scalar(
        select(MessageRow).where(
            MessageRow.id == message_id,
            MessageRow.conversation_id == conversation_id,
            MessageRow.role == "assistant",
        )
    )
    if row is None:
        raise message_not_found()
    return row


class AnswerCancels:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cancels: Cancels,
        settle_wait: float = SETTLE_WAIT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._settle_wait = settle_wait
        cancels.add_check(ANSWER, self.requested)

    async def cancel(self, caller: Caller, conversation_id: str, message_id: str) -> MessageView:
        require_field(message_id, "message_id")
        async with self._sessions() as db, db.begin():
            conversation = await conversation_with_role(
                db, caller, conversation_id, ProjectRole.EDITOR
            )
            mid = parse_id(message_id)
            if mid is None:
                raise message_not_found()
            row = await _read(db, conversation.id, mid)
            if row.status != "in_progress":
                return message_view(row)
            await db.execute(
                update(MessageRow)
                .where(MessageRow.id == mid, MessageRow.status == "in_progress")
                .values(cancel_requested_at=func.now())
                .execution_options(synchronize_session=False)
            )
            await Cancels.request(db, ANSWER, mid)
        return await self._settled(conversation.id, mid)

    async def _settled(self, conversation_id: uuid.UUID, message_id: uuid.UUID) -> MessageView:
        """The answer once settled, or as it is when `settle_wait` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_wait
        delay = FIRST_POLL_SECONDS
        while True:
            async with reading(self._sessions) as db:
                row = await _read(db, conversation_id, message_id)
            if row.status != "in_progress" or loop.time() >= deadline:
                return message_view(row)
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
            delay = min(delay * 2, MAX_POLL_SECONDS)

    async def requested(self, message_ids: list[uuid.UUID]) -> Iterable[uuid.UUID]:
        """Which of these answers were asked to stop (a missed notification's check)."""
        async with reading(self._sessions) as db:
            found = await db.scalars(
                select(MessageRow.id).where(
                    MessageRow.id.in_(message_ids), MessageRow.cancel_requested_at.is_not(None)
                )
            )
            return list(found)
