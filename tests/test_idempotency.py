"""Request ids (AIP-155): a retried Create gets the first result instead of a duplicate.

Covers the unary Creates through gRPC (the `request_id` field) and REST (the
`Idempotency-Key` header through Envoy); Chat and RunCode replays are tested with their
services (tests/agents/test_chat_retries.py, tests/sandbox/test_run_code_retries.py)."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2 as pb

from tests.projects.support import stub
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations, status_of


def _project(name: str) -> pb.CreateProjectRequest:
    return pb.CreateProjectRequest(project=pb.Project(name=name), request_id=str(uuid.uuid4()))


async def _project_names(channel: grpc.aio.Channel, user: Account) -> list[str]:
    listed = await stub(channel).ListProjects(
        pb.ListProjectsRequest(page_size=100), metadata=user.metadata
    )
    return [project.name for project in listed.projects]


async def test_a_retried_create_returns_the_first_result_and_creates_nothing_new(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    request = _project("retried")
    first = await projects.CreateProject(request, metadata=user.metadata)
    again = await projects.CreateProject(request, metadata=user.metadata)
    assert again == first
    assert await _project_names(channel, user) == ["retried"]

    # A new id is a new request.
    other = await projects.CreateProject(_project("retried"), metadata=user.metadata)
    assert other.id != first.id
    assert sorted(await _project_names(channel, user)) == ["retried", "retried"]


async def test_concurrent_retries_create_one_resource(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    request = _project("raced")
    results = await asyncio.gather(
        *(projects.CreateProject(request, metadata=user.metadata) for _ in range(8))
    )
    assert len({project.id for project in results}) == 1
    assert await _project_names(channel, user) == ["raced"]


async def test_the_same_id_with_a_different_request_is_refused(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    request = _project("first")
    await projects.CreateProject(request, metadata=user.metadata)
    changed = pb.CreateProjectRequest(
        project=pb.Project(name="second"), request_id=request.request_id
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await projects.CreateProject(changed, metadata=user.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == "REQUEST_ID_REUSED"
    assert "request_id" in field_violations(refused.value)
    assert await _project_names(channel, user) == ["first"]


async def test_ids_are_per_user_and_a_failed_call_does_not_use_its_id(
    channel: grpc.aio.Channel, user: Account
) -> None:
    projects = stub(channel)
    other = await register(channel)
    request = _project("mine")
    mine = await projects.CreateProject(request, metadata=user.metadata)
    theirs = await projects.CreateProject(request, metadata=other.metadata)
    assert theirs.id != mine.id
    assert theirs.creator_user_id == other.user_id

    invalid = pb.CreateProjectRequest(project=pb.Project(name=""), request_id="retry-me")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await projects.CreateProject(invalid, metadata=user.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fixed = pb.CreateProjectRequest(project=pb.Project(name="fixed"), request_id="retry-me")
    # The failure gave the id back: the corrected request runs, and is then remembered.
    created = await projects.CreateProject(fixed, metadata=user.metadata)
    assert await projects.CreateProject(fixed, metadata=user.metadata) == created
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await projects.CreateProject(invalid, metadata=user.metadata)
    assert error_info(reused.value).reason == "REQUEST_ID_REUSED"
    assert sorted(await _project_names(channel, user)) == ["fixed", "mine"]


@pytest.mark.parametrize(
    "request_id", ["x" * 129, "has space", "tab\tinside", "é"], ids=["long", "space", "tab", "utf8"]
)
async def test_a_malformed_request_id_is_invalid(
    channel: grpc.aio.Channel, user: Account, request_id: str
) -> None:
    request = pb.CreateProjectRequest(project=pb.Project(name="p"), request_id=request_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(channel).CreateProject(request, metadata=user.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(refused.value)


async def test_a_new_api_key_is_replayed_with_its_secret_which_is_stored_encrypted(
    channel: grpc.aio.Channel, user: Account, database_url: str
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    request = auth_pb2.CreateApiKeyRequest(name="ci", request_id=str(uuid.uuid4()))
    first = await auth.CreateApiKey(request, metadata=user.metadata)
    again = await auth.CreateApiKey(request, metadata=user.metadata)
    assert again == first
    assert first.secret.startswith("fk_live_")
    listed = await auth.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=user.metadata)
    assert [key.name for key in listed.api_keys] == ["ci"]

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        stored = await connection.fetchval(
            "SELECT response FROM idempotency_records WHERE request_id = $1",
            request.request_id,
        )
    finally:
        await connection.close()
    assert stored
    assert first.secret.encode() not in stored
    assert first.secret.encode().hex().encode() not in stored


async def test_the_idempotency_key_header_through_envoy(
    http: aiohttp.ClientSession, user: Account, channel: grpc.aio.Channel
) -> None:
    headers = {"Authorization": f"Bearer {user.access_token}", "Idempotency-Key": "k-1"}
    body = {"name": "over rest"}
    async with http.post("/v1/projects", json=body, headers=headers) as first:
        assert first.status == 200, await first.text()
        created = await first.json()
    async with http.post("/v1/projects", json=body, headers=headers) as retried:
        assert retried.status == 200
        assert await retried.json() == created
    async with http.post("/v1/projects", json={"name": "other"}, headers=headers) as changed:
        assert changed.status == 400
    # The header and the field are the same id.
    same = pb.CreateProjectRequest(project=pb.Project(name="over rest"), request_id="k-1")
    replayed = await stub(channel).CreateProject(same, metadata=user.metadata)
    assert replayed.id == created["id"]
    assert await _project_names(channel, user) == ["over rest"]


async def test_header_and_field_must_agree(channel: grpc.aio.Channel, user: Account) -> None:
    request = _project("both")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(channel).CreateProject(
            request, metadata=(*user.metadata, ("idempotency-key", "something-else"))
        )
    assert status_of(refused.value).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
