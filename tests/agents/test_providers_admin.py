"""Providers switched on and off by admins: ListProviders, UpdateProvider (gRPC and REST);
a switched-off provider's models refuse chats (PROVIDER_DISABLED) and leave ListModels until
it is switched back on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import field_mask_pb2

from server.core.scopes import needed_scopes
from tests.agents.conftest import OPENAI_MODEL
from tests.agents.support import DEADLINE, Team, chat, new_conversation, rescript, stub
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script, words
from tests.support.accounts import Account
from tests.support.rpc import error_info


async def switch(
    channel: grpc.aio.Channel, account: Account, name: str, enabled: bool, *, mask: bool = True
) -> agents_pb2.Provider:
    return await stub(channel).UpdateProvider(
        agents_pb2.UpdateProviderRequest(
            provider=agents_pb2.Provider(name=name, enabled=enabled),
            update_mask=field_mask_pb2.FieldMask(paths=["enabled"] if mask else []),
        ),
        metadata=account.metadata,
        timeout=DEADLINE,
    )


@pytest.fixture
async def openai_restored(
    agents_channel: grpc.aio.Channel, agents_admin: Account
) -> AsyncIterator[None]:
    yield
    await switch(agents_channel, agents_admin, "openai", True)


async def test_signed_in_callers_list_the_providers(
    agents_channel: grpc.aio.Channel, agents_http: aiohttp.ClientSession, team: Team
) -> None:
    response = await stub(agents_channel).ListProviders(
        agents_pb2.ListProvidersRequest(), metadata=team.stranger.metadata, timeout=DEADLINE
    )
    providers = {provider.name: provider for provider in response.providers}
    assert set(providers) == {"anthropic", "gemini", "echo", "openai", "ollama"}
    assert providers["anthropic"].kind == agents_pb2.PROVIDER_KIND_ANTHROPIC
    assert providers["ollama"].kind == agents_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE
    assert providers["echo"].kind == agents_pb2.PROVIDER_KIND_ECHO
    assert all(provider.configured for provider in providers.values())
    assert {name for name, p in providers.items() if p.discoverable} == {"openai", "ollama"}
    assert providers["echo"].enabled

    async with agents_http.get("/v1/providers", headers=dict(team.viewer.metadata)) as got:
        assert got.status == 200
        body = await got.json()
    assert {provider["name"] for provider in body["providers"]} == set(providers)
    async with agents_http.get("/v1/providers") as anonymous:
        assert anonymous.status == 401


async def test_only_admins_switch_and_echo_stays_on(
    agents_channel: grpc.aio.Channel, agents_admin: Account, team: Team
) -> None:
    assert needed_scopes("UpdateProvider") == frozenset({"admin"})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await switch(agents_channel, team.owner, "openai", False)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(refused.value).reason == "ADMIN_REQUIRED"

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await switch(agents_channel, agents_admin, "mistral", False)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(unknown.value).reason == "PROVIDER_NOT_FOUND"

    with pytest.raises(grpc.aio.AioRpcError) as echo:
        await switch(agents_channel, agents_admin, "echo", False)
    assert echo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(echo.value).reason == "ECHO_ALWAYS_ON"

    with pytest.raises(grpc.aio.AioRpcError) as bad_mask:
        await stub(agents_channel).UpdateProvider(
            agents_pb2.UpdateProviderRequest(
                provider=agents_pb2.Provider(name="openai"),
                update_mask=field_mask_pb2.FieldMask(paths=["configured"]),
            ),
            metadata=agents_admin.metadata,
            timeout=DEADLINE,
        )
    assert bad_mask.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_switched_off_provider_refuses_chats_until_switched_on(
    openai_restored: None,
    openai_fake: OpenAIFake,
    agents_channel: grpc.aio.Channel,
    agents_http: aiohttp.ClientSession,
    agents_admin: Account,
    team: Team,
) -> None:
    rescript(openai_fake, Script(tokens=words(3)))
    conversation = await new_conversation(
        agents_channel, team.owner, team.project_id, model=OPENAI_MODEL
    )

    # An empty mask switches too: `enabled` is the only field, false included.
    switched = await switch(agents_channel, agents_admin, "openai", False, mask=False)
    assert not switched.enabled
    assert switched.update_user_id == agents_admin.user_id
    assert switched.HasField("update_time")

    refused = await chat(agents_channel, team.owner, conversation.id)
    assert refused.error is not None
    assert refused.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.error).reason == "PROVIDER_DISABLED"
    assert openai_fake.requests == []
    listed = await stub(agents_channel).ListModels(
        agents_pb2.ListModelsRequest(), metadata=team.owner.metadata, timeout=DEADLINE
    )
    assert all(model.provider != "openai" for model in listed.models)
    providers = await stub(agents_channel).ListProviders(
        agents_pb2.ListProvidersRequest(), metadata=team.owner.metadata, timeout=DEADLINE
    )
    assert [p.enabled for p in providers.providers if p.name == "openai"] == [False]

    # The switch is in the audit log, by the admin.
    events = await auth_pb2_grpc.AuthServiceStub(agents_channel).ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(
            action=auth_pb2.AUDIT_ACTION_PROVIDER_SWITCHED, page_size=100
        ),
        metadata=agents_admin.metadata,
        timeout=DEADLINE,
    )
    switches = list(events.audit_events)
    assert {event.action for event in switches} == {auth_pb2.AUDIT_ACTION_PROVIDER_SWITCHED}
    newest = max(switches, key=lambda event: event.create_time.ToDatetime())
    assert (newest.actor_user_id, newest.target) == (agents_admin.user_id, "providers/openai")
    assert newest.metadata["enabled"] == "false"

    # Switched back on through REST, chats work again at once.
    async with agents_http.patch(
        "/v1/providers/openai",
        params={"updateMask": "enabled"},
        json={"enabled": True},
        headers=dict(agents_admin.metadata),
    ) as patched:
        assert patched.status == 200
        assert (await patched.json())["enabled"] is True
    async with agents_http.patch(
        "/v1/providers/openai", json={"enabled": False}, headers=dict(team.owner.metadata)
    ) as forbidden:
        assert forbidden.status == 403
    answered = await chat(agents_channel, team.owner, conversation.id)
    assert answered.error is None
    assert answered.text == "".join(words(3))
