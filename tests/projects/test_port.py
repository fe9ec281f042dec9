"""The task board port (core/ports.py TaskBoardPort) as a running server offers it to agent
runs: a run is recorded on its task, the task moves along the board (columns stay dense, as
MoveTask keeps them) and gets notes."""

from __future__ import annotations

import uuid

import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb

from server.app import ForgeServer
from server.core.context import Caller
from server.core.errors import InvalidArgument, NotFound, PermissionDenied
from server.core.ports import TaskBoardPort, TaskState
from tests.projects.support import Team, column, create_task, new_team, staffed_project, stub
from tests.support.accounts import Account


def _port(forge: ForgeServer) -> TaskBoardPort:
    module = next(module for module in forge.modules if module.name == "projects")
    assert module.offers.task_board is not None
    return module.offers.task_board


def _caller(account: Account) -> Caller:
    return Caller(user_id=uuid.UUID(account.user_id), roles=frozenset({"user"}))


@pytest.fixture
async def team(channel: grpc.aio.Channel, admin: Account) -> Team:
    return await new_team(channel, admin)


async def _titles(channel: grpc.aio.Channel, team: Team, project_id: str) -> dict[int, list[str]]:
    """Titles per column in position order; every column dense."""
    board: dict[int, list[str]] = {}
    for status in (pb.TASK_STATUS_TODO, pb.TASK_STATUS_IN_PROGRESS, pb.TASK_STATUS_REVIEW):
        tasks = await column(stub(channel), team.owner, project_id, status)
        assert [t.position for t in tasks] == list(range(len(tasks)))
        board[status] = [t.title for t in tasks]
    return board


async def test_a_run_moves_its_task_along_the_board(
    forge: ForgeServer, channel: grpc.aio.Channel, team: Team
) -> None:
    projects = stub(channel)
    project = await staffed_project(projects, team)
    pid = uuid.UUID(project.id)
    for title in ("first", "target", "last"):
        await create_task(projects, team.owner, project.id, title)
    await create_task(projects, team.owner, project.id, "busy", pb.TASK_STATUS_IN_PROGRESS)
    target = next(
        task
        for task in await column(projects, team.owner, project.id, pb.TASK_STATUS_TODO)
        if task.title == "target"
    )
    tid = uuid.UUID(target.id)
    port = _port(forge)
    editor = _caller(team.editor)

    assert await port.get_task(_caller(team.viewer), pid, tid) == TaskState(tid, "target", "todo")

    run_id = uuid.uuid4()
    state = await port.attach_run(editor, pid, tid, run_id)
    assert state == TaskState(tid, "target", "in_progress")
    task = await projects.GetTask(
        pb.GetTaskRequest(project_id=project.id, task_id=target.id), metadata=team.viewer.metadata
    )
    assert task.run_id == str(run_id)
    assert (task.status, task.position) == (pb.TASK_STATUS_IN_PROGRESS, 1)  # at the end
    assert await _titles(channel, team, project.id) == {
        pb.TASK_STATUS_TODO: ["first", "last"],
        pb.TASK_STATUS_IN_PROGRESS: ["busy", "target"],
        pb.TASK_STATUS_REVIEW: [],
    }

    # Attaching again (a resumed run) keeps the task where it is.
    await projects.MoveTask(
        pb.MoveTaskRequest(
            project_id=project.id, task_id=target.id, status=pb.TASK_STATUS_IN_PROGRESS
        ),
        metadata=team.editor.metadata,
    )
    await port.attach_run(editor, pid, tid, run_id)
    assert (await _titles(channel, team, project.id))[pb.TASK_STATUS_IN_PROGRESS] == [
        "target",
        "busy",
    ]

    state = await port.move_task(editor, pid, tid, "review", "Tests pass.")
    assert state == TaskState(tid, "target", "review")
    await port.move_task(editor, pid, tid, None, "  Second note.\n")
    task = await projects.GetTask(
        pb.GetTaskRequest(project_id=project.id, task_id=target.id), metadata=team.viewer.metadata
    )
    assert task.description == "Tests pass.\n\nSecond note."
    assert (task.status, task.position, task.run_id) == (pb.TASK_STATUS_REVIEW, 0, str(run_id))
    assert await _titles(channel, team, project.id) == {
        pb.TASK_STATUS_TODO: ["first", "last"],
        pb.TASK_STATUS_IN_PROGRESS: ["busy"],
        pb.TASK_STATUS_REVIEW: ["target"],
    }


async def test_a_note_is_a_new_paragraph_of_the_description(
    forge: ForgeServer, channel: grpc.aio.Channel, team: Team
) -> None:
    projects = stub(channel)
    project = await staffed_project(projects, team)
    task = await projects.CreateTask(
        pb.CreateTaskRequest(
            project_id=project.id, task=pb.Task(title="t", description="Parse ISO dates.\n")
        ),
        metadata=team.owner.metadata,
    )
    port = _port(forge)
    await port.move_task(
        _caller(team.editor), uuid.UUID(project.id), uuid.UUID(task.id), "done", "Done by a run."
    )
    got = await projects.GetTask(
        pb.GetTaskRequest(project_id=project.id, task_id=task.id), metadata=team.owner.metadata
    )
    assert got.description == "Parse ISO dates.\n\nDone by a run."
    assert got.status == pb.TASK_STATUS_DONE
    with pytest.raises(InvalidArgument) as error:
        await port.move_task(
            _caller(team.editor), uuid.UUID(project.id), uuid.UUID(task.id), None, "x" * 10_000
        )
    assert [v.field for v in error.value.violations] == ["note"]


async def test_access_is_the_boards(
    forge: ForgeServer, channel: grpc.aio.Channel, team: Team
) -> None:
    projects = stub(channel)
    project = await staffed_project(projects, team)
    task = await create_task(projects, team.owner, project.id, "guarded")
    pid, tid = uuid.UUID(project.id), uuid.UUID(task.id)
    port = _port(forge)
    viewer, stranger = _caller(team.viewer), _caller(team.stranger)
    with pytest.raises(PermissionDenied):
        await port.attach_run(viewer, pid, tid, uuid.uuid4())
    with pytest.raises(PermissionDenied):
        await port.move_task(viewer, pid, tid, "review", "no")
    for call in (
        port.get_task(stranger, pid, tid),
        port.attach_run(stranger, pid, tid, uuid.uuid4()),
        port.get_task(_caller(team.editor), pid, uuid.uuid4()),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound) as error:
        await port.get_task(stranger, pid, tid)
    assert error.value.reason == "TASK_NOT_FOUND"
    # Nothing changed.
    got = await projects.GetTask(
        pb.GetTaskRequest(project_id=project.id, task_id=task.id), metadata=team.owner.metadata
    )
    assert (got.status, got.run_id, got.description) == (pb.TASK_STATUS_TODO, "", "")
