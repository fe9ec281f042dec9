"""Who may call what: every ProjectService RPC by {anonymous, stranger, viewer, editor, owner,
admin}, each cell's status code (and reason) asserted.

A stranger gets NOT_FOUND for a project that exists — the same answer as for one that does
not — so ids cannot be probed. Each cell gets a fresh project (owner + editor + viewer +
bystander, one task), so destructive calls do not disturb the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb
from google.protobuf import field_mask_pb2

from tests.projects.support import Team, create_task, new_team, staffed_project, stub
from tests.support.accounts import Account
from tests.support.rpc import error_info

ROLES = ("anonymous", "stranger", "viewer", "editor", "owner", "admin")

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED

# Rows of the matrix: the expected code for each role, in ROLES order.
OPEN = (UNAUTHENTICATED, OK, OK, OK, OK, OK)
READ = (UNAUTHENTICATED, NOT_FOUND, OK, OK, OK, OK)
WRITE = (UNAUTHENTICATED, NOT_FOUND, DENIED, OK, OK, OK)
OWNER = (UNAUTHENTICATED, NOT_FOUND, DENIED, DENIED, OK, OK)
ADMIN = (UNAUTHENTICATED, DENIED, DENIED, DENIED, DENIED, OK)

REASONS = {
    UNAUTHENTICATED: {"CREDENTIALS_MISSING"},
    NOT_FOUND: {"PROJECT_NOT_FOUND"},
    DENIED: {"PROJECT_ROLE_TOO_LOW", "ADMIN_REQUIRED"},
}

if TYPE_CHECKING:
    from tests.projects.support import Stub


@dataclass
class World:
    team: Team
    project: pb.Project
    task: pb.Task


Call = Callable[["Stub", World, Any], Awaitable[object]]


def _calls() -> dict[str, Call]:
    def project_id(w: World) -> str:
        return w.project.id

    return {
        "CreateProject": lambda s, w, md: s.CreateProject(
            pb.CreateProjectRequest(project=pb.Project(name="matrix")), metadata=md
        ),
        "GetProject": lambda s, w, md: s.GetProject(
            pb.GetProjectRequest(project_id=project_id(w)), metadata=md
        ),
        "ListProjects": lambda s, w, md: s.ListProjects(pb.ListProjectsRequest(), metadata=md),
        "ListProjects(all)": lambda s, w, md: s.ListProjects(
            pb.ListProjectsRequest(all=True), metadata=md
        ),
        "UpdateProject": lambda s, w, md: s.UpdateProject(
            pb.UpdateProjectRequest(
                project=pb.Project(id=project_id(w), name="renamed"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            metadata=md,
        ),
        "DeleteProject": lambda s, w, md: s.DeleteProject(
            pb.DeleteProjectRequest(project_id=project_id(w)), metadata=md
        ),
        "AddMember": lambda s, w, md: s.AddMember(
            pb.AddMemberRequest(
                project_id=project_id(w), email=w.team.newcomer.email, role=pb.PROJECT_ROLE_VIEWER
            ),
            metadata=md,
        ),
        "ListMembers": lambda s, w, md: s.ListMembers(
            pb.ListMembersRequest(project_id=project_id(w)), metadata=md
        ),
        "RemoveMember": lambda s, w, md: s.RemoveMember(
            pb.RemoveMemberRequest(project_id=project_id(w), user_id=w.team.bystander.user_id),
            metadata=md,
        ),
        "CreateTask": lambda s, w, md: s.CreateTask(
            pb.CreateTaskRequest(project_id=project_id(w), task=pb.Task(title="new")),
            metadata=md,
        ),
        "GetTask": lambda s, w, md: s.GetTask(
            pb.GetTaskRequest(project_id=project_id(w), task_id=w.task.id), metadata=md
        ),
        "ListTasks": lambda s, w, md: s.ListTasks(
            pb.ListTasksRequest(project_id=project_id(w)), metadata=md
        ),
        "UpdateTask": lambda s, w, md: s.UpdateTask(
            pb.UpdateTaskRequest(
                project_id=project_id(w),
                task=pb.Task(id=w.task.id, title="retitled"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=md,
        ),
        "MoveTask": lambda s, w, md: s.MoveTask(
            pb.MoveTaskRequest(
                project_id=project_id(w), task_id=w.task.id, status=pb.TASK_STATUS_DONE
            ),
            metadata=md,
        ),
        "DeleteTask": lambda s, w, md: s.DeleteTask(
            pb.DeleteTaskRequest(project_id=project_id(w), task_id=w.task.id), metadata=md
        ),
    }


CALLS = _calls()

MATRIX: dict[str, tuple[grpc.StatusCode, ...]] = {
    "CreateProject": OPEN,
    "GetProject": READ,
    "ListProjects": OPEN,
    "ListProjects(all)": ADMIN,
    "UpdateProject": WRITE,
    "DeleteProject": OWNER,
    "AddMember": OWNER,
    "ListMembers": READ,
    "RemoveMember": OWNER,
    "CreateTask": WRITE,
    "GetTask": READ,
    "ListTasks": READ,
    "UpdateTask": WRITE,
    "MoveTask": WRITE,
    "DeleteTask": WRITE,
}

CELLS = [
    pytest.param(rpc, role, codes[i], id=f"{rpc}-{role}")
    for rpc, codes in MATRIX.items()
    for i, role in enumerate(ROLES)
]


def test_the_matrix_covers_every_rpc() -> None:
    service = pb.DESCRIPTOR.services_by_name["ProjectService"]
    assert {m.name for m in service.methods} == {name.split("(")[0] for name in MATRIX}
    assert set(MATRIX) == set(CALLS)


@pytest.fixture(scope="module")
async def team(channel: grpc.aio.Channel, admin: Account) -> Team:
    return await new_team(channel, admin)


def _metadata(team: Team, role: str) -> tuple[tuple[str, str], ...] | None:
    return None if role == "anonymous" else getattr(team, role).metadata


@pytest.mark.parametrize(("rpc", "role", "expected"), CELLS)
async def test_access(
    channel: grpc.aio.Channel, team: Team, rpc: str, role: str, expected: grpc.StatusCode
) -> None:
    projects = stub(channel)
    project = await staffed_project(projects, team)
    task = await create_task(projects, team.owner, project.id)
    world = World(team, project, task)
    call = CALLS[rpc](projects, world, _metadata(team, role))
    if expected == OK:
        await call
        return
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() == expected, refused.value.details()
    assert error_info(refused.value).reason in REASONS[expected]


async def test_strangers_cannot_tell_a_hidden_project_from_a_missing_one(
    channel: grpc.aio.Channel, team: Team
) -> None:
    projects = stub(channel)
    project = await staffed_project(projects, team)
    answers = []
    for project_id in (project.id, str(uuid.uuid4()), "not-an-id"):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await projects.GetProject(
                pb.GetProjectRequest(project_id=project_id), metadata=team.stranger.metadata
            )
        answers.append(
            (hidden.value.code(), error_info(hidden.value).reason, hidden.value.details())
        )
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][:2] == (NOT_FOUND, "PROJECT_NOT_FOUND")


async def test_strangers_do_not_see_the_project_in_their_list(
    channel: grpc.aio.Channel, team: Team
) -> None:
    projects = stub(channel)
    project = await staffed_project(projects, team)
    mine = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=1000), metadata=team.stranger.metadata
    )
    assert project.id not in {p.id for p in mine.projects}
    theirs = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=1000), metadata=team.viewer.metadata
    )
    listed = {p.id: p for p in theirs.projects}
    assert listed[project.id].caller_role == pb.PROJECT_ROLE_VIEWER
