"""Queries of ProjectService. Callers check the project role first (server/core/access.py)
and run every write to a project's members or tasks after `lock_project`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    ScalarSelect,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import ProjectRole
from server.core.caller_state import CallerState, state_of
from server.core.pagination import Page, after_id
from server.db.caller_state import caller_state_columns
from server.db.models import Project, ProjectMember, Task, User
from server.db.reads import DirectRead
from server.projects.model import TaskStatus
from server.projects.views import MemberView, ProjectView, TaskView

# --- projects ---------------------------------------------------------------------------


async def lock_project(db: AsyncSession, project_id: uuid.UUID) -> Project | None:
    """The project, row-locked until the transaction ends.

    Every change to a project's members or tasks takes this lock first, so such changes
    are serialised per project: task positions stay dense and the last owner stays.
    FOR NO KEY UPDATE still lets other transactions insert rows referencing the project.
    """
    return await db.scalar(
        select(Project).where(Project.id == project_id).with_for_update(key_share=True)
    )


async def get_project(db: AsyncSession, project_id: uuid.UUID) -> Project | None:
    return await db.get(Project, project_id)


# GetProject's one query, straight on the driver (see DirectRead): the project's columns and
# the user's membership role (NULL when not a member).
_PROJECT_WITH_ROLE = DirectRead(
    select(*Project.__table__.columns, ProjectMember.role.label("member_role"))
    .outerjoin(
        ProjectMember,
        and_(
            ProjectMember.project_id == Project.id,
            ProjectMember.user_id == bindparam("user_id"),
        ),
    )
    .where(Project.id == bindparam("project_id"))
)


# The same read with the caller's account state (core/caller_state.py), driven by the
# user's row so that the state comes back whether or not the project exists.
_PROJECT_WITH_ROLE_AND_CALLER = DirectRead(
    select(
        *caller_state_columns(),
        *Project.__table__.columns,
        ProjectMember.role.label("member_role"),
    )
    .select_from(User)
    .outerjoin(Project, Project.id == bindparam("project_id"))
    .outerjoin(
        ProjectMember,
        and_(ProjectMember.project_id == Project.id, ProjectMember.user_id == User.id),
    )
    .where(User.id == bindparam("user_id"))
)


async def project_with_role(
    sessions: async_sessionmaker[AsyncSession], project_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[ProjectView | None, str | None]:
    """The project, seen by the user, and the user's membership role in it (None when not
    a member), in one round trip."""
    row = await _PROJECT_WITH_ROLE.first(sessions, project_id=project_id, user_id=user_id)
    if row is None:
        return None, None
    return _project_seen(row)


async def project_with_role_and_caller(
    sessions: async_sessionmaker[AsyncSession],
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
) -> tuple[CallerState | None, ProjectView | None, str | None]:
    """`project_with_role` and the caller's account state (None: no such user), in one
    round trip."""
    row = await _PROJECT_WITH_ROLE_AND_CALLER.first(
        sessions, project_id=project_id, user_id=user_id, session_id=session_id
    )
    if row is None:
        return None, None, None
    state = state_of(row["caller_disabled"], row["caller_role"], row["caller_session_revoked"])
    if row["id"] is None:
        return state, None, None
    return (state, *_project_seen(row))


def _project_seen(row: Any) -> tuple[ProjectView, str | None]:
    role: str | None = row["member_role"]
    view = ProjectView(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        repository_url=row["repository_url"],
        default_runtime=row["default_runtime"],
        creator_id=row["creator_id"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        caller_role=ProjectRole.parse(role) if role else None,
    )
    return view, role


async def membership_role(
    db: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID
) -> ProjectRole | None:
    role = await db.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
        )
    )
    return ProjectRole.parse(role) if role is not None else None


def _projects_page(every: bool, after: bool) -> DirectRead:
    """Newest first, one more than the page: the user's projects (or, `every`, all of them)
    with the user's membership role, after the id `after` when there is one."""
    membership = and_(
        ProjectMember.project_id == Project.id, ProjectMember.user_id == bindparam("user_id")
    )
    query = select(*Project.__table__.columns, ProjectMember.role.label("member_role"))
    query = (
        query.outerjoin(ProjectMember, membership)
        if every
        else query.join(ProjectMember, membership)
    )
    if after:
        query = query.where(Project.id < bindparam("after"))
    return DirectRead(query.order_by(Project.id.desc()).limit(bindparam("limit")))


# ListProjects runs on every project list a client shows: straight on the driver (one
# statement each page, no ORM rows), one statement per shape so each keeps its index plan.
_PROJECT_PAGES = {
    (every, after): _projects_page(every, after)
    for every in (False, True)
    for after in (False, True)
}


async def list_projects(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, page: Page, *, every: bool
) -> list[ProjectView]:
    """Newest first: the user's projects, or every project (with the user's role if any);
    `page.size + 1` of them at most."""
    after = after_id(page)
    rows = await _PROJECT_PAGES[every, after is not None].all(
        sessions, user_id=user_id, after=after, limit=page.size + 1
    )
    return [_project_seen(row)[0] for row in rows]


async def delete_project(db: AsyncSession, project_id: uuid.UUID) -> None:
    # Members and tasks go with it (ON DELETE CASCADE).
    await db.execute(delete(Project).where(Project.id == project_id))


# --- members ----------------------------------------------------------------------------

_role_rank: ColumnElement[int] = case(
    {role.label: int(role) for role in ProjectRole}, value=ProjectMember.role, else_=0
)


async def user_id_by_email(db: AsyncSession, email: str) -> uuid.UUID | None:
    return await db.scalar(select(User.id).where(User.email == email))


async def get_member(
    db: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID
) -> ProjectMember | None:
    return await db.get(ProjectMember, (project_id, user_id))


async def member_view(db: AsyncSession, member: ProjectMember) -> MemberView:
    row = (
        await db.execute(select(User.email, User.display_name).where(User.id == member.user_id))
    ).one()
    return MemberView.of(member, row.email, row.display_name)


async def count_owners(db: AsyncSession, project_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count()).where(
            ProjectMember.project_id == project_id,
            ProjectMember.role == ProjectRole.OWNER.label,
        )
    )
    return int(count or 0)


async def list_members(db: AsyncSession, project_id: uuid.UUID, page: Page) -> list[MemberView]:
    """Owners first, then editors, then viewers; each by user id (time of sign-up)."""
    query = (
        select(ProjectMember, User.email, User.display_name)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id)
    )
    if page.after is not None:
        rank, user_id = int(page.after[0]), uuid.UUID(page.after[1])
        query = query.where(
            or_(_role_rank < rank, and_(_role_rank == rank, ProjectMember.user_id > user_id))
        )
    query = query.order_by(_role_rank.desc(), ProjectMember.user_id).limit(page.size + 1)
    rows = await db.execute(query)
    return [MemberView.of(member, email, name) for member, email, name in rows]


def member_key(view: MemberView) -> Sequence[Any]:
    """The sort key of ListMembers (see list_members)."""
    return [int(view.role), view.user_id]


async def unassign_tasks(db: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await db.execute(
        update(Task)
        .where(Task.project_id == project_id, Task.assignee_id == user_id)
        .values(assignee_id=None)
    )


# --- tasks ------------------------------------------------------------------------------

_status_rank: ColumnElement[int] = case(
    {status.value: status.rank for status in TaskStatus}, value=Task.status, else_=0
)


async def get_task(db: AsyncSession, project_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    return await db.scalar(select(Task).where(Task.id == task_id, Task.project_id == project_id))


async def column_size(db: AsyncSession, project_id: uuid.UUID, status: TaskStatus) -> int:
    count = await db.scalar(
        select(func.count()).where(Task.project_id == project_id, Task.status == status.value)
    )
    return int(count or 0)


async def shift_column(
    db: AsyncSession,
    project_id: uuid.UUID,
    status: TaskStatus,
    *,
    first: int,
    last: int | None,
    delta: int,
    exclude: uuid.UUID | None = None,
) -> None:
    """Adds `delta` to the position of the column's tasks at positions first..last.

    Intermediate duplicates are fine: the (project, status, position) constraint is
    checked at commit."""
    conditions: list[ColumnElement[bool]] = [
        Task.project_id == project_id,
        Task.status == status.value,
        Task.position >= first,
    ]
    if last is not None:
        conditions.append(Task.position <= last)
    if exclude is not None:
        conditions.append(Task.id != exclude)
    await db.execute(
        update(Task)
        .where(*conditions)
        .values(position=Task.position + delta)
        .execution_options(synchronize_session=False)
    )


def _tasks_page(status: bool, assignee: bool, after: bool) -> DirectRead:
    """Column by column (board order), each in position order, one more than the page: the
    project's tasks, of a status and an assignee when given, after a (rank, position)."""
    query = select(*Task.__table__.columns).where(Task.project_id == bindparam("project_id"))
    if status:
        query = query.where(Task.status == bindparam("status"))
    if assignee:
        query = query.where(Task.assignee_id == bindparam("assignee_id"))
    if after:
        rank = bindparam("after_rank", type_=Integer)
        query = query.where(
            or_(
                _status_rank > rank,
                and_(_status_rank == rank, Task.position > bindparam("after_position")),
            )
        )
    return DirectRead(query.order_by(_status_rank, Task.position).limit(bindparam("limit")))


# ListTasks runs on every board a client shows: straight on the driver (no ORM rows), one
# prebuilt statement per combination of filters.
_TASK_PAGES = {
    (status, assignee, after): _tasks_page(status, assignee, after)
    for status in (False, True)
    for assignee in (False, True)
    for after in (False, True)
}


async def list_tasks(
    sessions: async_sessionmaker[AsyncSession],
    project_id: uuid.UUID,
    page: Page,
    status: TaskStatus | None,
    assignee_id: uuid.UUID | None,
) -> list[TaskView]:
    """Column by column (board order), each in position order; `page.size + 1` at most."""
    after = (int(page.after[0]), int(page.after[1])) if page.after is not None else None
    read = _TASK_PAGES[status is not None, assignee_id is not None, after is not None]
    rows = await read.all(
        sessions,
        project_id=project_id,
        status=status.value if status is not None else None,
        assignee_id=assignee_id,
        after_rank=after[0] if after else None,
        after_position=after[1] if after else None,
        limit=page.size + 1,
    )
    return [TaskView.from_columns(row) for row in rows]


def task_key(task: TaskView) -> Sequence[Any]:
    """The sort key of ListTasks (see list_tasks)."""
    return [task.status.rank, task.position]


def system_counters() -> dict[str, ScalarSelect[int]]:
    """What GetSystemStats counts of projects (see server/core/hooks.py)."""
    return {"projects": select(func.count()).select_from(Project).scalar_subquery()}
