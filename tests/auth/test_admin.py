"""Roles: the first account is admin; admin-only RPCs; disabling locks a user out at once."""

from __future__ import annotations

import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2

from tests.support.accounts import Account, login, register
from tests.support.rpc import error_info


async def test_first_account_is_admin(channel: grpc.aio.Channel, admin: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    me = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=admin.metadata)
    assert me.role == auth_pb2.ROLE_ADMIN


@pytest.mark.parametrize(
    ("rpc", "request_message"),
    [
        ("ListUsers", auth_pb2.ListUsersRequest()),
        ("UpdateUser", auth_pb2.UpdateUserRequest(user=auth_pb2.User(id="x"))),
        ("GetSystemStats", auth_pb2.GetSystemStatsRequest()),
    ],
)
async def test_admin_rpcs_refuse_users(
    channel: grpc.aio.Channel, user: Account, rpc: str, request_message: object
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await getattr(stub, rpc)(request_message, metadata=user.metadata)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(denied.value).reason == "ADMIN_REQUIRED"


async def test_users_see_only_their_own_audit_events(
    channel: grpc.aio.Channel, user: Account, admin: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.ListAuditEvents(
            auth_pb2.ListAuditEventsRequest(user_id=admin.user_id), metadata=user.metadata
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    everything = await stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(action=auth_pb2.AUDIT_ACTION_REGISTER, page_size=1000),
        metadata=admin.metadata,
    )
    assert user.user_id in {e.subject_user_id for e in everything.audit_events}
    assert {e.action for e in everything.audit_events} == {auth_pb2.AUDIT_ACTION_REGISTER}


async def test_disabling_a_user_locks_them_out_at_once(
    channel: grpc.aio.Channel, admin: Account
) -> None:
    victim = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    key = await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(), metadata=victim.metadata)

    updated = await stub.UpdateUser(
        auth_pb2.UpdateUserRequest(
            user=auth_pb2.User(id=victim.user_id, disabled=True),
            update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
        ),
        metadata=admin.metadata,
    )
    assert updated.disabled

    for metadata in (victim.metadata, (("x-api-key", key.secret),)):
        with pytest.raises(grpc.aio.AioRpcError) as locked:
            await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata)
        assert error_info(locked.value).reason == "USER_DISABLED"
    with pytest.raises(grpc.aio.AioRpcError) as refresh:
        await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=victim.refresh_token))
    assert refresh.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as sign_in:
        await login(channel, victim.email)
    assert sign_in.value.code() == grpc.StatusCode.UNAUTHENTICATED

    listed = await stub.ListUsers(
        auth_pb2.ListUsersRequest(query=victim.email, disabled=True), metadata=admin.metadata
    )
    assert [u.id for u in listed.users] == [victim.user_id]


async def test_promotion_takes_effect_and_self_demotion_is_refused(
    channel: grpc.aio.Channel, admin: Account
) -> None:
    promoted = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    await stub.UpdateUser(
        auth_pb2.UpdateUserRequest(
            user=auth_pb2.User(id=promoted.user_id, role=auth_pb2.ROLE_ADMIN),
            update_mask=field_mask_pb2.FieldMask(paths=["role"]),
        ),
        metadata=admin.metadata,
    )
    stats = await stub.GetSystemStats(auth_pb2.GetSystemStatsRequest(), metadata=promoted.metadata)
    assert stats.user_count >= 2

    with pytest.raises(grpc.aio.AioRpcError) as self_demotion:
        await stub.UpdateUser(
            auth_pb2.UpdateUserRequest(
                user=auth_pb2.User(id=admin.user_id, role=auth_pb2.ROLE_USER),
                update_mask=field_mask_pb2.FieldMask(paths=["role"]),
            ),
            metadata=admin.metadata,
        )
    assert error_info(self_demotion.value).reason == "CANNOT_MODIFY_SELF"
    with pytest.raises(grpc.aio.AioRpcError) as bad_path:
        await stub.UpdateUser(
            auth_pb2.UpdateUserRequest(
                user=auth_pb2.User(id=promoted.user_id),
                update_mask=field_mask_pb2.FieldMask(paths=["email"]),
            ),
            metadata=admin.metadata,
        )
    assert bad_path.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in (bad_path.value.details() or "")


async def test_system_stats_count_what_exists(channel: grpc.aio.Channel, admin: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    before = await stub.GetSystemStats(auth_pb2.GetSystemStatsRequest(), metadata=admin.metadata)
    newcomer = await register(channel)
    project = await projects_pb2_grpc.ProjectServiceStub(channel).CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="Counted")),
        metadata=newcomer.metadata,
    )
    # Each service counts its own rows: a conversation with one answer, and an artifact.
    agents = agents_pb2_grpc.AgentServiceStub(channel)
    conversation = await agents.CreateConversation(
        agents_pb2.CreateConversationRequest(project_id=project.id),
        metadata=newcomer.metadata,
    )
    events = [
        event
        async for event in agents.Chat(
            agents_pb2.ChatRequest(conversation_id=conversation.id, content="count me"),
            metadata=newcomer.metadata,
        )
    ]
    assert events[-1].HasField("completed")
    await artifacts_pb2_grpc.ArtifactServiceStub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=project.id,
            artifact=artifacts_pb2.Artifact(filename="counted.txt"),
            content=b"counted",
        ),
        metadata=newcomer.metadata,
    )
    after = await stub.GetSystemStats(auth_pb2.GetSystemStatsRequest(), metadata=admin.metadata)
    assert after.user_count == before.user_count + 1
    assert after.project_count == before.project_count + 1
    assert after.disabled_user_count == before.disabled_user_count
    assert after.conversation_count >= before.conversation_count + 1
    assert after.message_count >= before.message_count + 2
    assert after.artifact_count >= before.artifact_count + 1
    assert after.output_tokens > before.output_tokens
    assert after.HasField("compute_time")


async def test_enabling_a_user_again_does_not_revive_their_old_credentials(
    channel: grpc.aio.Channel, admin: Account
) -> None:
    victim = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    key = await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(), metadata=victim.metadata)
    for disabled in (True, False):
        await stub.UpdateUser(
            auth_pb2.UpdateUserRequest(
                user=auth_pb2.User(id=victim.user_id, disabled=disabled),
                update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
            ),
            metadata=admin.metadata,
        )

    for metadata in (victim.metadata, (("x-api-key", key.secret),)):
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata)
        assert stale.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as refresh:
        await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=victim.refresh_token))
    assert refresh.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Signing in anew works.
    again = await login(channel, victim.email)
    me = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=again.metadata)
    assert me.id == victim.user_id
