"""Two refreshes with the same token at once (two tabs, a retry after a lost response) both
get the same new pair and the session lives on; a reuse after the grace window, or of a token
two rotations back, still ends the session; other sessions are not touched."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeAlias

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth.tokens import REFRESH_TOKEN_PREFIX, RefreshRotation, digest, new_refresh_token
from server.db.models import RefreshToken
from tests.auth.support import outlive_reuse_grace
from tests.support.accounts import Account, login, register
from tests.support.rpc import error_info
from tests.support.waiting import eventually

if TYPE_CHECKING:
    from forge.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub

# The generated stub class, as typed for an aio channel.
Stub: TypeAlias = "AuthServiceAsyncStub"


async def _refresh(stub: Stub, token: str) -> auth_pb2.RefreshTokenResponse:
    return await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token), timeout=20)


async def _refused(stub: Stub, token: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _refresh(stub, token)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return str(error_info(refused.value).reason)


async def _usable(channel: grpc.aio.Channel, response: auth_pb2.RefreshTokenResponse) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    await stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(),
        metadata=(("authorization", f"Bearer {response.tokens.access_token}"),),
        timeout=10,
    )


async def _tokens_of_session(sessions: async_sessionmaker[AsyncSession], account: Account) -> int:
    async with sessions() as db:
        count = await db.scalar(
            select(func.count()).where(RefreshToken.session_id == account.session_id)
        )
    return int(count or 0)


def test_the_successor_is_derived_from_the_token_and_the_secret() -> None:
    rotation = RefreshRotation(b"s" * 32)
    token = new_refresh_token()
    successor = rotation.successor(token)
    assert successor == rotation.successor(token)
    assert successor.startswith(REFRESH_TOKEN_PREFIX)
    assert len(successor) == len(token)
    assert successor not in {token, rotation.successor(new_refresh_token())}
    assert RefreshRotation(b"t" * 32).successor(token) != successor


async def test_concurrent_refreshes_wait_for_each_other_and_get_the_same_pair(
    channel: grpc.aio.Channel, auth_db: async_sessionmaker[AsyncSession]
) -> None:
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    # Hold the token's row so that both calls are certainly inside their transactions,
    # waiting on it, before either rotates: the second must then see the first's rotation.
    async with auth_db() as db, db.begin():
        await db.execute(
            select(RefreshToken)
            .where(RefreshToken.token_hash == digest(account.refresh_token))
            .with_for_update()
        )
        calls = [asyncio.ensure_future(_refresh(stub, account.refresh_token)) for _ in range(2)]

        async def both_waiting() -> bool:
            async with auth_db() as probe:
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database() AND query LIKE '%refresh_tokens%'"
                    )
                )
            return int(waiting or 0) >= 2

        await eventually(both_waiting, timeout=15)
    first, second = await asyncio.gather(*calls)
    assert first.tokens.refresh_token == second.tokens.refresh_token != account.refresh_token
    assert first.tokens.session_id == second.tokens.session_id == account.session_id
    assert await _tokens_of_session(auth_db, account) == 2  # one successor, not two
    await _usable(channel, first)
    await _usable(channel, second)
    # The session goes on: the shared successor rotates like any token.
    third = await _refresh(stub, first.tokens.refresh_token)
    assert third.tokens.refresh_token != first.tokens.refresh_token
    await _usable(channel, third)


async def test_a_burst_of_refreshes_with_one_token_all_succeed(channel: grpc.aio.Channel) -> None:
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    responses = await asyncio.gather(*(_refresh(stub, account.refresh_token) for _ in range(4)))
    assert len({r.tokens.refresh_token for r in responses}) == 1
    for response in responses:
        await _usable(channel, response)
    again = await _refresh(stub, responses[0].tokens.refresh_token)
    await _usable(channel, again)


async def test_a_replay_within_the_window_gets_the_same_refresh_token(
    channel: grpc.aio.Channel,
) -> None:
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    lost = await _refresh(stub, account.refresh_token)  # as if the response never arrived
    retried = await _refresh(stub, account.refresh_token)
    assert retried.tokens.refresh_token == lost.tokens.refresh_token
    assert retried.tokens.session_id == account.session_id
    await _usable(channel, retried)
    await _usable(channel, lost)


async def test_a_replay_after_the_window_ends_the_session(
    channel: grpc.aio.Channel, auth_db: async_sessionmaker[AsyncSession]
) -> None:
    account = await register(channel)
    other = await login(channel, account.email)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    rotated = await _refresh(stub, account.refresh_token)
    await outlive_reuse_grace(auth_db, account.refresh_token)
    assert await _refused(stub, account.refresh_token) == "REFRESH_TOKEN_REUSED"
    assert await _refused(stub, rotated.tokens.refresh_token) == "SESSION_REVOKED"
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await _usable(channel, rotated)
    assert error_info(ended.value).reason == "SESSION_REVOKED"
    # The same user's other session is untouched.
    elsewhere = await _refresh(stub, other.refresh_token)
    await _usable(channel, elsewhere)


async def test_a_replay_of_a_token_two_rotations_back_ends_the_session(
    channel: grpc.aio.Channel,
) -> None:
    account = await register(channel)
    other = await login(channel, account.email)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    second = await _refresh(stub, account.refresh_token)
    third = await _refresh(stub, second.tokens.refresh_token)
    # Still within the window, but its successor has been used: this is a copy, not a race.
    assert await _refused(stub, account.refresh_token) == "REFRESH_TOKEN_REUSED"
    assert await _refused(stub, third.tokens.refresh_token) == "SESSION_REVOKED"
    elsewhere = await _refresh(stub, other.refresh_token)
    await _usable(channel, elsewhere)
    # A different session's token replayed within its own window is still a race there.
    replayed = await _refresh(stub, other.refresh_token)
    assert replayed.tokens.refresh_token == elsewhere.tokens.refresh_token
