"""Fair shares: each user's limits are the server defaults until an admin overrides them;
a limit reached is RESOURCE_EXHAUSTED with a QuotaFailure naming it, and an override lifts
it at once. Registrations are limited per client address per hour.

A server of its own, on a fresh database (so registration counts and the first account,
which becomes admin, are this module's), with small limits."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator

import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.conftest import make_settings
from tests.support.accounts import PASSWORD, Account, unique_email
from tests.support.rpc import error_info, status_of
from tests.support.testing_service import TEST_MODULES

DEADLINE = 30.0
REGISTRATIONS_PER_HOUR = 3
MAX_ARTIFACT_BYTES = 1000
_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other test registers from (IPv6 documentation range)."""
    return f"2001:db8:{secrets.token_hex(2)}::{next(_addresses):x}"


@pytest.fixture(scope="module")
async def server(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    settings = make_settings(
        await postgres.ensure_database("forge_limits"),
        tmp_path_factory.mktemp("limits"),
        # Tests name their client address in x-forwarded-for, as a gateway would.
        trusted_proxies=["127.0.0.1"],
        registrations_per_address_per_hour=REGISTRATIONS_PER_HOUR,
        user_max_concurrent_streams=1,
        user_max_artifact_bytes=MAX_ARTIFACT_BYTES,
        # Long enough answers to hold a Chat open while the test looks.
        echo_token_delay_ms=200.0,
    )
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="module")
async def channel(server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


def auth(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def register_from(channel: grpc.aio.Channel, address: str) -> Account:
    response = await auth(channel).Register(
        auth_pb2.RegisterRequest(email=unique_email("limits"), password=PASSWORD),
        metadata=(("x-forwarded-for", address),),
        timeout=DEADLINE,
    )
    tokens = response.tokens
    return Account(
        response.user.id,
        response.user.email,
        PASSWORD,
        tokens.access_token,
        tokens.refresh_token,
        tokens.session_id,
    )


@pytest.fixture(scope="module")
async def admin(channel: grpc.aio.Channel) -> Account:
    """The first account of the fresh database: admin."""
    account = await register_from(channel, new_address())
    me = await auth(channel).GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=account.metadata, timeout=DEADLINE
    )
    assert me.role == auth_pb2.ROLE_ADMIN
    return account


@pytest.fixture
async def user(channel: grpc.aio.Channel, admin: Account) -> Account:
    return await register_from(channel, new_address())


def quota_failure(error: grpc.aio.AioRpcError) -> error_details_pb2.QuotaFailure:
    for detail in status_of(error).details:
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failure = error_details_pb2.QuotaFailure()
            detail.Unpack(failure)
            return failure
    raise AssertionError("no QuotaFailure in the status details")


def assert_quota(error: grpc.aio.AioRpcError, limit: str, reason: str) -> None:
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info = error_info(error)
    assert info.reason == reason
    assert info.metadata["quota"] == limit
    [violation] = quota_failure(error).violations
    assert violation.description.startswith(f"{limit}: ")


async def set_limits(
    channel: grpc.aio.Channel, admin: Account, user: Account, **values: int
) -> auth_pb2.UserLimits:
    return await auth(channel).UpdateUserLimits(
        auth_pb2.UpdateUserLimitsRequest(
            limits=auth_pb2.UserLimits(user_id=user.user_id, **values),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=list(values)),
        ),
        metadata=admin.metadata,
        timeout=DEADLINE,
    )


async def new_project(channel: grpc.aio.Channel, owner: Account) -> str:
    project = await projects_pb2_grpc.ProjectServiceStub(channel).CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="limits")),
        metadata=owner.metadata,
        timeout=DEADLINE,
    )
    return project.id


# --- reading and overriding limits -------------------------------------------------------


async def test_limits_are_the_defaults_until_an_admin_overrides_them(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    mine = await auth(channel).GetUserLimits(
        auth_pb2.GetUserLimitsRequest(user_id="me"), metadata=user.metadata, timeout=DEADLINE
    )
    assert mine.user_id == user.user_id
    assert mine.max_concurrent_streams == 1
    assert mine.max_artifact_bytes == MAX_ARTIFACT_BYTES
    assert mine.max_sandboxes == 20
    assert list(mine.overridden_fields) == []

    changed = await set_limits(channel, admin, user, max_sandboxes=50, max_active_runs=9)
    assert (changed.max_sandboxes, changed.max_active_runs) == (50, 9)
    assert sorted(changed.overridden_fields) == ["max_active_runs", "max_sandboxes"]
    seen = await auth(channel).GetUserLimits(
        auth_pb2.GetUserLimitsRequest(user_id=user.user_id),
        metadata=admin.metadata,
        timeout=DEADLINE,
    )
    assert seen == changed

    # 0 in the mask: back to the default; fields outside the mask stay as they are.
    reset = await set_limits(channel, admin, user, max_sandboxes=0)
    assert reset.max_sandboxes == 20
    assert reset.max_active_runs == 9
    assert list(reset.overridden_fields) == ["max_active_runs"]

    # AIP-134: an empty mask updates the populated fields.
    implicit = await auth(channel).UpdateUserLimits(
        auth_pb2.UpdateUserLimitsRequest(
            limits=auth_pb2.UserLimits(user_id=user.user_id, max_concurrent_execs=3)
        ),
        metadata=admin.metadata,
        timeout=DEADLINE,
    )
    assert implicit.max_concurrent_execs == 3
    assert implicit.max_active_runs == 9

    events = await auth(channel).ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(
            user_id=user.user_id, action=auth_pb2.AUDIT_ACTION_LIMITS_CHANGED
        ),
        metadata=admin.metadata,
        timeout=DEADLINE,
    )
    assert len(events.audit_events) == 3
    assert events.audit_events[-1].actor_user_id == admin.user_id
    assert events.audit_events[-1].metadata == {"max_active_runs": "9", "max_sandboxes": "50"}


async def test_only_admins_change_limits_and_read_other_users(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    other = await register_from(channel, new_address())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await set_limits(channel, user, user, max_sandboxes=500)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await auth(channel).GetUserLimits(
            auth_pb2.GetUserLimitsRequest(user_id=other.user_id),
            metadata=user.metadata,
            timeout=DEADLINE,
        )
    assert stranger.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await set_limits(channel, admin, user, max_sandboxes=-1)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await auth(channel).UpdateUserLimits(
            auth_pb2.UpdateUserLimitsRequest(
                limits=auth_pb2.UserLimits(user_id=user.user_id, max_sandboxes=5),
                update_mask=field_mask_pb2.FieldMask(paths=["overridden_fields"]),
            ),
            metadata=admin.metadata,
            timeout=DEADLINE,
        )
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await auth(channel).GetUserLimits(
            auth_pb2.GetUserLimitsRequest(user_id="0190a000-0000-7000-8000-000000000000"),
            metadata=admin.metadata,
            timeout=DEADLINE,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


# --- registrations per client address ----------------------------------------------------


async def test_registrations_are_limited_per_client_address(
    channel: grpc.aio.Channel, admin: Account
) -> None:
    crowded = new_address()
    for _ in range(REGISTRATIONS_PER_HOUR):
        await register_from(channel, crowded)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register_from(channel, crowded)
    assert_quota(refused.value, "registrations_per_address_per_hour", "REGISTRATION_RATE_LIMITED")
    assert quota_failure(refused.value).violations[0].subject == f"address:{crowded}"
    # Another address is not affected.
    await register_from(channel, new_address())


# --- streams per user --------------------------------------------------------------------


async def test_streams_beyond_the_share_are_refused_until_an_admin_lifts_it(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    project_id = await new_project(channel, user)
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    artifact = await artifacts.CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=project_id,
            artifact=artifacts_pb2.Artifact(filename="a.txt"),
            content=b"hello",
        ),
        metadata=user.metadata,
        timeout=DEADLINE,
    )
    agents = agents_pb2_grpc.AgentServiceStub(channel)
    conversation = await agents.CreateConversation(
        agents_pb2.CreateConversationRequest(
            project_id=project_id, conversation=agents_pb2.Conversation(model="echo")
        ),
        metadata=user.metadata,
        timeout=DEADLINE,
    )
    chat = agents.Chat(
        agents_pb2.ChatRequest(conversation_id=conversation.id, content="word " * 200),
        metadata=user.metadata,
        timeout=DEADLINE,
    )
    try:
        first = await chat.read()
        assert isinstance(first, agents_pb2.ChatEvent)
        assert first.HasField("started")

        async def download() -> bytes:
            call = artifacts.DownloadArtifact(
                artifacts_pb2.DownloadArtifactRequest(artifact_id=artifact.id),
                metadata=user.metadata,
                timeout=DEADLINE,
            )
            return b"".join([m.chunk async for m in call])

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await download()
        assert_quota(refused.value, "max_concurrent_streams", "STREAM_LIMIT_REACHED")

        await set_limits(channel, admin, user, max_concurrent_streams=2)
        assert await download() == b"hello"
    finally:
        chat.cancel()


# --- artifact storage per user -----------------------------------------------------------


async def test_artifact_bytes_beyond_the_share_are_refused_until_an_admin_lifts_it(
    channel: grpc.aio.Channel, admin: Account, user: Account
) -> None:
    project_id = await new_project(channel, user)
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)

    async def create(size: int) -> artifacts_pb2.Artifact:
        return await artifacts.CreateArtifact(
            artifacts_pb2.CreateArtifactRequest(
                project_id=project_id,
                artifact=artifacts_pb2.Artifact(filename=f"f{secrets.token_hex(3)}.txt"),
                content=b"x" * size,
            ),
            metadata=user.metadata,
            timeout=DEADLINE,
        )

    first = await create(600)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(600)
    assert_quota(refused.value, "max_artifact_bytes", "ARTIFACT_STORAGE_LIMIT_REACHED")
    # A new version counts too.
    with pytest.raises(grpc.aio.AioRpcError) as update_refused:
        await artifacts.UpdateArtifact(
            artifacts_pb2.UpdateArtifactRequest(
                artifact=artifacts_pb2.Artifact(id=first.id),
                content=b"y" * 600,
                base_version=1,
            ),
            metadata=user.metadata,
            timeout=DEADLINE,
        )
    assert_quota(update_refused.value, "max_artifact_bytes", "ARTIFACT_STORAGE_LIMIT_REACHED")

    await set_limits(channel, admin, user, max_artifact_bytes=2000)
    await create(600)

    # Deleting gives the bytes back.
    await set_limits(channel, admin, user, max_artifact_bytes=0)
    await artifacts.DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(artifact_id=first.id),
        metadata=user.metadata,
        timeout=DEADLINE,
    )
    await create(300)
