"""Bad sign-ups, sign-in without account enumeration, forged tokens, API keys."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.testing.v1 import testing_pb2, testing_pb2_grpc

from server.app import ForgeServer
from tests.support.accounts import PASSWORD, Account, register, unique_email
from tests.support.rpc import error_info, field_violations


async def _register_error(
    channel: grpc.aio.Channel, email: str, password: str
) -> grpc.aio.AioRpcError:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Register(auth_pb2.RegisterRequest(email=email, password=password), timeout=10)
    return failure.value


async def test_duplicate_email_is_already_exists(channel: grpc.aio.Channel, user: Account) -> None:
    error = await _register_error(channel, user.email.upper(), PASSWORD)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(error).reason == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Sh0rt", "at least 8 characters"),
        ("alllowercase1", "upper-case"),
        ("ALLUPPERCASE1", "lower-case"),
        ("NoDigitsHere", "digit"),
        ("Aa1" + "x" * 70, "at most 72 bytes"),
    ],
)
async def test_weak_password_names_the_rule(
    channel: grpc.aio.Channel, password: str, problem: str
) -> None:
    error = await _register_error(channel, unique_email(), password)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in field_violations(error)["password"]


async def test_malformed_email_and_weak_password_reported_together(
    channel: grpc.aio.Channel,
) -> None:
    error = await _register_error(channel, "not-an-email", "weak")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"email", "password"}


async def test_unknown_email_and_wrong_password_look_the_same(
    channel: grpc.aio.Channel, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    answers = []
    for email, password in [(user.email, "Wrong-Passw0rd"), (unique_email("ghost"), PASSWORD)]:
        started = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Login(auth_pb2.LoginRequest(email=email, password=password), timeout=10)
        answers.append(
            (failure.value.code(), failure.value.details(), error_info(failure.value).reason)
        )
        assert time.perf_counter() - started < 5
    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.UNAUTHENTICATED


def _forged(secret: str, **claims: object) -> str:
    now = int(time.time())
    payload = {
        "sub": "00000000-0000-7000-8000-000000000000",
        "iat": now,
        "exp": now + 600,
        "iss": "forge",
        "aud": "forge-api",
        "jti": "x",
        "roles": ["admin"],
    }
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


async def _me_error(channel: grpc.aio.Channel, token: str) -> grpc.aio.AioRpcError:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return failure.value


async def test_expired_token(channel: grpc.aio.Channel, forge: ForgeServer, user: Account) -> None:
    assert forge.settings.jwt_secret is not None
    secret = forge.settings.jwt_secret.get_secret_value()
    now = int(time.time())
    token = _forged(secret, sub=user.user_id, sid=user.session_id, iat=now - 900, exp=now - 60)
    assert error_info(await _me_error(channel, token)).reason == "TOKEN_EXPIRED"


async def test_token_signed_with_another_secret(channel: grpc.aio.Channel, user: Account) -> None:
    token = _forged("another-secret-" + "x" * 32, sub=user.user_id, sid=user.session_id)
    assert error_info(await _me_error(channel, token)).reason == "TOKEN_INVALID"


async def test_token_with_alg_none(channel: grpc.aio.Channel, user: Account) -> None:
    now = int(time.time())
    claims = {
        "sub": user.user_id,
        "sid": user.session_id,
        "iat": now,
        "exp": now + 600,
        "iss": "forge",
        "aud": "forge-api",
        "jti": "x",
        "roles": ["admin"],
    }
    token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    assert error_info(await _me_error(channel, token)).reason == "TOKEN_INVALID"


async def test_garbage_and_malformed_headers(channel: grpc.aio.Channel) -> None:
    assert error_info(await _me_error(channel, "not.a.jwt")).reason == "TOKEN_INVALID"
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", "Basic dXNlcg=="),)
        )
    assert error_info(failure.value).reason == "TOKEN_INVALID"


async def test_api_key_lifecycle(channel: grpc.aio.Channel, user: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci"), metadata=user.metadata, timeout=10
    )
    secret = created.secret
    assert secret.startswith("fk_live_")
    assert len(secret) == len("fk_live_") + 32
    assert secret.startswith(created.api_key.prefix)
    assert len(created.api_key.prefix) < len(secret) // 2

    for metadata in ((("x-api-key", secret),), (("authorization", f"Bearer {secret}"),)):
        me = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata)
        assert me.id == user.user_id

    listed = await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=user.metadata)
    [key] = listed.api_keys
    assert key.prefix == created.api_key.prefix
    assert key.HasField("last_used_time")
    assert secret not in str(listed)

    await stub.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=user.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=(("x-api-key", secret),)
        )
    assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(revoked.value).reason == "KEY_REVOKED"
    assert not (
        await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=user.metadata)
    ).api_keys
    shown = await stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(show_revoked=True), metadata=user.metadata
    )
    assert shown.api_keys[0].HasField("revoke_time")


async def test_unknown_api_key_and_other_users_key(
    channel: grpc.aio.Channel, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=(("x-api-key", "fk_live_" + "0" * 32),)
        )
    assert error_info(unknown.value).reason == "KEY_INVALID"
    created = await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(), metadata=user.metadata)
    other = await register(channel)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await stub.RevokeApiKey(
            auth_pb2.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=other.metadata
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND


async def test_public_rpcs_need_no_credentials_and_others_do(channel: grpc.aio.Channel) -> None:
    testing = testing_pb2_grpc.TestingServiceStub(channel)
    assert (await testing.Echo(testing_pb2.EchoRequest(message="hi"))).message == "hi"
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.ListSessions(auth_pb2.ListSessionsRequest())
    assert error_info(anonymous.value).reason == "CREDENTIALS_MISSING"
