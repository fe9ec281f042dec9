"""Password reset and email verification by mail over real SMTP; password change."""

from __future__ import annotations

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc

from tests.support.accounts import Account, login, register, unique_email
from tests.support.mailbox import Mailbox, token_in
from tests.support.rpc import error_info, field_violations

NEW_PASSWORD = "Brand-N3w-Secret"


async def test_password_reset_by_mail_works_once(
    channel: grpc.aio.Channel, mailbox: Mailbox, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=user.email))
    mail = await mailbox.wait_for(user.email, "Reset your Forge password")
    token = token_in(mail)

    await stub.ResetPassword(auth_pb2.ResetPasswordRequest(token=token, new_password=NEW_PASSWORD))
    # The reset ends existing sessions and the new password works, the old one does not.
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=user.metadata)
    assert error_info(ended.value).reason == "SESSION_REVOKED"
    await login(channel, user.email, NEW_PASSWORD)
    with pytest.raises(grpc.aio.AioRpcError) as old_password:
        await login(channel, user.email, user.password)
    assert old_password.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as second_use:
        await stub.ResetPassword(
            auth_pb2.ResetPasswordRequest(token=token, new_password="An0ther-Secret")
        )
    assert second_use.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(second_use.value).reason == "TOKEN_INVALID"


async def test_reset_request_answers_the_same_for_unknown_email(
    channel: grpc.aio.Channel, mailbox: Mailbox
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    ghost = unique_email("ghost")
    await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=ghost))
    assert mailbox.to(ghost) == []


async def test_verify_email_by_mail(channel: grpc.aio.Channel, mailbox: Mailbox) -> None:
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    me = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=account.metadata)
    assert not me.email_verified
    mail = await mailbox.wait_for(account.email, "Verify your Forge email")
    await stub.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token_in(mail)))
    me = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=account.metadata)
    assert me.email_verified


async def test_change_password_ends_other_sessions(
    channel: grpc.aio.Channel, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    elsewhere = await login(channel, user.email, user.password)

    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password="Wrong-0ne", new_password=NEW_PASSWORD),
            metadata=user.metadata,
        )
    assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as weak:
        await stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password=user.password, new_password="weak"),
            metadata=user.metadata,
        )
    assert "new_password" in field_violations(weak.value)

    await stub.ChangePassword(
        auth_pb2.ChangePasswordRequest(current_password=user.password, new_password=NEW_PASSWORD),
        metadata=user.metadata,
    )
    # This session goes on; the other one has ended.
    await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=user.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=elsewhere.metadata)
    assert error_info(ended.value).reason == "SESSION_REVOKED"
    await login(channel, user.email, NEW_PASSWORD)
