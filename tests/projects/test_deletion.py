"""Deleting a project removes its members and tasks and runs the clean-up other services
registered: inside the deleting transaction, then (once committed) their after-commit steps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.context import Caller
from server.core.errors import FailedPrecondition
from server.core.hooks import AfterCommit, ProjectDeletionHooks
from server.db.engine import make_engine, make_session_factory
from server.db.models import Project, ProjectMember, Task
from server.projects.model import ProjectFields
from server.projects.projects import Projects
from tests.projects.support import add_member, create_project, create_task, stub
from tests.support.accounts import Account, register


@pytest.fixture(scope="module")
async def sessions(
    database_url: str, forge: object
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    yield make_session_factory(engine)
    await engine.dispose()


async def _count(
    sessions: async_sessionmaker[AsyncSession], model: type, project_id: uuid.UUID
) -> int:
    async with sessions() as db:
        column = model.id if model is Project else model.project_id  # type: ignore[attr-defined]
        return int(await db.scalar(select(func.count()).where(column == project_id)) or 0)


async def test_delete_runs_the_registered_clean_up(
    sessions: async_sessionmaker[AsyncSession], user: Account
) -> None:
    events: list[str] = []

    async def hook(db: AsyncSession, project_id: uuid.UUID) -> AfterCommit:
        # Inside the transaction the project is still there (hooks may read their rows).
        still_there = await db.scalar(select(Project.id).where(Project.id == project_id))
        events.append(f"in transaction, project present: {still_there == project_id}")

        async def after() -> None:
            events.append(
                f"after commit, projects left: {await _count(sessions, Project, project_id)}"
            )

        return after

    hooks = ProjectDeletionHooks()
    hooks.register(hook)
    projects = Projects(sessions, hooks)
    caller = Caller(user_id=uuid.UUID(user.user_id))
    view = await projects.create(caller, ProjectFields(name="doomed"))

    await projects.delete(caller, str(view.id))

    assert events == ["in transaction, project present: True", "after commit, projects left: 0"]


async def test_a_failing_hook_keeps_the_project(
    sessions: async_sessionmaker[AsyncSession], user: Account
) -> None:
    async def refuse(db: AsyncSession, project_id: uuid.UUID) -> AfterCommit | None:
        raise FailedPrecondition("sandboxes are still being created", "SANDBOXES_BUSY")

    hooks = ProjectDeletionHooks()
    hooks.register(refuse)
    projects = Projects(sessions, hooks)
    caller = Caller(user_id=uuid.UUID(user.user_id))
    view = await projects.create(caller, ProjectFields(name="kept"))
    with pytest.raises(FailedPrecondition):
        await projects.delete(caller, str(view.id))
    assert await _count(sessions, Project, view.id) == 1
    assert await _count(sessions, ProjectMember, view.id) == 1


async def test_delete_over_grpc_removes_members_and_tasks(
    channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession], user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    await add_member(projects, user, project.id, await register(channel), pb.PROJECT_ROLE_VIEWER)
    for _ in range(3):
        await create_task(projects, user, project.id)
    pid = uuid.UUID(project.id)
    assert (await _count(sessions, ProjectMember, pid), await _count(sessions, Task, pid)) == (2, 3)

    await projects.DeleteProject(
        pb.DeleteProjectRequest(project_id=project.id), metadata=user.metadata
    )

    assert await _count(sessions, Project, pid) == 0
    assert await _count(sessions, ProjectMember, pid) == 0
    assert await _count(sessions, Task, pid) == 0
