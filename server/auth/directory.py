"""Read-side queries of AuthService: lists (paginated) and system stats."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.stats import SystemCounts, system_counts
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, PermissionDenied
from server.core.ids import parse_id
from server.core.pagination import PageTokens, paginate
from server.db.models import ApiKey, AuditEvent, Session, User


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied("this needs the admin role", "ADMIN_REQUIRED")


class Directory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], pages: PageTokens) -> None:
        self._sessions = sessions
        self._pages = pages

    async def sessions(
        self, caller: Caller, page_size: int, page_token: str
    ) -> tuple[list[Session], str]:
        page = self._pages.page("sessions", page_size, page_token, {"user": str(caller.user_id)})
        async with self._sessions() as db:
            rows = await store.list_sessions(db, caller.user_id, page)
        return self._finish(rows, page)

    async def api_keys(
        self, caller: Caller, page_size: int, page_token: str, show_revoked: bool
    ) -> tuple[list[ApiKey], str]:
        filters = {"user": str(caller.user_id), "revoked": show_revoked}
        page = self._pages.page("api_keys", page_size, page_token, filters)
        async with self._sessions() as db:
            rows = await store.list_api_keys(db, caller.user_id, page, show_revoked)
        return self._finish(rows, page)

    async def users(
        self,
        caller: Caller,
        page_size: int,
        page_token: str,
        query: str,
        role: str | None,
        disabled: bool | None,
    ) -> tuple[list[User], str]:
        require_admin(caller)
        filters = {"q": query, "role": role, "disabled": disabled}
        page = self._pages.page("users", page_size, page_token, filters)
        async with self._sessions() as db:
            rows = await store.list_users(db, page, query.strip(), role, disabled)
        return self._finish(rows, page)

    async def audit_events(
        self, caller: Caller, page_size: int, page_token: str, user_id: str, action: str | None
    ) -> tuple[list[AuditEvent], str]:
        subject: uuid.UUID | None = None
        if user_id:
            subject = parse_id(user_id)
            if subject is None:
                raise InvalidArgument.of([FieldViolation("user_id", "is not a user id")])
        if not caller.is_admin:
            # A user sees only the events about themselves.
            if subject is not None and subject != caller.user_id:
                raise PermissionDenied("only admins can list other users' events", "ADMIN_REQUIRED")
            subject = caller.user_id
        filters: dict[str, Any] = {"user": str(subject) if subject else "", "action": action}
        page = self._pages.page("audit_events", page_size, page_token, filters)
        async with self._sessions() as db:
            rows = await store.list_audit_events(db, page, subject, action)
        return self._finish(rows, page)

    async def counts(self, caller: Caller) -> SystemCounts:
        require_admin(caller)
        async with self._sessions() as db:
            return await system_counts(db)

    def _finish(self, rows: list[Any], page: Any) -> tuple[list[Any], str]:
        items, more = paginate(rows, page)
        token = self._pages.next_token(page, [items[-1].id]) if more and items else ""
        return items, token
