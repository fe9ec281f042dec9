"""The kanban board: tasks in status columns, each column's positions dense (0..n-1).

Viewers read tasks; editors create, change, move and delete them. Every write takes the
project lock (store.lock_project) before touching positions, so concurrent moves are applied
one after another; the deferred unique constraint on (project, status, position) is the
safety net that turns a lost race into ABORTED instead of a corrupt board.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import ProjectRole, judge_role, require_project_role
from server.core.context import Caller
from server.core.errors import Aborted, FieldViolation, InvalidArgument, NotFound, Violations
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.db.models import Task
from server.projects import store
from server.projects.model import TaskFields, TaskStatus
from server.projects.projects import lock_as, require_id
from server.projects.validation import check_task, clean_task, optional_id
from server.projects.views import TaskView

TASK_FIELDS = ("title", "description", "assignee_user_id", "agent_id", "run_id")


def task_not_found() -> NotFound:
    return NotFound("task not found", "TASK_NOT_FOUND")


def _check_position(position: int, field: str) -> None:
    if position < 0:
        raise InvalidArgument.of([FieldViolation(field, "must not be negative")])


TaskChange = Callable[[AsyncSession, uuid.UUID, Task], Awaitable[None]]
"""A change to a task of a locked project: (transaction, project id, task row)."""


async def place(
    db: AsyncSession, pid: uuid.UUID, task: Task, status: TaskStatus, position: int
) -> None:
    """Moves `task` to `position` in column `status` (past the end means last), keeping the
    positions of both columns dense; the project must be locked (Board._writing)."""
    source, start = TaskStatus(task.status), task.position
    if source == status:
        at = min(position, await store.column_size(db, pid, status) - 1)
        if at == start:
            return
        if at > start:
            await store.shift_column(
                db, pid, status, first=start + 1, last=at, delta=-1, exclude=task.id
            )
        else:
            await store.shift_column(
                db, pid, status, first=at, last=start - 1, delta=1, exclude=task.id
            )
    else:
        await store.shift_column(
            db, pid, source, first=start + 1, last=None, delta=-1, exclude=task.id
        )
        at = min(position, await store.column_size(db, pid, status))
        await store.shift_column(db, pid, status, first=at, last=None, delta=1)
        task.status = status.value
    task.position = at


class Board:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def _writing(
        self, caller: Caller, project_id: str
    ) -> AsyncIterator[tuple[AsyncSession, uuid.UUID]]:
        """A transaction holding the project lock, for an editor of the project."""
        require_id(project_id, "project_id")
        try:
            async with self._sessions() as db, db.begin():
                pid, _ = await lock_as(db, caller, project_id, ProjectRole.EDITOR)
                yield db, pid
        except IntegrityError as error:
            if "uq_tasks_column_position" in str(error.orig):
                raise Aborted(
                    "the board changed at the same time; try again", "TASK_POSITION_CONFLICT"
                ) from error
            raise

    async def create(
        self,
        caller: Caller,
        project_id: str,
        fields: TaskFields,
        status: TaskStatus | None,
        position: int,
    ) -> TaskView:
        """Creates a task at `position` in its column; 0 (unset) means at the end."""
        fields = clean_task(fields)
        async with self._writing(caller, project_id) as (db, pid):
            violations = Violations()
            check_task(violations, fields, set(TASK_FIELDS), "task")
            violations.check(position >= 0, "task.position", "must not be negative")
            violations.raise_if_any()
            assignee = await self._assignee(db, pid, fields.assignee_user_id)
            column = status or TaskStatus.TODO
            size = await store.column_size(db, pid, column)
            at = size if position == 0 else min(position, size)
            await store.shift_column(db, pid, column, first=at, last=None, delta=1)
            task = Task(
                project_id=pid,
                title=fields.title,
                description=fields.description,
                status=column.value,
                position=at,
                assignee_id=assignee,
                agent_id=fields.agent_id or None,
                run_id=parse_id(fields.run_id) if fields.run_id else None,
                creator_id=caller.user_id,
            )
            db.add(task)
            await db.flush()
            view = TaskView.of(task)
        return view

    async def get(self, caller: Caller, project_id: str, task_id: str) -> TaskView:
        require_id(project_id, "project_id")
        require_id(task_id, "task_id")
        async with self._sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.VIEWER)
            return TaskView.of(await self._task(db, uuid.UUID(project_id), task_id))

    async def list_tasks(
        self,
        caller: Caller,
        project_id: str,
        page: Page,
        status: TaskStatus | None,
        assignee_user_id: str,
    ) -> Listed[TaskView]:
        """Column by column (board order), each in position order."""
        require_id(project_id, "project_id")
        violations = Violations()
        assignee = optional_id(violations, "assignee_user_id", assignee_user_id, "a user id")
        violations.raise_if_any()
        pid = uuid.UUID(project_id)
        project, role = await store.project_with_role(self._sessions, pid, caller.user_id)
        judge_role(caller, project is not None, role, ProjectRole.VIEWER)
        views = await store.list_tasks(self._sessions, pid, page, status, assignee)
        return listed(views, page, store.task_key)

    async def update(
        self, caller: Caller, project_id: str, task_id: str, fields: TaskFields, paths: set[str]
    ) -> TaskView:
        require_id(task_id, "task.id")
        fields = clean_task(fields)
        async with self._writing(caller, project_id) as (db, pid):
            violations = Violations()
            check_task(violations, fields, paths, "task")
            violations.raise_if_any()
            task = await self._task(db, pid, task_id)
            if "assignee_user_id" in paths:
                task.assignee_id = await self._assignee(db, pid, fields.assignee_user_id)
            if "title" in paths:
                task.title = fields.title
            if "description" in paths:
                task.description = fields.description
            if "agent_id" in paths:
                task.agent_id = fields.agent_id or None
            if "run_id" in paths:
                task.run_id = parse_id(fields.run_id) if fields.run_id else None
            await db.flush()
            view = TaskView.of(task)
        return view

    async def move(
        self,
        caller: Caller,
        project_id: str,
        task_id: str,
        status: TaskStatus | None,
        position: int,
    ) -> TaskView:
        """Moves a task to `position` in column `status` (past the end means last)."""
        require_id(task_id, "task_id")
        if status is None:
            raise InvalidArgument.of(
                [FieldViolation("status", "must be todo, in_progress, review or done")]
            )
        _check_position(position, "position")
        async with self._writing(caller, project_id) as (db, pid):
            task = await self._task(db, pid, task_id)
            await place(db, pid, task, status, position)
            await db.flush()
            view = TaskView.of(task)
        return view

    async def edit(
        self, caller: Caller, project_id: str, task_id: str, change: TaskChange
    ) -> TaskView:
        """Applies `change` to the task in a transaction holding the project lock, for an
        editor of the project (for changes no single RPC makes, such as agent runs')."""
        require_id(task_id, "task_id")
        async with self._writing(caller, project_id) as (db, pid):
            task = await self._task(db, pid, task_id)
            await change(db, pid, task)
            await db.flush()
            view = TaskView.of(task)
        return view

    async def delete(self, caller: Caller, project_id: str, task_id: str) -> None:
        require_id(task_id, "task_id")
        async with self._writing(caller, project_id) as (db, pid):
            task = await self._task(db, pid, task_id)
            column, position = TaskStatus(task.status), task.position
            await db.delete(task)
            await db.flush()
            await store.shift_column(db, pid, column, first=position + 1, last=None, delta=-1)

    @staticmethod
    async def _task(db: AsyncSession, pid: uuid.UUID, task_id: str) -> Task:
        tid = parse_id(task_id)
        task = await store.get_task(db, pid, tid) if tid is not None else None
        if task is None:
            raise task_not_found()
        return task

    @staticmethod
    async def _assignee(db: AsyncSession, pid: uuid.UUID, user_id: str) -> uuid.UUID | None:
        """The assignee's id: empty for none; must be a member of the project."""
        if not user_id:
            return None
        uid = parse_id(user_id)
        if uid is None or await store.get_member(db, pid, uid) is None:
            raise InvalidArgument.of(
                [FieldViolation("task.assignee_user_id", "is not a member of the project")]
            )
        return uid
