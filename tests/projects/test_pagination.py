"""Paging through lists: stable keyset pages under concurrent inserts, tamper-evident tokens."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING

import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb

from tests.projects.support import add_member, create_project, create_task, stub
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations

if TYPE_CHECKING:
    from tests.projects.support import Stub


async def _page(
    projects: Stub, account: Account, token: str = "", **kw: object
) -> tuple[list[str], str]:
    response = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=50, page_token=token, **kw),  # type: ignore[arg-type]
        metadata=account.metadata,
    )
    return [p.id for p in response.projects], response.next_page_token


async def _create_many(projects: Stub, owner: Account, count: int) -> list[str]:
    created: list[str] = []
    for start in range(0, count, 20):
        batch = await asyncio.gather(
            *(create_project(projects, owner) for _ in range(min(20, count - start)))
        )
        created.extend(p.id for p in batch)
    return created


async def test_120_projects_page_as_50_50_20_while_others_are_inserted(
    channel: grpc.aio.Channel,
) -> None:
    projects = stub(channel)
    owner = await register(channel)
    created = await _create_many(projects, owner, 120)

    first, token = await _page(projects, owner)
    assert token
    await _create_many(projects, owner, 3)
    second, token = await _page(projects, owner, token)
    assert token
    await _create_many(projects, owner, 3)
    third, token = await _page(projects, owner, token)

    assert (len(first), len(second), len(third)) == (50, 50, 20)
    assert token == ""
    served = first + second + third
    assert len(set(served)) == 120, "a project was served twice"
    assert set(served) == set(created), "a project was skipped or a new one slipped in"
    assert served == sorted(served, reverse=True), "not newest first"

    everything, _ = await _page(projects, owner)
    assert len(everything) == 50
    listing = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=1000), metadata=owner.metadata
    )
    assert len(listing.projects) == 126


def _alter(token: str) -> str:
    """The same token with its cursor moved: a valid payload whose signature no longer fits."""
    payload_text, signature = token.split(".", 1)
    payload = json.loads(base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4)))
    cursor = payload["a"][0]
    payload["a"][0] = cursor[:-1] + ("0" if cursor[-1] != "0" else "1")
    altered = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{altered}.{signature}"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda token: "not-a-token", id="garbage"),
        pytest.param(lambda token: "eyJrIjoicHJvamVjdHMifQ.AAAAAAAAAAAAAAAAAAAAAA", id="forged"),
        pytest.param(_alter, id="altered-cursor"),
        pytest.param(lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), id="sig"),
    ],
)
async def test_forged_or_altered_page_tokens_are_invalid(
    channel: grpc.aio.Channel, make_token: object
) -> None:
    projects = stub(channel)
    owner = await register(channel)
    for _ in range(3):
        await create_project(projects, owner)
    response = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=1), metadata=owner.metadata
    )
    assert response.next_page_token
    bad = make_token(response.next_page_token)  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await projects.ListProjects(
            pb.ListProjectsRequest(page_size=1, page_token=bad), metadata=owner.metadata
        )
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(rejected.value).reason == "INVALID_PAGE_TOKEN"
    assert "page_token" in field_violations(rejected.value)


async def test_a_token_replayed_with_other_filters_is_invalid(
    channel: grpc.aio.Channel, admin: Account
) -> None:
    projects = stub(channel)
    for _ in range(2):
        await create_project(projects, admin)
    mine = await projects.ListProjects(pb.ListProjectsRequest(page_size=1), metadata=admin.metadata)
    assert mine.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await projects.ListProjects(
            pb.ListProjectsRequest(page_size=1, page_token=mine.next_page_token, all=True),
            metadata=admin.metadata,
        )
    assert replayed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(replayed.value).reason == "INVALID_PAGE_TOKEN"


async def test_a_token_is_bound_to_its_caller_and_its_list(channel: grpc.aio.Channel) -> None:
    projects = stub(channel)
    owner, other = await register(channel), await register(channel)
    project = await create_project(projects, owner)
    await create_project(projects, owner)
    await add_member(projects, owner, project.id, other, pb.PROJECT_ROLE_VIEWER)
    token = (
        await projects.ListProjects(pb.ListProjectsRequest(page_size=1), metadata=owner.metadata)
    ).next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as someone_else:
        await projects.ListProjects(
            pb.ListProjectsRequest(page_size=1, page_token=token), metadata=other.metadata
        )
    assert someone_else.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as other_list:
        await projects.ListMembers(
            pb.ListMembersRequest(project_id=project.id, page_token=token),
            metadata=owner.metadata,
        )
    assert other_list.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_page_size_is_checked_and_capped(channel: grpc.aio.Channel) -> None:
    projects = stub(channel)
    owner = await register(channel)
    await create_project(projects, owner)
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await projects.ListProjects(pb.ListProjectsRequest(page_size=-1), metadata=owner.metadata)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in field_violations(negative.value)
    huge = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=1_000_000), metadata=owner.metadata
    )
    assert len(huge.projects) == 1


async def test_members_page_owners_first(channel: grpc.aio.Channel) -> None:
    projects = stub(channel)
    owner = await register(channel)
    project = await create_project(projects, owner)
    people = [await register(channel) for _ in range(5)]
    roles = [
        pb.PROJECT_ROLE_VIEWER,
        pb.PROJECT_ROLE_EDITOR,
        pb.PROJECT_ROLE_OWNER,
        pb.PROJECT_ROLE_VIEWER,
        pb.PROJECT_ROLE_EDITOR,
    ]
    for person, role in zip(people, roles, strict=True):
        await add_member(projects, owner, project.id, person, role)
    seen: list[pb.Member] = []
    token = ""
    while True:
        page = await projects.ListMembers(
            pb.ListMembersRequest(project_id=project.id, page_size=2, page_token=token),
            metadata=owner.metadata,
        )
        assert len(page.members) <= 2
        seen.extend(page.members)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 6
    assert len({m.user_id for m in seen}) == 6
    assert [m.role for m in seen] == sorted((m.role for m in seen), reverse=True)
    assert [m.role for m in seen][:2] == [pb.PROJECT_ROLE_OWNER] * 2
    by_user = {m.user_id: m for m in seen}
    assert by_user[owner.user_id].email == owner.email


async def test_tasks_page_column_by_column_and_tokens_keep_their_filters(
    channel: grpc.aio.Channel,
) -> None:
    projects = stub(channel)
    owner = await register(channel)
    project = await create_project(projects, owner)
    statuses = [pb.TASK_STATUS_DONE, pb.TASK_STATUS_TODO, pb.TASK_STATUS_REVIEW]
    for i in range(9):
        await create_task(projects, owner, project.id, f"task {i}", statuses[i % 3])
    served: list[pb.Task] = []
    token = ""
    while True:
        page = await projects.ListTasks(
            pb.ListTasksRequest(project_id=project.id, page_size=4, page_token=token),
            metadata=owner.metadata,
        )
        served.extend(page.tasks)
        token = page.next_page_token
        if not token:
            break
    assert [(t.status, t.position) for t in served] == [
        (status, position)
        for status in (pb.TASK_STATUS_TODO, pb.TASK_STATUS_REVIEW, pb.TASK_STATUS_DONE)
        for position in range(3)
    ]

    first = await projects.ListTasks(
        pb.ListTasksRequest(project_id=project.id, page_size=1, status=pb.TASK_STATUS_TODO),
        metadata=owner.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await projects.ListTasks(
            pb.ListTasksRequest(
                project_id=project.id,
                page_size=1,
                status=pb.TASK_STATUS_DONE,
                page_token=first.next_page_token,
            ),
            metadata=owner.metadata,
        )
    assert replayed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(replayed.value).reason == "INVALID_PAGE_TOKEN"
