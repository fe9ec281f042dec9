"""Members: added by email, roles changed in place, and a project never loses its last owner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb

from tests.projects.support import Stub, add_member, create_project, stub
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations


async def _roles(projects: Stub, account: Account, project_id: str) -> dict[str, int]:
    listing = await projects.ListMembers(
        pb.ListMembersRequest(project_id=project_id), metadata=account.metadata
    )
    return {m.user_id: m.role for m in listing.members}


async def test_add_by_email_then_change_the_role(channel: grpc.aio.Channel, user: Account) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    friend = await register(channel, display_name="Friend")
    added = await projects.AddMember(
        pb.AddMemberRequest(
            project_id=project.id, email=f"  {friend.email.upper()} ", role=pb.PROJECT_ROLE_VIEWER
        ),
        metadata=user.metadata,
    )
    assert (added.user_id, added.email, added.display_name) == (
        friend.user_id,
        friend.email,
        "Friend",
    )
    assert added.role == pb.PROJECT_ROLE_VIEWER
    assert added.project_id == project.id

    promoted = await add_member(projects, user, project.id, friend, pb.PROJECT_ROLE_EDITOR)
    assert promoted.role == pb.PROJECT_ROLE_EDITOR
    assert promoted.create_time == added.create_time
    assert await _roles(projects, user, project.id) == {
        user.user_id: pb.PROJECT_ROLE_OWNER,
        friend.user_id: pb.PROJECT_ROLE_EDITOR,
    }
    seen = await projects.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=friend.metadata
    )
    assert seen.caller_role == pb.PROJECT_ROLE_EDITOR


async def test_unknown_email_is_not_found(channel: grpc.aio.Channel, user: Account) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await projects.AddMember(
            pb.AddMemberRequest(
                project_id=project.id, email="nobody@example.com", role=pb.PROJECT_ROLE_VIEWER
            ),
            metadata=user.metadata,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "USER_NOT_FOUND"


async def test_add_member_validates_email_and_role(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await projects.AddMember(
            pb.AddMemberRequest(project_id=project.id, email="not an email"),
            metadata=user.metadata,
        )
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(rejected.value)) == {"email", "role"}


async def test_the_last_owner_cannot_leave_be_removed_or_be_demoted(
    channel: grpc.aio.Channel, user: Account, admin: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    editor = await register(channel)
    await add_member(projects, user, project.id, editor, pb.PROJECT_ROLE_EDITOR)

    attempts: dict[str, Awaitable[object]] = {
        "leave": projects.RemoveMember(
            pb.RemoveMemberRequest(project_id=project.id, user_id=user.user_id),
            metadata=user.metadata,
        ),
        "removed by an admin": projects.RemoveMember(
            pb.RemoveMemberRequest(project_id=project.id, user_id=user.user_id),
            metadata=admin.metadata,
        ),
        "demote self": projects.AddMember(
            pb.AddMemberRequest(
                project_id=project.id, email=user.email, role=pb.PROJECT_ROLE_EDITOR
            ),
            metadata=user.metadata,
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await attempt
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, what
        assert error_info(refused.value).reason == "LAST_OWNER", what
    assert (await _roles(projects, user, project.id))[user.user_id] == pb.PROJECT_ROLE_OWNER

    # With a second owner, the first may leave.
    await add_member(projects, user, project.id, editor, pb.PROJECT_ROLE_OWNER)
    await projects.RemoveMember(
        pb.RemoveMemberRequest(project_id=project.id, user_id=user.user_id),
        metadata=user.metadata,
    )
    assert await _roles(projects, editor, project.id) == {editor.user_id: pb.PROJECT_ROLE_OWNER}
    with pytest.raises(grpc.aio.AioRpcError) as left:
        await projects.GetProject(
            pb.GetProjectRequest(project_id=project.id), metadata=user.metadata
        )
    assert left.value.code() == grpc.StatusCode.NOT_FOUND


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    other = await register(channel)
    await add_member(projects, user, project.id, other, pb.PROJECT_ROLE_OWNER)
    results = await asyncio.gather(
        add_member(projects, user, project.id, other, pb.PROJECT_ROLE_VIEWER),
        add_member(projects, other, project.id, user, pb.PROJECT_ROLE_VIEWER),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(failures) == 1
    assert failures[0].code() in {
        grpc.StatusCode.FAILED_PRECONDITION,  # the other was already demoted: last owner
        grpc.StatusCode.PERMISSION_DENIED,  # the caller was already demoted
    }
    roles = await _roles(projects, user if results[0] is failures[0] else other, project.id)
    assert sorted(roles.values()) == [pb.PROJECT_ROLE_VIEWER, pb.PROJECT_ROLE_OWNER]


async def test_members_may_leave_but_not_remove_others(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    viewer, editor = await register(channel), await register(channel)
    await add_member(projects, user, project.id, viewer, pb.PROJECT_ROLE_VIEWER)
    await add_member(projects, user, project.id, editor, pb.PROJECT_ROLE_EDITOR)

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await projects.RemoveMember(
            pb.RemoveMemberRequest(project_id=project.id, user_id=viewer.user_id),
            metadata=editor.metadata,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await projects.RemoveMember(
        pb.RemoveMemberRequest(project_id=project.id, user_id=viewer.user_id),
        metadata=viewer.metadata,
    )
    await projects.RemoveMember(
        pb.RemoveMemberRequest(project_id=project.id, user_id=editor.user_id),
        metadata=user.metadata,
    )
    assert await _roles(projects, user, project.id) == {user.user_id: pb.PROJECT_ROLE_OWNER}

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await projects.RemoveMember(
            pb.RemoveMemberRequest(project_id=project.id, user_id=editor.user_id),
            metadata=user.metadata,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "MEMBER_NOT_FOUND"
