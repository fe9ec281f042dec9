"""The kanban board: columns stay dense and ordered through creates, moves and deletes."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb
from google.protobuf import field_mask_pb2

from tests.projects.support import add_member, column, create_project, create_task, stub
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations

COLUMNS = (
    pb.TASK_STATUS_TODO,
    pb.TASK_STATUS_IN_PROGRESS,
    pb.TASK_STATUS_REVIEW,
    pb.TASK_STATUS_DONE,
)

if TYPE_CHECKING:
    from tests.projects.support import Stub


async def _board(projects: Stub, owner: Account, project_id: str) -> dict[int, list[str]]:
    """Titles per column, in position order; asserts every column is dense."""
    board: dict[int, list[str]] = {}
    for status in COLUMNS:
        tasks = await column(projects, owner, project_id, status)
        assert [t.position for t in tasks] == list(range(len(tasks))), tasks
        board[status] = [t.title for t in tasks]
    return board


async def _move(
    projects: Stub, account: Account, project_id: str, task_id: str, status: int, position: int
) -> pb.Task:
    return await projects.MoveTask(
        pb.MoveTaskRequest(
            project_id=project_id,
            task_id=task_id,
            status=status,  # type: ignore[arg-type]
            position=position,
        ),
        metadata=account.metadata,
    )


async def test_create_appends_or_inserts_and_lists_column_by_column(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    a = await create_task(projects, user, project.id, "a")
    b = await create_task(projects, user, project.id, "b")
    c = await create_task(projects, user, project.id, "c", position=1)
    d = await create_task(projects, user, project.id, "d", pb.TASK_STATUS_DONE, position=7)
    assert (a.position, b.position, c.position, d.position) == (0, 1, 1, 0)
    assert a.status == pb.TASK_STATUS_TODO
    assert c.creator_user_id == user.user_id
    assert c.create_time.seconds > 0
    board = await _board(projects, user, project.id)
    assert board[pb.TASK_STATUS_TODO] == ["a", "c", "b"]
    assert board[pb.TASK_STATUS_DONE] == ["d"]

    everything = await projects.ListTasks(
        pb.ListTasksRequest(project_id=project.id), metadata=user.metadata
    )
    assert [t.title for t in everything.tasks] == ["a", "c", "b", "d"]
    got = await projects.GetTask(
        pb.GetTaskRequest(project_id=project.id, task_id=c.id), metadata=user.metadata
    )
    assert (got.title, got.position, got.status) == ("c", 1, pb.TASK_STATUS_TODO)


async def test_move_within_and_across_columns(channel: grpc.aio.Channel, user: Account) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    tasks = {t: await create_task(projects, user, project.id, t) for t in "abcde"}
    await _move(projects, user, project.id, tasks["a"].id, pb.TASK_STATUS_TODO, 3)
    assert (await _board(projects, user, project.id))[pb.TASK_STATUS_TODO] == list("bcdae")
    await _move(projects, user, project.id, tasks["e"].id, pb.TASK_STATUS_TODO, 0)
    assert (await _board(projects, user, project.id))[pb.TASK_STATUS_TODO] == list("ebcda")

    moved = await _move(projects, user, project.id, tasks["c"].id, pb.TASK_STATUS_REVIEW, 99)
    assert (moved.status, moved.position) == (pb.TASK_STATUS_REVIEW, 0)
    await _move(projects, user, project.id, tasks["d"].id, pb.TASK_STATUS_REVIEW, 0)
    await _move(projects, user, project.id, tasks["e"].id, pb.TASK_STATUS_TODO, 50)
    board = await _board(projects, user, project.id)
    assert board[pb.TASK_STATUS_TODO] == list("bae")
    assert board[pb.TASK_STATUS_REVIEW] == list("dc")

    await projects.DeleteTask(
        pb.DeleteTaskRequest(project_id=project.id, task_id=tasks["b"].id), metadata=user.metadata
    )
    board = await _board(projects, user, project.id)
    assert board[pb.TASK_STATUS_TODO] == list("ae")
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await projects.GetTask(
            pb.GetTaskRequest(project_id=project.id, task_id=tasks["b"].id), metadata=user.metadata
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(gone.value).reason == "TASK_NOT_FOUND"


async def test_20_concurrent_moves_into_one_column_keep_it_dense(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    tasks = [
        await create_task(projects, user, project.id, f"t{i}", COLUMNS[i % 3]) for i in range(20)
    ]
    for i in range(5):
        await create_task(projects, user, project.id, f"done{i}", pb.TASK_STATUS_DONE)
    rng = random.Random(4)
    positions = [rng.choice([0, 1, 3, 10, 100]) for _ in tasks]

    moved = await asyncio.gather(
        *(
            _move(projects, user, project.id, task.id, pb.TASK_STATUS_DONE, position)
            for task, position in zip(tasks, positions, strict=True)
        )
    )

    assert all(t.status == pb.TASK_STATUS_DONE for t in moved)
    board = await _board(projects, user, project.id)
    assert len(board[pb.TASK_STATUS_DONE]) == 25
    assert len(set(board[pb.TASK_STATUS_DONE])) == 25
    assert board[pb.TASK_STATUS_TODO] == board[pb.TASK_STATUS_IN_PROGRESS] == []
    assert board[pb.TASK_STATUS_REVIEW] == []


async def test_concurrent_moves_both_ways_keep_every_column_dense(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    tasks = [
        await create_task(projects, user, project.id, f"t{i}", COLUMNS[i % 4]) for i in range(16)
    ]
    rng = random.Random(7)
    moves = [(rng.choice(tasks).id, rng.choice(COLUMNS), rng.randrange(6)) for _ in range(40)]
    await asyncio.gather(
        *(_move(projects, user, project.id, t, s, p) for t, s, p in moves),
        *(create_task(projects, user, project.id, f"n{i}", COLUMNS[i % 4]) for i in range(4)),
    )
    board = await _board(projects, user, project.id)
    assert sum(len(titles) for titles in board.values()) == 20


async def test_update_changes_only_the_masked_fields(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    helper = await register(channel)
    await add_member(projects, user, project.id, helper, pb.PROJECT_ROLE_EDITOR)
    task = await create_task(projects, user, project.id, "draft")
    updated = await projects.UpdateTask(
        pb.UpdateTaskRequest(
            project_id=project.id,
            task=pb.Task(
                id=task.id,
                title="final",
                description="ignored: not in the mask",
                assignee_user_id=helper.user_id,
                agent_id="coder",
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["title", "assignee_user_id", "agent_id"]),
        ),
        metadata=user.metadata,
    )
    assert (updated.title, updated.description) == ("final", "")
    assert (updated.assignee_user_id, updated.agent_id) == (helper.user_id, "coder")
    assert (updated.status, updated.position) == (task.status, task.position)

    mine = await projects.ListTasks(
        pb.ListTasksRequest(project_id=project.id, assignee_user_id=helper.user_id),
        metadata=user.metadata,
    )
    assert [t.id for t in mine.tasks] == [task.id]

    # Leaving the project unassigns the member's tasks.
    await projects.RemoveMember(
        pb.RemoveMemberRequest(project_id=project.id, user_id=helper.user_id),
        metadata=helper.metadata,
    )
    after = await projects.GetTask(
        pb.GetTaskRequest(project_id=project.id, task_id=task.id), metadata=user.metadata
    )
    assert after.assignee_user_id == ""


@pytest.mark.parametrize(
    ("paths", "task", "field", "fragment"),
    [
        (["status"], pb.Task(status=pb.TASK_STATUS_DONE), "update_mask", "MoveTask"),
        (["position"], pb.Task(position=2), "update_mask", "MoveTask"),
        (["create_time"], pb.Task(), "update_mask", "create_time"),
        (["bogus"], pb.Task(), "update_mask", "bogus"),
        (["title"], pb.Task(title=""), "task.title", "required"),
        (["title"], pb.Task(title="x" * 201), "task.title", "200"),
        (["assignee_user_id"], pb.Task(assignee_user_id="nobody"), "task.assignee_user_id", ""),
        (["run_id"], pb.Task(run_id="not-a-uuid"), "task.run_id", "run id"),
    ],
)
async def test_update_task_rejects_bad_input(
    channel: grpc.aio.Channel,
    user: Account,
    paths: list[str],
    task: pb.Task,
    field: str,
    fragment: str,
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    existing = await create_task(projects, user, project.id)
    task.id = existing.id
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await projects.UpdateTask(
            pb.UpdateTaskRequest(
                project_id=project.id, task=task, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
            metadata=user.metadata,
        )
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(rejected.value)
    assert fragment in violations[field]


async def test_assignee_must_be_a_member(channel: grpc.aio.Channel, user: Account) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    outsider = await register(channel)
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await projects.CreateTask(
            pb.CreateTaskRequest(
                project_id=project.id,
                task=pb.Task(title="t", assignee_user_id=outsider.user_id),
            ),
            metadata=user.metadata,
        )
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "member" in field_violations(rejected.value)["task.assignee_user_id"]


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (pb.CreateTaskRequest(task=pb.Task(title="")), "task.title"),
        (pb.CreateTaskRequest(task=pb.Task(title="t", position=-1)), "task.position"),
        (pb.CreateTaskRequest(task=pb.Task(title="t", status=42)), "task.status"),  # type: ignore[arg-type]
        (pb.MoveTaskRequest(task_id="x"), "status"),
        (pb.MoveTaskRequest(task_id="x", status=pb.TASK_STATUS_DONE, position=-3), "position"),
        (pb.ListTasksRequest(assignee_user_id="nope"), "assignee_user_id"),
        (pb.ListTasksRequest(status=9), "status"),  # type: ignore[arg-type]
    ],
)
async def test_task_requests_are_validated(
    channel: grpc.aio.Channel, user: Account, request_message: object, field: str
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    request_message.project_id = project.id  # type: ignore[attr-defined]
    rpc = type(request_message).__name__.removesuffix("Request")
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await getattr(projects, rpc)(request_message, metadata=user.metadata)
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(rejected.value)


async def test_tasks_of_another_project_are_not_found(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    mine, other = await create_project(projects, user), await create_project(projects, user)
    task = await create_task(projects, user, other.id)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await _move(projects, user, mine.id, task.id, pb.TASK_STATUS_DONE, 0)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "TASK_NOT_FOUND"


async def test_status_and_assignee_filters_combine_and_page_in_board_order(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    helper = await register(channel)
    await add_member(projects, user, project.id, helper, pb.PROJECT_ROLE_EDITOR)
    theirs: list[str] = []
    for n, status in enumerate([pb.TASK_STATUS_TODO, pb.TASK_STATUS_DONE] * 4):
        task = await create_task(projects, user, project.id, f"t{n}", status=status)
        if n % 4 < 2:  # t0, t1, t4, t5: two to do, two done
            await projects.UpdateTask(
                pb.UpdateTaskRequest(
                    project_id=project.id,
                    task=pb.Task(id=task.id, assignee_user_id=helper.user_id),
                    update_mask=field_mask_pb2.FieldMask(paths=["assignee_user_id"]),
                ),
                metadata=user.metadata,
            )
            theirs.append(task.title)

    async def pages(**filters: object) -> list[list[str]]:
        titles: list[list[str]] = []
        token = ""
        while True:
            page = await projects.ListTasks(
                pb.ListTasksRequest(
                    project_id=project.id,
                    page_size=1,
                    page_token=token,
                    **filters,  # type: ignore[arg-type]
                ),
                metadata=helper.metadata,
            )
            titles.append([t.title for t in page.tasks])
            token = page.next_page_token
            if not token:
                return titles

    assert theirs == ["t0", "t1", "t4", "t5"]
    mine = {"assignee_user_id": helper.user_id}
    assert await pages(**mine) == [["t0"], ["t4"], ["t1"], ["t5"]]  # to do, then done
    done_and_mine = {**mine, "status": pb.TASK_STATUS_DONE}
    assert await pages(**done_and_mine) == [["t1"], ["t5"]]
    assert await pages(status=pb.TASK_STATUS_TODO) == [["t0"], ["t2"], ["t4"], ["t6"]]
