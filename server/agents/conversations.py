"""Conversations and their messages: create, read, list, change, delete and export.

Every call goes through the conversation's project (access.py): viewers read, list and
export; editors and up create, change and delete.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import export, store
from server.agents.access import conversation_with_role, project_with_role
from server.agents.profiles import AGENT_NOT_FOUND, AgentProfiles
from server.agents.rows import conversation_view, message_view
from server.agents.views import ConversationDraft, ConversationView, Export, MessageView
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, Violations
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.db.agent_models import Conversation
from server.llm import ProviderRegistry

MUTABLE_FIELDS = ("title", "agent_id", "model")
MAX_TITLE = 200


class Conversations:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        profiles: AgentProfiles,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._profiles = profiles

    async def create(
        self, caller: Caller, project_id: str, draft: ConversationDraft
    ) -> ConversationView:
        async with self._sessions() as db, db.begin():
            pid = await project_with_role(db, caller, project_id, ProjectRole.EDITOR)
            draft = await self._validate(db, pid, draft, MUTABLE_FIELDS)
            row = Conversation(
                project_id=pid,
                agent_id=draft.agent_id or None,
                title=draft.title,
                model=draft.model,
                message_count=0,
                creator_id=caller.user_id,
            )
            db.add(row)
            await db.flush()
            await db.refresh(row)
            return conversation_view(row)

    async def get(self, caller: Caller, conversation_id: str) -> ConversationView:
        async with self._sessions() as db:
            row = await conversation_with_role(db, caller, conversation_id, ProjectRole.VIEWER)
            return conversation_view(row)

    async def list(
        self, caller: Caller, project_id: str, agent_id: str, page: Page
    ) -> Listed[ConversationView]:
        """Most recently updated first."""
        cursor = _time_cursor(page.after)
        async with self._sessions() as db:
            pid = await project_with_role(db, caller, project_id, ProjectRole.VIEWER)
            rows = await store.list_conversations(db, pid, agent_id or None, cursor, page.size + 1)
            views = [conversation_view(row) for row in rows]
        return listed(views, page, lambda view: (view.update_time.isoformat(), view.id))

    async def update(
        self,
        caller: Caller,
        conversation_id: str,
        draft: ConversationDraft,
        paths: Iterable[str],
    ) -> ConversationView:
        paths = set(paths)
        async with self._sessions() as db, db.begin():
            row = await conversation_with_role(
                db, caller, conversation_id, ProjectRole.EDITOR, field="conversation.id"
            )
            draft = await self._validate(db, row.project_id, draft, paths)
            if "title" in paths:
                row.title = draft.title
            if "agent_id" in paths:
                row.agent_id = draft.agent_id or None
            if "model" in paths:
                row.model = draft.model
            await db.flush()
            await db.refresh(row)
            return conversation_view(row)

    async def delete(self, caller: Caller, conversation_id: str) -> None:
        async with self._sessions() as db, db.begin():
            row = await conversation_with_role(db, caller, conversation_id, ProjectRole.EDITOR)
            await db.delete(row)

    async def messages(
        self, caller: Caller, conversation_id: str, page: Page
    ) -> Listed[MessageView]:
        """Oldest first."""
        after_id = _id_cursor(page.after)
        async with self._sessions() as db:
            row = await conversation_with_role(db, caller, conversation_id, ProjectRole.VIEWER)
            rows = await store.list_messages(db, row.id, after_id, page.size + 1)
            views = [message_view(message) for message in rows]
        return listed(views, page, lambda view: (view.id,))

    async def export(self, caller: Caller, conversation_id: str, format_name: str) -> Export:
        render = export.renderer(format_name)
        async with self._sessions() as db:
            row = await conversation_with_role(db, caller, conversation_id, ProjectRole.VIEWER)
            conversation = conversation_view(row)
            rows = await store.list_messages(db, row.id, None, None)
            messages = [message_view(message) for message in rows]
        return render(conversation, messages)

    async def _validate(
        self,
        db: AsyncSession,
        project_id: uuid.UUID,
        draft: ConversationDraft,
        paths: Iterable[str],
    ) -> ConversationDraft:
        """The draft with the fields named in `paths` checked, and the title and the model
        canonicalised."""
        paths = set(paths)
        violations = Violations()
        if "title" in paths:
            draft = replace(draft, title=draft.title.strip())
            violations.check(
                len(draft.title) <= MAX_TITLE,
                "conversation.title",
                f"must be at most {MAX_TITLE} characters",
            )
        violations.raise_if_any()
        if "agent_id" in paths and draft.agent_id:
            agent = await self._profiles.find(db, project_id, draft.agent_id)
            if agent is None:
                raise InvalidArgument.of(
                    [
                        FieldViolation(
                            "conversation.agent_id", "names no agent profile of this project"
                        )
                    ],
                    reason=AGENT_NOT_FOUND,
                )
        if "model" in paths and draft.model:
            # Well formed is enough: whether a model can answer depends on who calls (their
            # own provider keys); a chat answers PROVIDER_NOT_CONFIGURED otherwise.
            self._registry.parse(draft.model, field="conversation.model")
        return draft


def _bad_token() -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("page_token", "not a page token issued by this API")],
        reason="INVALID_PAGE_TOKEN",
    )


def _time_cursor(after: tuple[str, ...] | None) -> tuple[datetime, uuid.UUID] | None:
    if after is None:
        return None
    try:
        when = datetime.fromisoformat(after[0])
    except (ValueError, IndexError):
        raise _bad_token() from None
    key = parse_id(after[-1])
    if key is None:
        raise _bad_token()
    return when, key


def _id_cursor(after: tuple[str, ...] | None) -> uuid.UUID | None:
    if after is None:
        return None
    key = parse_id(after[0]) if after else None
    if key is None:
        raise _bad_token()
    return key
