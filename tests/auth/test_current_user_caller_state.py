"""GetCurrentUser reads the caller's account state in the same statement as the profile (one
round trip, core/caller_state.py): what it answers is the account as stored, and a revoked
session, a disabled user or a revoked API key is refused at once."""

from __future__ import annotations

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import field_mask_pb2

from tests.support.accounts import Account, login, set_disabled
from tests.support.rpc import error_info

Metadata = tuple[tuple[str, str], ...]


def auth(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def me(channel: grpc.aio.Channel, metadata: Metadata) -> auth_pb2.User:
    return await auth(channel).GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=metadata, timeout=10
    )


async def refusal(channel: grpc.aio.Channel, metadata: Metadata) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await me(channel, metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    return str(error_info(caught.value).reason)


async def test_the_profile_is_the_account_as_stored(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    await auth(channel).UpdateCurrentUser(
        auth_pb2.UpdateCurrentUserRequest(
            user=auth_pb2.User(display_name="Ada L."),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=user.metadata,
        timeout=10,
    )
    mine = await me(channel, user.metadata)
    assert (mine.id, mine.email, mine.display_name) == (user.user_id, user.email, "Ada L.")
    assert mine.role == auth_pb2.ROLE_USER
    assert not mine.disabled
    assert mine.HasField("create_time")
    assert mine.HasField("last_login_time")
    assert mine.update_time.ToDatetime() >= mine.create_time.ToDatetime()
    theirs = await me(channel, admin.metadata)
    assert (theirs.id, theirs.role) == (admin.user_id, auth_pb2.ROLE_ADMIN)


async def test_a_revoked_session_is_refused_and_another_session_still_served(
    channel: grpc.aio.Channel, user: Account
) -> None:
    assert (await me(channel, user.metadata)).id == user.user_id
    await auth(channel).RevokeSession(
        auth_pb2.RevokeSessionRequest(session_id=user.session_id),
        metadata=user.metadata,
        timeout=10,
    )
    assert await refusal(channel, user.metadata) == "SESSION_REVOKED"
    again = await login(channel, user.email)
    assert (await me(channel, again.metadata)).id == user.user_id


async def test_a_disabled_user_is_refused_and_once_enabled_is_served_again(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    await set_disabled(channel, admin, user, True)
    assert await refusal(channel, user.metadata) == "USER_DISABLED"
    await set_disabled(channel, admin, user, False)
    # (disabling ended its sessions: it signs in again)
    again = await login(channel, user.email)
    assert not (await me(channel, again.metadata)).disabled


async def test_an_api_key_caller_gets_its_owner_until_the_key_is_revoked(
    channel: grpc.aio.Channel, user: Account
) -> None:
    key = await auth(channel).CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci"), metadata=user.metadata, timeout=10
    )
    keyed: Metadata = (("x-api-key", key.secret),)
    assert (await me(channel, keyed)).email == user.email
    await auth(channel).RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(api_key_id=key.api_key.id),
        metadata=user.metadata,
        timeout=10,
    )
    assert await refusal(channel, keyed) == "KEY_REVOKED"
