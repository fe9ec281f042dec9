"""Users' and projects' own provider keys on the agents test server (which has server keys
for every provider): stored sealed, never read back, preferred to the server's key (as the
fakes see it), a project's before the user's, owners only for a project's, audit-logged,
and served through Envoy on both route families."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from sqlalchemy import text

from server.db.engine import make_engine
from tests.agents.conftest import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_API_KEY, OPENAI_MODEL
from tests.agents.provider_keys_support import create_key, delete_key, list_keys, own_key
from tests.agents.support import DEADLINE, Team, chat, new_conversation, rescript, stub
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script, words
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations

SERVER_ANTHROPIC_KEY = "sk-ant-forge-test"
SERVER_GEMINI_KEY = "gm-forge-test"


async def add_member(
    channel: grpc.aio.Channel, team: Team, role: projects_pb2.ProjectRole.ValueType
) -> Account:
    member = await register(channel)
    await projects_pb2_grpc.ProjectServiceStub(channel).AddMember(
        projects_pb2.AddMemberRequest(project_id=team.project_id, email=member.email, role=role),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    return member


async def stored_rows(database_url: str, key_id: str) -> list[dict[str, Any]]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT * FROM provider_keys WHERE id = :id"), {"id": uuid.UUID(key_id)}
            )
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


# --- storing, listing, deleting ---------------------------------------------------------------


async def test_a_key_is_stored_sealed_and_shown_only_by_its_prefix(
    agents_channel: grpc.aio.Channel, agents_database: str, team: Team
) -> None:
    secret = own_key()
    created = await create_key(
        agents_channel, team.owner, "openai", secret, display_name="  my laptop  "
    )
    assert created.api_key == ""
    assert created.key_prefix == secret[:8]
    assert created.provider == "openai"
    assert created.project_id == ""
    assert created.display_name == "my laptop"
    assert created.creator_user_id == team.owner.user_id
    assert created.HasField("create_time")
    assert not created.HasField("last_use_time")

    listed = await list_keys(agents_channel, team.owner)
    assert [key.id for key in listed] == [created.id]
    assert listed[0].api_key == ""
    assert listed[0].key_prefix == secret[:8]
    # Nobody else sees it.
    assert await list_keys(agents_channel, team.viewer) == []

    (row,) = await stored_rows(agents_database, created.id)
    for value in row.values():
        if isinstance(value, bytes | str):
            as_text = value.decode("latin-1") if isinstance(value, bytes) else value
            assert secret not in as_text
            assert secret[8:] not in as_text
    assert row["user_id"] == uuid.UUID(team.owner.user_id)
    assert row["project_id"] is None
    assert len(row["encryption_key_id"]) == 8


async def test_a_short_key_shows_at_most_a_third_of_itself(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    created = await create_key(agents_channel, team.owner, "gemini", "abcdefghi")
    assert created.key_prefix == "abc"


async def test_one_key_per_owner_and_provider(agents_channel: grpc.aio.Channel, team: Team) -> None:
    await create_key(agents_channel, team.owner, "anthropic", own_key())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_key(agents_channel, team.owner, "anthropic", own_key())
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(caught.value).reason == "PROVIDER_KEY_EXISTS"
    # The project is another owner: its key for the same provider is fine.
    await create_key(agents_channel, team.owner, "anthropic", own_key(), project_id=team.project_id)


@pytest.mark.parametrize(
    ("provider", "api_key", "display_name", "bad_field"),
    [
        ("echo", "sk-echo-123456", "", "provider_key.provider"),
        ("", "sk-none-123456", "", "provider_key.provider"),
        ("mistral", "sk-none-123456", "", "provider_key.provider"),
        ("openai", "", "", "provider_key.api_key"),
        ("openai", "sk-1234", "", "provider_key.api_key"),
        ("openai", "sk-with space-123", "", "provider_key.api_key"),
        ("openai", "sk-tab\t123456789", "", "provider_key.api_key"),
        ("openai", "s" * 513, "", "provider_key.api_key"),
        ("openai", "sk-fine-123456", "n" * 101, "provider_key.display_name"),
    ],
)
async def test_bad_keys_are_refused_with_a_field_violation_that_never_quotes_them(
    agents_channel: grpc.aio.Channel,
    team: Team,
    provider: str,
    api_key: str,
    display_name: str,
    bad_field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_key(agents_channel, team.owner, provider, api_key, display_name=display_name)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert list(violations) == [bad_field]
    if len(api_key) >= 8:
        assert api_key not in (caught.value.details() or "")
        assert api_key not in str(violations)


async def test_only_a_projects_owners_store_or_delete_its_keys_and_members_list_them(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    editor = await add_member(agents_channel, team, projects_pb2.PROJECT_ROLE_EDITOR)
    for account in (editor, team.viewer):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create_key(
                agents_channel, account, "openai", own_key(), project_id=team.project_id
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_key(
            agents_channel, team.stranger, "openai", own_key(), project_id=team.project_id
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    created = await create_key(
        agents_channel, team.owner, "openai", own_key("project"), project_id=team.project_id
    )
    assert created.project_id == team.project_id
    for member in (team.owner, editor, team.viewer):
        listed = await list_keys(agents_channel, member, team.project_id)
        assert [key.id for key in listed] == [created.id]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_keys(agents_channel, team.stranger, team.project_id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # A project's key is not its creator's own.
    assert created.id not in [key.id for key in await list_keys(agents_channel, team.owner)]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await delete_key(agents_channel, editor, created.id, team.project_id)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await delete_key(agents_channel, team.owner, created.id, team.project_id)
    assert await list_keys(agents_channel, team.viewer, team.project_id) == []


async def test_someone_elses_key_is_not_found(agents_channel: grpc.aio.Channel, team: Team) -> None:
    mine = await create_key(agents_channel, team.owner, "gemini", own_key())
    projects = await create_key(
        agents_channel, team.owner, "gemini", own_key(), project_id=team.project_id
    )
    attempts = [
        (team.stranger, mine.id, ""),
        (team.viewer, mine.id, ""),
        # The owner's own key is not the project's, nor the project's key the owner's own.
        (team.owner, mine.id, team.project_id),
        (team.owner, projects.id, ""),
        (team.owner, "not-an-id", ""),
        (team.owner, str(uuid.uuid4()), ""),
    ]
    for account, key_id, project_id in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await delete_key(agents_channel, account, key_id, project_id)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, (key_id, project_id)
    assert [key.id for key in await list_keys(agents_channel, team.owner)] == [mine.id]


async def test_creating_and_deleting_are_audit_logged_without_the_key(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    secret = own_key()
    created = await create_key(agents_channel, team.owner, "anthropic", secret)
    await delete_key(agents_channel, team.owner, created.id)
    project_key = await create_key(
        agents_channel, team.owner, "anthropic", own_key(), project_id=team.project_id
    )
    listed = await auth_pb2_grpc.AuthServiceStub(agents_channel).ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(page_size=50),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    events = [
        (event.action, event.target, dict(event.metadata))
        for event in listed.audit_events
        if event.target.startswith("providerKeys/")
    ]
    assert events == [
        (
            auth_pb2.AUDIT_ACTION_PROVIDER_KEY_CREATED,
            f"providerKeys/{project_key.id}",
            {"provider": "anthropic", "project_id": team.project_id},
        ),
        (
            auth_pb2.AUDIT_ACTION_PROVIDER_KEY_DELETED,
            f"providerKeys/{created.id}",
            {"provider": "anthropic", "project_id": ""},
        ),
        (
            auth_pb2.AUDIT_ACTION_PROVIDER_KEY_CREATED,
            f"providerKeys/{created.id}",
            {"provider": "anthropic", "project_id": ""},
        ),
    ]
    assert secret not in str(listed)


async def test_an_api_key_cannot_store_or_delete_provider_keys(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    created = await auth_pb2_grpc.AuthServiceStub(agents_channel).CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci"), metadata=team.owner.metadata, timeout=DEADLINE
    )
    api_key = (("x-api-key", created.secret),)
    mine = await create_key(agents_channel, team.owner, "openai", own_key())
    agents = stub(agents_channel)
    for call in (
        agents.CreateProviderKey(
            agents_pb2.CreateProviderKeyRequest(
                provider_key=agents_pb2.ProviderKey(provider="gemini", api_key=own_key())
            ),
            metadata=api_key,
        ),
        agents.DeleteProviderKey(
            agents_pb2.DeleteProviderKeyRequest(provider_key_id=mine.id), metadata=api_key
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(caught.value).reason == "API_KEY_NOT_ALLOWED"
    # Reading them is allowed (the read scope).
    listed = await agents.ListProviderKeys(
        agents_pb2.ListProviderKeysRequest(), metadata=api_key, timeout=DEADLINE
    )
    assert [key.id for key in listed.provider_keys] == [mine.id]


async def test_a_retried_create_gets_the_first_key_back_without_the_secret(
    agents_channel: grpc.aio.Channel, team: Team, agents_database: str
) -> None:
    secret = own_key()
    request_id = str(uuid.uuid4())
    first = await create_key(agents_channel, team.owner, "openai", secret, request_id=request_id)
    again = await create_key(agents_channel, team.owner, "openai", secret, request_id=request_id)
    assert again == first
    assert again.api_key == ""
    assert len(await list_keys(agents_channel, team.owner)) == 1

    # What the retry record keeps of the request cannot be tested against guesses of the key:
    # neither the key nor a plain hash of the request is stored.
    request = agents_pb2.CreateProviderKeyRequest(
        provider_key=agents_pb2.ProviderKey(provider="openai", api_key=secret)
    )
    plain_hash = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
    engine = make_engine(agents_database)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT fingerprint, response FROM idempotency_records "
                        "WHERE request_id = :id"
                    ),
                    {"id": request_id},
                )
            ).all()
    finally:
        await engine.dispose()
    [(fingerprint, response)] = rows
    assert bytes(fingerprint) != plain_hash
    assert secret.encode() not in bytes(fingerprint) + bytes(response or b"")


async def test_keys_are_paged(agents_channel: grpc.aio.Channel, team: Team) -> None:
    ids = [
        (await create_key(agents_channel, team.owner, provider, own_key())).id
        for provider in ("anthropic", "gemini", "openai")
    ]
    agents = stub(agents_channel)
    first = await agents.ListProviderKeys(
        agents_pb2.ListProviderKeysRequest(page_size=2), metadata=team.owner.metadata
    )
    second = await agents.ListProviderKeys(
        agents_pb2.ListProviderKeysRequest(page_size=2, page_token=first.next_page_token),
        metadata=team.owner.metadata,
    )
    assert [key.id for key in [*first.provider_keys, *second.provider_keys]] == ids
    assert second.next_page_token == ""


# --- REST through Envoy ---------------------------------------------------------------------------


async def test_rest_creates_lists_and_deletes_own_and_project_keys(
    agents_http: aiohttp.ClientSession, team: Team
) -> None:
    headers = dict(team.owner.metadata)
    for base in ("/v1/users/me/providerKeys", f"/v1/projects/{team.project_id}/providerKeys"):
        secret = own_key("rest")
        async with agents_http.post(
            base,
            json={"provider": "gemini", "apiKey": secret, "displayName": "rest"},
            headers=headers,
        ) as response:
            assert response.status == 200, await response.text()
            created = await response.json()
        assert "apiKey" not in created
        assert created["keyPrefix"] == secret[:8]
        assert created.get("projectId", "") == ("" if "users" in base else team.project_id)
        async with agents_http.get(base, headers=headers) as response:
            assert response.status == 200
            listed = await response.json()
        assert [key["id"] for key in listed["providerKeys"]] == [created["id"]]
        assert secret not in str(listed)
        async with agents_http.post(
            base, json={"provider": "gemini", "apiKey": own_key()}, headers=headers
        ) as response:
            assert response.status == 409
        async with agents_http.delete(f"{base}/{created['id']}", headers=headers) as response:
            assert response.status == 200
        async with agents_http.delete(f"{base}/{created['id']}", headers=headers) as response:
            assert response.status == 404
        async with agents_http.get(base, headers=headers) as response:
            assert (await response.json()).get("providerKeys", []) == []


# --- using them ------------------------------------------------------------------------------


async def test_a_users_key_is_used_instead_of_the_servers_then_the_projects_then_again_the_servers(
    openai_fake: OpenAIFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(openai_fake, Script(tokens=words(3)))
    conversation = await new_conversation(
        agents_channel, team.owner, team.project_id, model=OPENAI_MODEL
    )

    async def key_seen() -> str:
        result = await chat(agents_channel, team.owner, conversation.id)
        assert result.error is None, result.error
        return fake.requests[-1].headers["authorization"].removeprefix("Bearer ")

    assert await key_seen() == OPENAI_API_KEY
    users = own_key("user")
    mine = await create_key(agents_channel, team.owner, "openai", users)
    assert await key_seen() == users
    projects = own_key("project")
    project_key = await create_key(
        agents_channel, team.owner, "openai", projects, project_id=team.project_id
    )
    assert await key_seen() == projects
    # The viewer's own key plays no part in the owner's calls.
    await create_key(agents_channel, team.viewer, "openai", own_key("viewer"))
    assert await key_seen() == projects
    await delete_key(agents_channel, team.owner, project_key.id, team.project_id)
    assert await key_seen() == users
    await delete_key(agents_channel, team.owner, mine.id)
    assert await key_seen() == OPENAI_API_KEY


async def test_anthropic_and_gemini_calls_carry_the_users_key(
    anthropic_fake: AnthropicFake,
    gemini_fake: GeminiFake,
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    rescript(anthropic_fake, Script(tokens=words(2)))
    rescript(gemini_fake, Script(tokens=words(2)))
    anthropic_key, gemini_key = own_key("ant"), own_key("gem")
    await create_key(agents_channel, team.owner, "anthropic", anthropic_key)
    await create_key(agents_channel, team.owner, "gemini", gemini_key)
    for model in (ANTHROPIC_MODEL, GEMINI_MODEL):
        conversation = await new_conversation(
            agents_channel, team.owner, team.project_id, model=model
        )
        result = await chat(agents_channel, team.owner, conversation.id)
        assert result.error is None, result.error
    # (this SDK sends the key as a bearer token; the API takes both)
    anthropic_headers = anthropic_fake.requests[-1].headers
    sent = anthropic_headers.get("x-api-key") or anthropic_headers["authorization"]
    assert sent.removeprefix("Bearer ") == anthropic_key
    assert gemini_fake.requests[-1].headers["x-goog-api-key"] == gemini_key
    listed = await list_keys(agents_channel, team.owner)
    assert all(key.HasField("last_use_time") for key in listed)


async def test_a_refused_own_key_is_provider_auth_failed_and_never_quoted_or_logged(
    openai_fake: OpenAIFake,
    agents_channel: grpc.aio.Channel,
    team: Team,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = own_key("refused")
    # The fake accepts only the server's key, and quotes a refused key in its answer.
    rescript(openai_fake, Script(expected_api_key=OPENAI_API_KEY))
    await create_key(agents_channel, team.owner, "openai", secret)
    conversation = await new_conversation(
        agents_channel, team.owner, team.project_id, model=OPENAI_MODEL
    )
    with caplog.at_level(logging.DEBUG):
        result = await chat(agents_channel, team.owner, conversation.id)
    assert openai_fake.requests[-1].headers["authorization"] == f"Bearer {secret}"
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(result.error).reason == "PROVIDER_AUTH_FAILED"
    assert secret not in (result.error.details() or "")
    assert secret not in str(result.error.trailing_metadata())
    assert secret not in str(result.events)
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert all(secret not in str(record.__dict__) for record in caplog.records)
