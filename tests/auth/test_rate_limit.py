"""Repeated failed sign-ins from one peer are throttled for that email only."""

from __future__ import annotations

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.rpc import error_details_pb2

from tests.support.accounts import login, register
from tests.support.rpc import error_info, status_of


async def test_login_rate_limit(channel: grpc.aio.Channel) -> None:
    target = await register(channel)
    bystander = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    for _ in range(10):
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.Login(auth_pb2.LoginRequest(email=target.email, password="Wr0ng-pass"))
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await login(channel, target.email)  # even the right password waits now
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(limited.value).reason == "LOGIN_RATE_LIMITED"
    retry = [
        d for d in status_of(limited.value).details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    ]
    assert retry, "RetryInfo detail expected"
    info = error_details_pb2.RetryInfo()
    retry[0].Unpack(info)
    assert 0 < info.retry_delay.seconds <= 15 * 60

    await login(channel, bystander.email)  # other users are unaffected
