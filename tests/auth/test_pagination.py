"""AuthService lists page through everything once, and a page token serves only the list,
caller and filters it was issued for."""

from __future__ import annotations

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc

from tests.support.accounts import Account, login, register
from tests.support.rpc import error_info, field_violations


def _refused(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "INVALID_PAGE_TOKEN"
    assert "page_token" in field_violations(error)


async def test_sessions_page_and_their_tokens_belong_to_their_user(
    channel: grpc.aio.Channel,
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    first = await register(channel)
    for _ in range(2):
        await login(channel, first.email)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListSessions(
            auth_pb2.ListSessionsRequest(page_size=2, page_token=token), metadata=first.metadata
        )
        seen.extend(s.id for s in page.sessions)
        token = page.next_page_token
        if not token:
            break
        held = token
    assert len(seen) == len(set(seen)) == 3
    assert seen == sorted(seen, reverse=True), "not newest first"

    other = await register(channel)
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await stub.ListSessions(
            auth_pb2.ListSessionsRequest(page_size=2, page_token=held), metadata=other.metadata
        )
    _refused(replayed.value)


async def test_api_key_tokens_keep_the_show_revoked_filter(
    channel: grpc.aio.Channel, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    created = [
        await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name=f"k{i}"), metadata=user.metadata)
        for i in range(3)
    ]
    first = await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(page_size=2), metadata=user.metadata)
    assert first.next_page_token
    second = await stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(page_size=2, page_token=first.next_page_token),
        metadata=user.metadata,
    )
    assert second.next_page_token == ""
    listed = [k.id for k in [*first.api_keys, *second.api_keys]]
    assert listed == [c.api_key.id for c in reversed(created)]

    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await stub.ListApiKeys(
            auth_pb2.ListApiKeysRequest(
                page_size=2, page_token=first.next_page_token, show_revoked=True
            ),
            metadata=user.metadata,
        )
    _refused(replayed.value)


async def test_user_list_tokens_keep_their_query(channel: grpc.aio.Channel, admin: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    for _ in range(3):
        await register(channel)
    first = await stub.ListUsers(auth_pb2.ListUsersRequest(page_size=1), metadata=admin.metadata)
    assert first.next_page_token
    second = await stub.ListUsers(
        auth_pb2.ListUsersRequest(page_size=1, page_token=first.next_page_token),
        metadata=admin.metadata,
    )
    assert second.users[0].id > first.users[0].id
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await stub.ListUsers(
            auth_pb2.ListUsersRequest(
                page_size=1, page_token=first.next_page_token, query="example"
            ),
            metadata=admin.metadata,
        )
    _refused(replayed.value)


async def test_a_user_is_refused_the_user_list_before_their_page_token_is_read(
    channel: grpc.aio.Channel, user: Account
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.ListUsers(
            auth_pb2.ListUsersRequest(page_token="not-a-token"), metadata=user.metadata
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_audit_tokens_are_bound_to_the_events_subject_and_action(
    channel: grpc.aio.Channel,
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    account = await register(channel)
    for _ in range(2):
        await login(channel, account.email)
    first = await stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(page_size=1), metadata=account.metadata
    )
    assert first.next_page_token
    # A user's events without a user id are the same list as with their own id.
    same = await stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(
            page_size=1, page_token=first.next_page_token, user_id=account.user_id
        ),
        metadata=account.metadata,
    )
    assert same.audit_events[0].create_time.ToDatetime() <= (
        first.audit_events[0].create_time.ToDatetime()
    )
    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await stub.ListAuditEvents(
            auth_pb2.ListAuditEventsRequest(
                page_size=1,
                page_token=first.next_page_token,
                action=auth_pb2.AUDIT_ACTION_LOGIN_SUCCEEDED,
            ),
            metadata=account.metadata,
        )
    _refused(replayed.value)
