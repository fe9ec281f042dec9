"""Repeated failed sign-ins are throttled per account and client address, and per account;
the count is taken before the password is checked, and the client address comes from
x-forwarded-for only when the peer is a trusted proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.rpc import error_details_pb2

from server.app import ForgeServer
from tests.conftest import make_settings
from tests.support.accounts import PASSWORD, login, register
from tests.support.rpc import error_info, status_of
from tests.support.testing_service import TEST_MODULES

WRONG_PASSWORD = "Wr0ng-pass"


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


async def test_parallel_guesses_run_at_most_the_allowed_password_checks(
    channel: grpc.aio.Channel,
) -> None:
    target = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    async def guess() -> grpc.StatusCode:
        try:
            await stub.Login(auth_pb2.LoginRequest(email=target.email, password="Wr0ng-pass"))
        except grpc.aio.AioRpcError as refused:
            return refused.code()
        raise AssertionError("a wrong password signed in")

    outcomes = await asyncio.gather(*(guess() for _ in range(60)))
    # Only the checked passwords answer UNAUTHENTICATED; the rest were refused unchecked.
    assert outcomes.count(grpc.StatusCode.UNAUTHENTICATED) == 10
    assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 50


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
    channel: grpc.aio.Channel,
) -> None:
    target = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    for _ in range(10):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Login(auth_pb2.LoginRequest(email=target.email, password="Wr0ng-pass"))
    # This server trusts no proxy: a made-up x-forwarded-for does not make a new client.
    with pytest.raises(grpc.aio.AioRpcError) as still_limited:
        await stub.Login(
            auth_pb2.LoginRequest(email=target.email, password="Wr0ng-pass"),
            metadata=(("x-forwarded-for", "203.0.113.9"),),
        )
    assert error_info(still_limited.value).reason == "LOGIN_RATE_LIMITED"


@pytest.fixture
async def behind_proxy(database_url: str, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    """A server that trusts its loopback peer as the gateway, with small limits."""
    settings = make_settings(
        database_url,
        tmp_path,
        trusted_proxies=["127.0.0.1"],
        login_max_failures=2,
        login_max_failures_per_account=3,
    )
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield channel
    finally:
        await app.stop(grace=0)


async def test_limits_per_client_address_and_per_account(
    behind_proxy: grpc.aio.Channel,
) -> None:
    target = await register(behind_proxy)
    stub = auth_pb2_grpc.AuthServiceStub(behind_proxy)

    async def attempt(address: str, password: str = WRONG_PASSWORD) -> str:
        try:
            await stub.Login(
                auth_pb2.LoginRequest(email=target.email, password=password),
                metadata=(("x-forwarded-for", f"198.51.100.7, {address}"),),
            )
        except grpc.aio.AioRpcError as refused:
            return str(error_info(refused).reason)
        return "OK"

    assert [await attempt("203.0.113.1") for _ in range(3)] == [
        "INVALID_CREDENTIALS",
        "INVALID_CREDENTIALS",
        "LOGIN_RATE_LIMITED",
    ]
    # Another client (as the trusted gateway says) has its own count...
    assert await attempt("203.0.113.2") == "INVALID_CREDENTIALS"
    # ...until the account as a whole has had its fill.
    assert await attempt("203.0.113.3", PASSWORD) == "LOGIN_RATE_LIMITED"
