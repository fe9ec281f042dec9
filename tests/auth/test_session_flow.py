"""register → login → me → refresh → old token rejected → reuse ends the session → logout,
through gRPC and through Envoy REST. (A reuse within the grace window: test_refresh_race.)"""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.support import outlive_reuse_grace
from tests.support.accounts import PASSWORD, register, unique_email
from tests.support.rpc import error_info


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_session_lifecycle_over_grpc(
    channel: grpc.aio.Channel, auth_db: async_sessionmaker[AsyncSession]
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    email = unique_email("Flow").upper()
    registered = await stub.Register(
        auth_pb2.RegisterRequest(email=f"  {email} ", password=PASSWORD, display_name="Flo"),
        timeout=10,
    )
    assert registered.user.email == email.lower()
    assert registered.user.role == auth_pb2.ROLE_USER
    assert registered.tokens.token_type == "Bearer"

    login = await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=10)
    me = await stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=_auth(login.tokens.access_token), timeout=10
    )
    assert me.id == registered.user.id
    assert me.display_name == "Flo"

    first_refresh = login.tokens.refresh_token
    rotated = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=first_refresh), timeout=10
    )
    assert rotated.tokens.refresh_token != first_refresh
    assert rotated.tokens.session_id == login.tokens.session_id
    await stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=_auth(rotated.tokens.access_token), timeout=10
    )

    # The rotated-away token, presented after the grace window, is refused, and its reuse
    # ends the whole session.
    await outlive_reuse_grace(auth_db, first_refresh)
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=first_refresh), timeout=10
        )
    assert reused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(reused.value).reason == "REFRESH_TOKEN_REUSED"
    with pytest.raises(grpc.aio.AioRpcError) as after_theft:
        await stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=rotated.tokens.refresh_token), timeout=10
        )
    assert error_info(after_theft.value).reason == "SESSION_REVOKED"
    with pytest.raises(grpc.aio.AioRpcError) as access_after_theft:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(),
            metadata=_auth(rotated.tokens.access_token),
            timeout=10,
        )
    assert access_after_theft.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # The registration session is untouched; logging out ends it.
    await stub.Logout(
        auth_pb2.LogoutRequest(refresh_token=registered.tokens.refresh_token), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as logged_out:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(),
            metadata=_auth(registered.tokens.access_token),
            timeout=10,
        )
    assert error_info(logged_out.value).reason == "SESSION_REVOKED"

    again = await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=10)
    events = await stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(), metadata=_auth(again.tokens.access_token), timeout=10
    )
    actions = {e.action for e in events.audit_events}
    assert {
        auth_pb2.AUDIT_ACTION_REGISTER,
        auth_pb2.AUDIT_ACTION_LOGIN_SUCCEEDED,
        auth_pb2.AUDIT_ACTION_REFRESH_TOKEN_REUSED,
        auth_pb2.AUDIT_ACTION_LOGOUT,
    } <= actions
    assert all(e.subject_user_id == registered.user.id for e in events.audit_events)


async def test_session_lifecycle_through_envoy(
    http: aiohttp.ClientSession, auth_db: async_sessionmaker[AsyncSession]
) -> None:
    email = unique_email("rest")
    body = {"email": email, "password": PASSWORD, "displayName": "Rest"}
    async with http.post("/v1/auth:register", json=body) as response:
        assert response.status == 200, await response.text()
        registered = await response.json()
    assert registered["user"]["email"] == email
    assert "password" not in str(registered).lower()

    async with http.post("/v1/auth:login", json={"email": email, "password": PASSWORD}) as r:
        assert r.status == 200
        tokens = (await r.json())["tokens"]
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    async with http.get("/v1/users/me", headers=headers) as r:
        assert r.status == 200
        assert (await r.json())["id"] == registered["user"]["id"]
    async with http.patch(
        "/v1/users/me",
        params={"updateMask": "displayName"},
        json={"displayName": "Renamed"},
        headers=headers,
    ) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["displayName"] == "Renamed"

    async with http.post("/v1/auth:refresh", json={"refreshToken": tokens["refreshToken"]}) as r:
        assert r.status == 200
        rotated = (await r.json())["tokens"]
    await outlive_reuse_grace(auth_db, tokens["refreshToken"])
    async with http.post("/v1/auth:refresh", json={"refreshToken": tokens["refreshToken"]}) as r:
        assert r.status == 401
        error = await r.json()
    assert error["details"][0]["reason"] == "REFRESH_TOKEN_REUSED"
    async with http.post("/v1/auth:refresh", json={"refreshToken": rotated["refreshToken"]}) as r:
        assert r.status == 401

    async with http.get("/v1/users/me") as r:
        assert r.status == 401
        assert (await r.json())["details"][0]["reason"] == "CREDENTIALS_MISSING"

    async with http.get("/v1/users/me/sessions", headers=headers) as r:
        assert r.status == 401  # that session was ended by the reuse

    async with http.post(
        "/v1/auth:login",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": "forge-tests/1.0"},
    ) as r:
        fresh = (await r.json())["tokens"]
    async with http.get(
        "/v1/users/me/sessions", headers={"Authorization": f"Bearer {fresh['accessToken']}"}
    ) as r:
        sessions = (await r.json())["sessions"]
    current = [s for s in sessions if s.get("current")]
    assert len(current) == 1
    assert current[0]["userAgent"].startswith("forge-tests/1.0")
    assert current[0]["peerAddress"]
    async with http.post("/v1/auth:logout", json={"refreshToken": fresh["refreshToken"]}) as r:
        assert r.status == 200


async def test_revoke_another_session(channel: grpc.aio.Channel) -> None:
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    other = await stub.Login(
        auth_pb2.LoginRequest(email=account.email, password=PASSWORD), timeout=10
    )
    listed = await stub.ListSessions(auth_pb2.ListSessionsRequest(), metadata=account.metadata)
    assert {s.id for s in listed.sessions} == {account.session_id, other.tokens.session_id}
    await stub.RevokeSession(
        auth_pb2.RevokeSessionRequest(session_id=other.tokens.session_id),
        metadata=account.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=_auth(other.tokens.access_token)
        )
    assert error_info(revoked.value).reason == "SESSION_REVOKED"
    # Someone else's session id is simply not found.
    stranger = await register(channel)
    with pytest.raises(grpc.aio.AioRpcError) as not_found:
        await stub.RevokeSession(
            auth_pb2.RevokeSessionRequest(session_id=account.session_id),
            metadata=stranger.metadata,
        )
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND


async def test_logout_with_only_the_access_token_ends_its_session(
    channel: grpc.aio.Channel,
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    email = unique_email()
    registered = await stub.Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="Leaver"),
        timeout=10,
    )
    other = await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=10)
    await stub.Logout(
        auth_pb2.LogoutRequest(), metadata=_auth(registered.tokens.access_token), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as logged_out:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(),
            metadata=_auth(registered.tokens.access_token),
            timeout=10,
        )
    assert error_info(logged_out.value).reason == "SESSION_REVOKED"
    # Only that session ended: the other one still works.
    await stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=_auth(other.tokens.access_token), timeout=10
    )
    # Now that the token is revoked, it identifies nobody: the refresh token is needed.
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.Logout(
            auth_pb2.LogoutRequest(), metadata=_auth(registered.tokens.access_token), timeout=10
        )
    assert anonymous.value.code() == grpc.StatusCode.INVALID_ARGUMENT
