"""The project access rule applied to agent resources.

A conversation is reached through its project: a caller who is not a member of that project
gets the same NOT_FOUND as for a conversation that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import store
from server.core.access import (
    ProjectRole,
    judge_role,
    project_not_found,
    require_project_role,
)
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, NotFound
from server.core.ids import parse_id
from server.db.agent_models import Conversation

CONVERSATION_NOT_FOUND = "CONVERSATION_NOT_FOUND"


def conversation_not_found() -> NotFound:
    return NotFound("conversation not found", CONVERSATION_NOT_FOUND)


def require_field(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument.of([FieldViolation(field, "is required")])


async def project_with_role(
    db: AsyncSession, caller: Caller, project_id: str, needed: ProjectRole
) -> uuid.UUID:
    """The project's id, once the caller is known to hold `needed` in it."""
    require_field(project_id, "project_id")
    pid = parse_id(project_id)
    if pid is None:
        raise project_not_found()
    await require_project_role(db, caller, pid, needed)
    return pid


async def conversation_with_role(
    db: AsyncSession,
    caller: Caller,
    conversation_id: str,
    needed: ProjectRole,
    *,
    field: str = "conversation_id",
) -> Conversation:
    require_field(conversation_id, field)
    cid = parse_id(conversation_id)
    if cid is None:
        raise conversation_not_found()
    row = await store.get_conversation(db, cid)
    if row is None:
        raise conversation_not_found()
    try:
        await require_project_role(db, caller, row.project_id, needed)
    except NotFound:
        raise conversation_not_found() from None
    return row


async def chat_target(
    sessions: async_sessionmaker[AsyncSession],
    caller: Caller,
    conversation_id: str,
    needed: ProjectRole,
) -> store.ChatTarget:
    """conversation_with_role in one read (Chat runs it on every answer): the conversation
    with the caller's membership role, judged by the project access rule."""
    require_field(conversation_id, "conversation_id")
    cid = parse_id(conversation_id)
    if cid is None:
        raise conversation_not_found()
    target = await store.chat_target(sessions, cid, caller.user_id)
    if target is None:
        raise conversation_not_found()
    try:
        # The conversation exists, so its project does (conversations go with their project).
        judge_role(caller, True, target.member_role, needed)
    except NotFound:
        raise conversation_not_found() from None
    return target
