"""Requests found by the fuzzer (tests/fuzz) that used to end with INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import timestamp_pb2

from tests.support.accounts import Account
from tests.support.rpc import error_info, field_violations


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(1_796_000_000, -1), (1_796_000_000, 1_000_000_000), (253_402_300_800, 0), (2**63 - 1, 0)],
)
async def test_an_api_key_expiry_outside_the_timestamp_range_is_invalid(
    channel: grpc.aio.Channel, user: Account, seconds: int, nanos: int
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(
                name="k", expire_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
            ),
            metadata=user.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expire_time" in field_violations(refused.value)


async def test_an_unknown_audit_action_is_invalid(
    channel: grpc.aio.Channel, admin: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListAuditEvents(
            auth_pb2.ListAuditEventsRequest(action=65537),  # type: ignore[arg-type]
            metadata=admin.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == "INVALID_ARGUMENT"
    assert "action" in field_violations(refused.value)


async def test_a_display_name_with_nul_is_invalid(channel: grpc.aio.Channel, user: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UpdateCurrentUser(
            auth_pb2.UpdateCurrentUserRequest(user=auth_pb2.User(display_name="a\x00b")),
            metadata=user.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user.display_name" in field_violations(refused.value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Register(
            auth_pb2.RegisterRequest(
                email="nul-name@example.com", password="Corr3ct-Horse", display_name="\x00"
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "display_name" in field_violations(refused.value)


async def test_signing_in_with_nul_in_the_email_is_refused_like_any_unknown_email(
    channel: grpc.aio.Channel,
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Login(auth_pb2.LoginRequest(email="\x00", password="Corr3ct-Horse"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_api_key_name_with_nul_is_invalid(
    channel: grpc.aio.Channel, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="\x00"), metadata=user.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(refused.value)


async def test_a_user_query_with_nul_is_invalid(channel: grpc.aio.Channel, admin: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListUsers(auth_pb2.ListUsersRequest(query="a\x00"), metadata=admin.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query" in field_violations(refused.value)
