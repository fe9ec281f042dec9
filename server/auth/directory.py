"""Read-side queries over accounts: the user list, the audit log and system stats."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ScalarSelect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.admin import require_admin
from server.auth.stats import SystemCounts, system_counts
from server.auth.views import AuditEventView, UserView
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, PermissionDenied
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed


@dataclass(frozen=True)
class AuditScope:
    """Which audit events a caller lists: only from `audit_scope`, which checks the caller
    may see them."""

    subject: uuid.UUID | None
    action: str | None

    @property
    def filters(self) -> Mapping[str, Any]:
        """What a page token of this listing is bound to."""
        return {"user": str(self.subject) if self.subject else "", "action": self.action}


def audit_scope(caller: Caller, user_id: str, action: str | None) -> AuditScope:
    """The events about `user_id` (every user's when empty, for admins); a user sees only
    the events about themselves."""
    subject: uuid.UUID | None = None
    if user_id:
        subject = parse_id(user_id)
        if subject is None:
            raise InvalidArgument.of([FieldViolation("user_id", "is not a user id")])
    if not caller.is_admin:
        if subject is not None and subject != caller.user_id:
            raise PermissionDenied("only admins can list other users' events", "ADMIN_REQUIRED")
        subject = caller.user_id
    return AuditScope(subject, action)


class Directory:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        counters: Mapping[str, ScalarSelect[int]],
    ) -> None:
        self._sessions = sessions
        # The other services' counters (filled once every module is built).
        self._counters = counters

    async def users(
        self, caller: Caller, page: Page, query: str, role: str | None, disabled: bool | None
    ) -> Listed[UserView]:
        require_admin(caller)
        if "\x00" in query:
            raise InvalidArgument.of([FieldViolation("query", "must not contain NUL characters")])
        async with self._sessions() as db:
            rows = await store.list_users(db, page, query.strip(), role, disabled)
        return listed([UserView.of(row) for row in rows], page, lambda u: [u.id])

    async def audit_events(self, scope: AuditScope, page: Page) -> Listed[AuditEventView]:
        async with self._sessions() as db:
            rows = await store.list_audit_events(db, page, scope.subject, scope.action)
        return listed([AuditEventView.of(row) for row in rows], page, lambda e: [e.id])

    async def counts(self, caller: Caller) -> SystemCounts:
        require_admin(caller)
        async with self._sessions() as db:
            return await system_counts(db, self._counters)
