"""Issue 17: each server process keeps its own cache of verified access tokens, yet a session
revoked, a user disabled or an API key revoked through one process is refused by every other
process on its very next call (each call reads the caller's state from the database; only
what a token says is cached). Two `python -m server` processes on one database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2

from server.db.embedded import EmbeddedPostgres
from tests.support.accounts import Account, login, register
from tests.support.process import ServerProcess
from tests.support.rpc import error_info

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Pair:
    """Two server processes sharing one database and JWT secret, and the first account
    (the admin)."""

    a: grpc.aio.Channel
    b: grpc.aio.Channel
    admin: Account


@pytest.fixture(scope="module")
async def pair(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    url = await postgres.ensure_database("forge_revocation_two_processes")
    data_dir: Path = tmp_path_factory.mktemp("revocation")
    env = {
        "FORGE_DATABASE_URL": url,
        "FORGE_DATA_DIR": str(data_dir),
        "FORGE_JWT_SECRET": secrets.token_hex(32),
        "FORGE_BCRYPT_ROUNDS": "4",
        "FORGE_LOG_FORMAT": "text",
        "FORGE_LOG_LEVEL": "WARNING",
    }
    first, second = ServerProcess(env), ServerProcess(env)
    try:
        port_a = await first.start()
        port_b = await second.start()
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port_a}") as a,
            grpc.aio.insecure_channel(f"127.0.0.1:{port_b}") as b,
        ):
            admin = await register(a, display_name="Revocation Admin")  # the first: admin
            yield Pair(a, b, admin)
    finally:
        await first.kill()
        await second.kill()


def auth(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def list_projects(channel: grpc.aio.Channel, metadata: Metadata) -> None:
    await projects_pb2_grpc.ProjectServiceStub(channel).ListProjects(
        projects_pb2.ListProjectsRequest(), metadata=metadata, timeout=10
    )


async def refused(channel: grpc.aio.Channel, metadata: Metadata) -> str:
    """The ErrorInfo reason of the UNAUTHENTICATED answer to a call with `metadata`."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_projects(channel, metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    return str(error_info(caught.value).reason)


async def used_on_both(pair: Pair, metadata: Metadata) -> None:
    """A call through each process: both now hold the access token as verified."""
    await list_projects(pair.a, metadata)
    await list_projects(pair.b, metadata)


def api_key(secret: str) -> Metadata:
    return (("x-api-key", secret),)


async def test_a_session_ended_on_one_process_is_refused_by_the_other_at_once(
    pair: Pair,
) -> None:
    user = await register(pair.a)
    await used_on_both(pair, user.metadata)
    await auth(pair.a).RevokeSession(
        auth_pb2.RevokeSessionRequest(session_id=user.session_id),
        metadata=user.metadata,
        timeout=10,
    )
    assert await refused(pair.b, user.metadata) == "SESSION_REVOKED"
    assert await refused(pair.a, user.metadata) == "SESSION_REVOKED"

    # Signing out through B ends the session on A.
    again = await login(pair.b, user.email)
    await used_on_both(pair, again.metadata)
    await auth(pair.b).Logout(auth_pb2.LogoutRequest(refresh_token=again.refresh_token), timeout=10)
    assert await refused(pair.a, again.metadata) == "SESSION_REVOKED"


async def test_a_user_disabled_on_one_process_is_refused_by_the_other_at_once(
    pair: Pair,
) -> None:
    user = await register(pair.a)
    key = await auth(pair.a).CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci"), metadata=user.metadata, timeout=10
    )
    await used_on_both(pair, user.metadata)
    await used_on_both(pair, api_key(key.secret))
    await auth(pair.b).UpdateUser(
        auth_pb2.UpdateUserRequest(
            user=auth_pb2.User(id=user.user_id, disabled=True),
            update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
        ),
        metadata=pair.admin.metadata,
        timeout=10,
    )
    assert await refused(pair.a, user.metadata) == "USER_DISABLED"
    assert await refused(pair.a, api_key(key.secret)) == "USER_DISABLED"
    assert await refused(pair.b, user.metadata) == "USER_DISABLED"


async def test_an_api_key_revoked_on_one_process_is_refused_by_the_other_at_once(
    pair: Pair,
) -> None:
    user = await register(pair.a)
    key = await auth(pair.a).CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="deploy"), metadata=user.metadata, timeout=10
    )
    await used_on_both(pair, api_key(key.secret))
    await auth(pair.a).RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(api_key_id=key.api_key.id),
        metadata=user.metadata,
        timeout=10,
    )
    assert await refused(pair.b, api_key(key.secret)) == "KEY_REVOKED"
    await used_on_both(pair, user.metadata)  # the user's session is untouched
