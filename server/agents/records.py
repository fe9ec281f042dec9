"""The agent records port: whether a conversation, message or run is a project's (for an
artifact that names them as its sources)."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.agent_models import Conversation, MessageRow
from server.db.engine import reading
from server.db.run_models import RunRow


class AgentRecords:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def foreign_sources(
        self,
        project_id: uuid.UUID,
        conversation_id: uuid.UUID | None,
        message_id: uuid.UUID | None,
        run_id: uuid.UUID | None,
    ) -> list[str]:
        checks = {}
        if conversation_id is not None:
            checks["conversation_id"] = exists().where(
                Conversation.id == conversation_id, Conversation.project_id == project_id
            )
        if message_id is not None:
            message = exists().where(
                MessageRow.id == message_id,
                MessageRow.conversation_id == Conversation.id,
                Conversation.project_id == project_id,
            )
            if conversation_id is not None:
                message = message.where(MessageRow.conversation_id == conversation_id)
            checks["message_id"] = message
        if run_id is not None:
            checks["run_id"] = exists().where(RunRow.id == run_id, RunRow.project_id == project_id)
        if not checks:
            return []
        async with reading(self._sessions) as db:
            found = (await db.execute(select(*checks.values()))).one()
        return [name for name, present in zip(checks, found, strict=True) if not present]
