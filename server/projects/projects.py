"""Projects: create, read, list, update, delete.

Who may do what (the access rule is server/core/access.py; admins act as owners):
- any signed-in user creates projects and becomes their owner;
- viewers read a project;
- editors and owners update its settings (name, description, repository, runtime): these
  describe the work, which editors do; membership and deletion stay with owners;
- owners delete it, with everything other services registered to remove along with it.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import (
    ProjectRole,
    judge_role,
    project_not_found,
    require_project_role,
)
from server.core.caller_state import caller_from_state
from server.core.context import CallContext, Caller
from server.core.errors import FieldViolation, InvalidArgument, PermissionDenied, Violations
from server.core.hooks import ProjectDeletionHooks
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.db.models import Project, ProjectMember
from server.projects import store
from server.projects.model import ProjectFields
from server.projects.validation import check_project, clean_project
from server.projects.views import ProjectView

PROJECT_FIELDS = ("name", "description", "repository_url", "default_runtime")


def require_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument.of([FieldViolation(field, "is required")])


async def lock_as(
    db: AsyncSession, caller: Caller, project_id: str, needed: ProjectRole
) -> tuple[uuid.UUID, ProjectRole]:
    """Checks the caller's role, takes the project lock, and checks the role again: a role
    changed by a write that held the lock before us counts."""
    await require_project_role(db, caller, project_id, needed)
    pid = uuid.UUID(project_id)
    if await store.lock_project(db, pid) is None:
        raise project_not_found()
    return pid, await require_project_role(db, caller, pid, needed)


class Projects:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hooks: ProjectDeletionHooks,
    ) -> None:
        self._sessions = sessions
        self._hooks = hooks

    async def create(self, caller: Caller, fields: ProjectFields) -> ProjectView:
        fields = clean_project(fields)
        violations = Violations()
        check_project(violations, fields, set(PROJECT_FIELDS), "project")
        violations.raise_if_any()
        user_id = caller.user_id
        project = Project(
            name=fields.name,
            description=fields.description,
            repository_url=fields.repository_url,
            default_runtime=fields.default_runtime,
            creator_id=user_id,
        )
        async with self._sessions() as db, db.begin():
            db.add(project)
            await db.flush()
            db.add(
                ProjectMember(project_id=project.id, user_id=user_id, role=ProjectRole.OWNER.label)
            )
        return ProjectView.of(project, ProjectRole.OWNER)

    async def get(self, call: CallContext, project_id: str) -> ProjectView:
        """The hottest read: the access check and the load in one query, which also reads
        the caller's account state when the interceptor left that to it
        (core/caller_state.py)."""
        unconfirmed = call.unconfirmed
        if unconfirmed is None:
            caller = call.require_caller()
            pid = _project_id(project_id)
            view, role = await store.project_with_role(self._sessions, pid, caller.user_id)
        else:
            pid = _project_id(project_id)  # (a refused caller learns only that: interceptor)
            state, view, role = await store.project_with_role_and_caller(
                self._sessions, pid, unconfirmed.user_id, unconfirmed.session_id
            )
            caller = call.confirm(
                caller_from_state(unconfirmed.user_id, unconfirmed.session_id, state)
            )
        judge_role(caller, view is not None, role, ProjectRole.VIEWER)
        assert view is not None  # judge_role raised otherwise
        return view

    async def list_projects(self, caller: Caller, page: Page, every: bool) -> Listed[ProjectView]:
        """Newest first: the caller's projects, or (admins only) every project."""
        if every and not caller.is_admin:
            raise PermissionDenied("only admins can list every project", "ADMIN_REQUIRED")
        views = await store.list_projects(self._sessions, caller.user_id, page, every=every)
        return listed(views, page, lambda view: [view.id])

    async def update(
        self, caller: Caller, project_id: str, fields: ProjectFields, paths: set[str]
    ) -> ProjectView:
        require_id(project_id, "project.id")
        fields = clean_project(fields)
        async with self._sessions() as db, db.begin():
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
            violations = Violations()
            check_project(violations, fields, paths, "project")
            violations.raise_if_any()
            pid, _ = await lock_as(db, caller, project_id, ProjectRole.EDITOR)
            project = await store.get_project(db, pid)
            if project is None:
                raise project_not_found()
            for path in paths:
                setattr(project, path, getattr(fields, path))
            await db.flush()
            return ProjectView.of(project, await store.membership_role(db, pid, caller.user_id))

    async def delete(self, caller: Caller, project_id: str) -> None:
        require_id(project_id, "project_id")
        async with self._sessions() as db, db.begin():
            pid, _ = await lock_as(db, caller, project_id, ProjectRole.OWNER)
            after_commit = await self._hooks.run_in_transaction(db, pid)
            await store.delete_project(db, pid)
        if after_commit:
            # The project is gone; finish removing what lives outside the database even if
            # the caller stops waiting.
            await asyncio.shield(ProjectDeletionHooks.run_after_commit(after_commit))


def _project_id(project_id: str) -> uuid.UUID:
    require_id(project_id, "project_id")
    pid = parse_id(project_id)
    if pid is None:
        raise project_not_found()
    return pid
