"""Helpers for ProjectService tests: a stub, teams of accounts, projects with members."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc

from tests.support.accounts import Account, register

_names = itertools.count()

if TYPE_CHECKING:
    from forge.projects.v1.projects_pb2_grpc import ProjectServiceAsyncStub

# The generated stub class, as typed for an aio channel.
Stub: TypeAlias = "ProjectServiceAsyncStub"


def stub(channel: grpc.aio.Channel) -> Stub:
    return projects_pb2_grpc.ProjectServiceStub(channel)


def unique_name(prefix: str = "project") -> str:
    return f"{prefix} {next(_names)}"


@dataclass
class Team:
    """Accounts with every relation a caller can have to a project."""

    owner: Account
    editor: Account
    viewer: Account
    # A viewer whom the others try to remove.
    bystander: Account
    stranger: Account
    # Not a member; the one AddMember adds.
    newcomer: Account
    admin: Account


async def new_team(channel: grpc.aio.Channel, admin: Account) -> Team:
    return Team(
        owner=await register(channel, display_name="Owner"),
        editor=await register(channel, display_name="Editor"),
        viewer=await register(channel, display_name="Viewer"),
        bystander=await register(channel, display_name="Bystander"),
        stranger=await register(channel, display_name="Stranger"),
        newcomer=await register(channel, display_name="Newcomer"),
        admin=admin,
    )


async def create_project(projects: Stub, owner: Account, **fields: Any) -> projects_pb2.Project:
    fields.setdefault("name", unique_name())
    return await projects.CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(**fields)),
        metadata=owner.metadata,
    )


async def add_member(
    projects: Stub,
    owner: Account,
    project_id: str,
    member: Account,
    role: projects_pb2.ProjectRole.ValueType,
) -> projects_pb2.Member:
    return await projects.AddMember(
        projects_pb2.AddMemberRequest(project_id=project_id, email=member.email, role=role),
        metadata=owner.metadata,
    )


async def staffed_project(projects: Stub, team: Team) -> projects_pb2.Project:
    """A project owned by team.owner with the editor, the viewer and the bystander in it."""
    project = await create_project(projects, team.owner)
    await add_member(
        projects, team.owner, project.id, team.editor, projects_pb2.PROJECT_ROLE_EDITOR
    )
    await add_member(
        projects, team.owner, project.id, team.viewer, projects_pb2.PROJECT_ROLE_VIEWER
    )
    await add_member(
        projects, team.owner, project.id, team.bystander, projects_pb2.PROJECT_ROLE_VIEWER
    )
    return project


async def create_task(
    projects: Stub,
    account: Account,
    project_id: str,
    title: str = "a task",
    status: projects_pb2.TaskStatus.ValueType = projects_pb2.TASK_STATUS_TODO,
    position: int = 0,
) -> projects_pb2.Task:
    return await projects.CreateTask(
        projects_pb2.CreateTaskRequest(
            project_id=project_id,
            task=projects_pb2.Task(title=title, status=status, position=position),
        ),
        metadata=account.metadata,
    )


async def column(
    projects: Stub, account: Account, project_id: str, status: projects_pb2.TaskStatus.ValueType
) -> list[projects_pb2.Task]:
    response = await projects.ListTasks(
        projects_pb2.ListTasksRequest(project_id=project_id, status=status, page_size=1000),
        metadata=account.metadata,
    )
    assert not response.next_page_token
    return list(response.tasks)
