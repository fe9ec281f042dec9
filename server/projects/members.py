"""Project members: add (or change the role of), list, remove.

Owners manage members; any member may leave (remove themself). A project always keeps at
least one owner: the last owner can be neither demoted nor removed, not even by leaving.
Member changes take the project lock, so two owners demoting each other at once cannot
leave the project without one.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.emails import normalise_email
from server.core.errors import FailedPrecondition, NotFound, Violations
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.db.models import ProjectMember
from server.projects import store
from server.projects.projects import lock_as, require_id
from server.projects.views import MemberView


def _last_owner() -> FailedPrecondition:
    return FailedPrecondition(
        "a project needs an owner: make another member owner first", "LAST_OWNER"
    )


def _member_not_found() -> NotFound:
    return NotFound("member not found", "MEMBER_NOT_FOUND")


def _checked(email: str, role: ProjectRole | None) -> tuple[str, ProjectRole]:
    violations = Violations()
    normalised = normalise_email(email) if email.strip() else None
    if not email.strip():
        violations.add("email", "is required")
    elif normalised is None:
        violations.add("email", "is not a valid email address")
    violations.check(role is not None, "role", "must be owner, editor or viewer")
    violations.raise_if_any()
    if normalised is None or role is None:  # unreachable: raised above
        raise AssertionError
    return normalised, role


class Members:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(
        self, caller: Caller, project_id: str, email: str, role: ProjectRole | None
    ) -> MemberView:
        """Adds the account with `email`, or changes the role of the member it already is."""
        require_id(project_id, "project_id")
        async with self._sessions() as db, db.begin():
            await require_project_role(db, caller, project_id, ProjectRole.OWNER)
            normalised, role = _checked(email, role)
            pid, _ = await lock_as(db, caller, project_id, ProjectRole.OWNER)
            user_id = await store.user_id_by_email(db, normalised)
            if user_id is None:
                raise NotFound("no account has this email address", "USER_NOT_FOUND")
            member = await store.get_member(db, pid, user_id)
            if member is None:
                member = ProjectMember(project_id=pid, user_id=user_id, role=role.label)
                db.add(member)
            elif member.role != role.label:
                if member.role == ProjectRole.OWNER.label and await store.count_owners(db, pid) < 2:
                    raise _last_owner()
                member.role = role.label
            await db.flush()
            return await store.member_view(db, member)

    async def list_members(self, caller: Caller, project_id: str, page: Page) -> Listed[MemberView]:
        require_id(project_id, "project_id")
        async with self._sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.VIEWER)
            views = await store.list_members(db, uuid.UUID(project_id), page)
        return listed(views, page, store.member_key)

    async def remove(self, caller: Caller, project_id: str, user_id: str) -> None:
        require_id(project_id, "project_id")
        require_id(user_id, "user_id")
        target = parse_id(user_id)
        leaving = target is not None and target == caller.user_id
        async with self._sessions() as db, db.begin():
            # Leaving needs only membership; removing someone else needs ownership.
            needed = ProjectRole.VIEWER if leaving else ProjectRole.OWNER
            pid, _ = await lock_as(db, caller, project_id, needed)
            if target is None:
                raise _member_not_found()
            member = await store.get_member(db, pid, target)
            if member is None:
                raise _member_not_found()
            if member.role == ProjectRole.OWNER.label and await store.count_owners(db, pid) < 2:
                raise _last_owner()
            await store.unassign_tasks(db, pid, target)
            await db.delete(member)
