"""GetProject reads the caller's account state in the same statement as the project (one
round trip, core/caller_state.py): a revoked session or a disabled user is refused at once,
and learns nothing about projects (not whether one exists, not whether an id is valid)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2 as pb

from tests.projects.support import create_project, stub
from tests.support.accounts import Account, login, register, set_disabled
from tests.support.rpc import error_info

Metadata = tuple[tuple[str, str], ...]


async def get(channel: grpc.aio.Channel, metadata: Metadata, project_id: str) -> pb.Project:
    return await stub(channel).GetProject(
        pb.GetProjectRequest(project_id=project_id), metadata=metadata, timeout=10
    )


async def refusal(channel: grpc.aio.Channel, metadata: Metadata, project_id: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(channel, metadata, project_id)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    return str(error_info(caught.value).reason)


def auth(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def test_a_revoked_session_is_refused_whatever_project_it_asks_for(
    channel: grpc.aio.Channel, user: Account
) -> None:
    project = await create_project(stub(channel), user, name="Mine")
    assert (await get(channel, user.metadata, project.id)).name == "Mine"
    await auth(channel).RevokeSession(
        auth_pb2.RevokeSessionRequest(session_id=user.session_id),
        metadata=user.metadata,
        timeout=10,
    )
    assert await refusal(channel, user.metadata, project.id) == "SESSION_REVOKED"
    # Not NOT_FOUND, nor INVALID_ARGUMENT: a refused caller learns nothing else.
    assert await refusal(channel, user.metadata, str(uuid.uuid4())) == "SESSION_REVOKED"
    assert await refusal(channel, user.metadata, "not-an-id") == "SESSION_REVOKED"

    # The account's other session still works.
    again = await login(channel, user.email)
    assert (await get(channel, again.metadata, project.id)).id == project.id


async def test_a_disabled_user_is_refused_and_once_enabled_is_served_again(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    project = await create_project(stub(channel), user, name="Theirs")

    await set_disabled(channel, admin, user, True)
    assert await refusal(channel, user.metadata, project.id) == "USER_DISABLED"
    assert await refusal(channel, user.metadata, str(uuid.uuid4())) == "USER_DISABLED"
    await set_disabled(channel, admin, user, False)
    # (disabling ended its sessions: it signs in again)
    again = await login(channel, user.email)
    assert (await get(channel, again.metadata, project.id)).name == "Theirs"


async def test_roles_come_with_the_state_an_admin_sees_any_project_a_stranger_none(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    project = await create_project(stub(channel), user, name="Private")
    assert (await get(channel, admin.metadata, project.id)).id == project.id
    stranger = await register(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(channel, stranger.metadata, project.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(channel, stranger.metadata, "not-an-id")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_api_key_caller_is_checked_as_on_any_call(
    channel: grpc.aio.Channel, user: Account
) -> None:
    project = await create_project(stub(channel), user, name="Keyed")
    key = await auth(channel).CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci"), metadata=user.metadata, timeout=10
    )
    keyed: Metadata = (("x-api-key", key.secret),)
    assert (await get(channel, keyed, project.id)).id == project.id
    await auth(channel).RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(api_key_id=key.api_key.id),
        metadata=user.metadata,
        timeout=10,
    )
    assert await refusal(channel, keyed, project.id) == "KEY_REVOKED"
