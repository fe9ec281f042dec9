"""API key scopes: a key does what its scopes allow and nothing else; no key manages the
account (password, keys, sessions), whatever its scopes."""

from __future__ import annotations

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc

from tests.support.accounts import Account
from tests.support.rpc import error_info, field_violations

Metadata = tuple[tuple[str, str], ...]


async def _key(channel: grpc.aio.Channel, account: Account, *scopes: str) -> Metadata:
    created = await auth_pb2_grpc.AuthServiceStub(channel).CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="scoped", scopes=list(scopes)),
        metadata=account.metadata,
    )
    return (("x-api-key", created.secret),)


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value


async def test_a_key_has_every_scope_but_admin_by_default(
    channel: grpc.aio.Channel, user: Account
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    created = await auth.CreateApiKey(auth_pb2.CreateApiKeyRequest(), metadata=user.metadata)
    assert list(created.api_key.scopes) == ["read", "write", "sandbox:exec"]
    key = (("x-api-key", created.secret),)
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    project = projects_pb2.Project(name="by key")
    await projects.CreateProject(projects_pb2.CreateProjectRequest(project=project), metadata=key)
    listed = await projects.ListProjects(projects_pb2.ListProjectsRequest(), metadata=key)
    assert [p.name for p in listed.projects] == ["by key"]


async def test_a_read_key_reads_and_cannot_write(channel: grpc.aio.Channel, user: Account) -> None:
    key = await _key(channel, user, "read")
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    await projects.ListProjects(projects_pb2.ListProjectsRequest(), metadata=key)
    refused = await _refused(
        projects.CreateProject(
            projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="no")),
            metadata=key,
        )
    )
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(refused).reason == "API_KEY_SCOPE_MISSING"
    assert error_info(refused).metadata["missing_scopes"] == "write"


@pytest.mark.parametrize("rpc", ["ChangePassword", "CreateApiKey", "ListSessions"])
async def test_no_key_manages_the_account(
    channel: grpc.aio.Channel, user: Account, rpc: str
) -> None:
    key = await _key(channel, user, "read", "write", "sandbox:exec")
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    requests = {
        "ChangePassword": auth_pb2.ChangePasswordRequest(
            current_password=user.password, new_password="An0ther-Secret"
        ),
        "CreateApiKey": auth_pb2.CreateApiKeyRequest(name="escalate"),
        "ListSessions": auth_pb2.ListSessionsRequest(),
    }
    refused = await _refused(getattr(auth, rpc)(requests[rpc], metadata=key))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(refused).reason == "API_KEY_NOT_ALLOWED"


async def test_scopes_are_checked_when_a_key_is_made(
    channel: grpc.aio.Channel, user: Account, admin: Account
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    unknown = await _refused(
        auth.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(scopes=["read", "root"]), metadata=user.metadata
        )
    )
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scopes" in field_violations(unknown)
    not_admin = await _refused(
        auth.CreateApiKey(auth_pb2.CreateApiKeyRequest(scopes=["admin"]), metadata=user.metadata)
    )
    assert not_admin.code() == grpc.StatusCode.PERMISSION_DENIED

    # An admin's key reaches the admin RPCs only with the admin scope.
    plain = await _key(channel, admin)
    refused = await _refused(auth.ListUsers(auth_pb2.ListUsersRequest(), metadata=plain))
    assert error_info(refused).reason == "API_KEY_SCOPE_MISSING"
    admin_key = await _key(channel, admin, "read", "admin")
    listed = await auth.ListUsers(auth_pb2.ListUsersRequest(page_size=1), metadata=admin_key)
    assert listed.users
