"""The kanban board as agent runs use it (core/ports.py TaskBoardPort): read a task, record a
run on it, move it, add a note; through Board, so the access rule, the project lock and
dense positions are MoveTask's.
"""

from __future__ import annotations

import sys
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, NotFound, Violations
from server.core.ports import TaskColumn, TaskState
from server.db.models import Task
from server.projects.model import TaskStatus
from server.projects.tasks import Board, place, task_not_found
from server.projects.validation import TASK_DESCRIPTION_MAX
from server.projects.views import TaskView

# Past the end of any column: the task goes last.
_END = sys.maxsize

_COLUMNS: dict[TaskStatus, TaskColumn] = {
    TaskStatus.TODO: "todo",
    TaskStatus.IN_PROGRESS: "in_progress",
    TaskStatus.REVIEW: "review",
    TaskStatus.DONE: "done",
}


class TaskBoardForRuns:
    """Offered as `Offers.task_board`."""

    def __init__(self, board: Board) -> None:
        self._board = board

    async def get_task(
        self, caller: Caller, project_id: uuid.UUID, task_id: uuid.UUID
    ) -> TaskState:
        try:
            view = await self._board.get(caller, str(project_id), str(task_id))
        except NotFound as error:
            raise task_not_found() from error
        return _state(view)

    async def attach_run(
        self, caller: Caller, project_id: uuid.UUID, task_id: uuid.UUID, run_id: uuid.UUID
    ) -> TaskState:
        async def change(db: AsyncSession, pid: uuid.UUID, task: Task) -> None:
            task.run_id = run_id
            await _move_to_end(db, pid, task, TaskStatus.IN_PROGRESS)

        return _state(await self._board.edit(caller, str(project_id), str(task_id), change))

    async def move_task(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        task_id: uuid.UUID,
        status: TaskColumn | None,
        note: str = "",
    ) -> TaskState:
        note = note.strip()
        violations = Violations()
        violations.check("\x00" not in note, "note", "must not contain NUL characters")
        column = _column(status) if status is not None else None
        violations.raise_if_any()

        async def change(db: AsyncSession, pid: uuid.UUID, task: Task) -> None:
            if note:
                task.description = _with_note(task.description, note)
            if column is not None:
                await _move_to_end(db, pid, task, column)

        return _state(await self._board.edit(caller, str(project_id), str(task_id), change))


async def _move_to_end(db: AsyncSession, pid: uuid.UUID, task: Task, status: TaskStatus) -> None:
    """To the end of `status`, unless the task is in that column already (it stays put)."""
    if task.status != status.value:
        await place(db, pid, task, status, _END)


def _with_note(description: str, note: str) -> str:
    text = f"{description.rstrip()}\n\n{note}" if description.strip() else note
    violations = Violations()
    violations.check(
        len(text) <= TASK_DESCRIPTION_MAX,
        "note",
        f"would make the task's description longer than {TASK_DESCRIPTION_MAX} characters",
    )
    violations.raise_if_any()
    return text


def _column(status: str) -> TaskStatus:
    try:
        return TaskStatus(status)
    except ValueError:
        raise InvalidArgument.of(
            [FieldViolation("status", "must be todo, in_progress, review or done")]
        ) from None


def _state(view: TaskView) -> TaskState:
    return TaskState(task_id=view.id, title=view.title, status=_COLUMNS[view.status])
