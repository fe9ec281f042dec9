"""Models, agent profiles, conversations, messages and export, through the real server (and
Envoy for the Markdown download)."""

from __future__ import annotations

import json

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2

from tests.agents.conftest import ANTHROPIC_MODEL
from tests.agents.support import DEADLINE, Team, chat, messages, new_conversation, stub
from tests.support.rpc import error_info, field_violations

BUILTIN_NAMES = ["Coder", "Researcher", "Writer", "Analyst", "Debugger"]


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


# --- models ----------------------------------------------------------------------------


async def test_models_list_echo_and_the_configured_providers(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agents = stub(agents_channel)
    listed = await agents.ListModels(agents_pb2.ListModelsRequest(), metadata=team.owner.metadata)
    ids = [model.id for model in listed.models]
    assert ids[0] == "echo"  # the server's default comes first
    assert {model.provider for model in listed.models} == {
        "echo",
        "anthropic",
        "gemini",
        "openai",
        "ollama",
    }
    assert "anthropic/claude-sonnet-5-5" in ids
    assert all(model.context_window_tokens > 0 for model in listed.models)

    only_gemini = await agents.ListModels(
        agents_pb2.ListModelsRequest(provider="gemini"), metadata=team.owner.metadata
    )
    assert {model.provider for model in only_gemini.models} == {"gemini"}

    paged: list[str] = []
    token = ""
    while True:
        page = await agents.ListModels(
            agents_pb2.ListModelsRequest(page_size=2, page_token=token),
            metadata=team.owner.metadata,
        )
        assert len(page.models) <= 2
        paged.extend(model.id for model in page.models)
        token = page.next_page_token
        if not token:
            break
    assert paged == ids

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await agents.ListModels(
            agents_pb2.ListModelsRequest(provider="mistral"), metadata=team.owner.metadata
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "provider" in field_violations(caught.value)


# --- agent profiles --------------------------------------------------------------------


async def test_builtin_profiles_are_listed_first_and_are_read_only(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agents = stub(agents_channel)
    listed = await agents.ListAgents(
        agents_pb2.ListAgentsRequest(project_id=team.project_id), metadata=team.viewer.metadata
    )
    assert [agent.name for agent in listed.agents] == BUILTIN_NAMES
    coder = listed.agents[0]
    assert coder.builtin
    assert coder.id == "coder"
    assert coder.system_prompt
    assert coder.model == "echo"  # the server's default model
    assert coder.tools == ["bash", "editor", "save_artifact", "update_task", "finish"]

    for change in (
        agents.UpdateAgent(
            agents_pb2.UpdateAgentRequest(
                project_id=team.project_id,
                agent=agents_pb2.Agent(id="coder", name="Mine"),
                update_mask=mask("name"),
            ),
            metadata=team.owner.metadata,
        ),
        agents.DeleteAgent(
            agents_pb2.DeleteAgentRequest(project_id=team.project_id, agent_id="coder"),
            metadata=team.owner.metadata,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await change
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(caught.value).reason == "AGENT_BUILTIN"


async def test_project_profiles_are_created_changed_and_deleted_by_editors(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agents = stub(agents_channel)
    created = await agents.CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(
                name="Reviewer",
                description="Reviews pull requests",
                model=ANTHROPIC_MODEL,
                system_prompt="You review code.",
                tools=["editor", "finish"],
                temperature=0.3,
            ),
        ),
        metadata=team.owner.metadata,
    )
    assert created.project_id == team.project_id
    assert not created.builtin
    assert created.creator_user_id == team.owner.user_id
    assert created.temperature == pytest.approx(0.3)
    assert created.HasField("create_time")

    listed = await agents.ListAgents(
        agents_pb2.ListAgentsRequest(project_id=team.project_id, page_size=4),
        metadata=team.viewer.metadata,
    )
    rest = await agents.ListAgents(
        agents_pb2.ListAgentsRequest(
            project_id=team.project_id, page_size=4, page_token=listed.next_page_token
        ),
        metadata=team.viewer.metadata,
    )
    assert [a.name for a in [*listed.agents, *rest.agents]] == [*BUILTIN_NAMES, "Reviewer"]
    assert rest.next_page_token == ""

    updated = await agents.UpdateAgent(
        agents_pb2.UpdateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(id=created.id, system_prompt="You review code kindly."),
            update_mask=mask("system_prompt"),
        ),
        metadata=team.owner.metadata,
    )
    assert updated.system_prompt == "You review code kindly."
    assert updated.name == "Reviewer"

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await agents.CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=team.project_id, agent=agents_pb2.Agent(name="Nope")
            ),
            metadata=team.viewer.metadata,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await agents.CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=team.project_id, agent=agents_pb2.Agent(name="reviewer")
            ),
            metadata=team.owner.metadata,
        )
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS

    conversation = await new_conversation(
        agents_channel, team.owner, team.project_id, agent_id=created.id
    )
    await agents.DeleteAgent(
        agents_pb2.DeleteAgentRequest(project_id=team.project_id, agent_id=created.id),
        metadata=team.owner.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await agents.GetAgent(
            agents_pb2.GetAgentRequest(project_id=team.project_id, agent_id=created.id),
            metadata=team.owner.metadata,
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(gone.value).reason == "AGENT_NOT_FOUND"
    # Its conversations go on without a profile.
    kept = await agents.GetConversation(
        agents_pb2.GetConversationRequest(conversation_id=conversation.id),
        metadata=team.owner.metadata,
    )
    assert kept.agent_id == ""


async def test_bad_profiles_name_every_bad_field(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(agents_channel).CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=team.project_id,
                agent=agents_pb2.Agent(
                    name="", tools=["bash", "teleport"], temperature=5.0, max_output_tokens=-1
                ),
            ),
            metadata=team.owner.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {
        "agent.name",
        "agent.tools",
        "agent.temperature",
        "agent.max_output_tokens",
    }

    with pytest.raises(grpc.aio.AioRpcError) as model:
        await stub(agents_channel).CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=team.project_id,
                agent=agents_pb2.Agent(name="Odd", model="mistral/gpt"),
            ),
            metadata=team.owner.metadata,
        )
    assert model.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(model.value).reason == "UNKNOWN_MODEL"


# --- conversations ---------------------------------------------------------------------


async def test_conversations_are_listed_most_recently_updated_first(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agents = stub(agents_channel)
    first = await new_conversation(agents_channel, team.owner, team.project_id, title="first")
    second = await new_conversation(
        agents_channel, team.owner, team.project_id, title="second", agent_id="writer"
    )
    third = await new_conversation(agents_channel, team.owner, team.project_id, title="third")
    # A chat moves the first conversation to the top.
    await chat(agents_channel, team.owner, first.id, "bump")

    seen: list[str] = []
    token = ""
    while True:
        page = await agents.ListConversations(
            agents_pb2.ListConversationsRequest(
                project_id=team.project_id, page_size=2, page_token=token
            ),
            metadata=team.viewer.metadata,
        )
        seen.extend(conversation.id for conversation in page.conversations)
        token = page.next_page_token
        if not token:
            break
    assert seen == [first.id, third.id, second.id]

    writers = await agents.ListConversations(
        agents_pb2.ListConversationsRequest(project_id=team.project_id, agent_id="writer"),
        metadata=team.viewer.metadata,
    )
    assert [conversation.id for conversation in writers.conversations] == [second.id]

    bumped = await agents.GetConversation(
        agents_pb2.GetConversationRequest(conversation_id=first.id), metadata=team.viewer.metadata
    )
    assert bumped.message_count == 2
    assert bumped.HasField("last_message_time")
    assert bumped.creator_user_id == team.owner.user_id


async def test_a_conversation_is_renamed_and_deleted(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agents = stub(agents_channel)
    created = await new_conversation(agents_channel, team.owner, team.project_id)
    await chat(agents_channel, team.owner, created.id, "Plan the release\nwith details")
    titled = await agents.GetConversation(
        agents_pb2.GetConversationRequest(conversation_id=created.id),
        metadata=team.owner.metadata,
    )
    assert titled.title == "Plan the release"  # from the first message

    renamed = await agents.UpdateConversation(
        agents_pb2.UpdateConversationRequest(
            conversation=agents_pb2.Conversation(id=created.id, title="Release plan"),
            update_mask=mask("title"),
        ),
        metadata=team.owner.metadata,
    )
    assert renamed.title == "Release plan"

    with pytest.raises(grpc.aio.AioRpcError) as immutable:
        await agents.UpdateConversation(
            agents_pb2.UpdateConversationRequest(
                conversation=agents_pb2.Conversation(id=created.id, project_id="x"),
                update_mask=mask("project_id"),
            ),
            metadata=team.owner.metadata,
        )
    assert immutable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in field_violations(immutable.value)

    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await agents.DeleteConversation(
            agents_pb2.DeleteConversationRequest(conversation_id=created.id),
            metadata=team.viewer.metadata,
        )
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await agents.DeleteConversation(
        agents_pb2.DeleteConversationRequest(conversation_id=created.id),
        metadata=team.owner.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await agents.ListMessages(
            agents_pb2.ListMessagesRequest(conversation_id=created.id),
            metadata=team.owner.metadata,
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(gone.value).reason == "CONVERSATION_NOT_FOUND"


async def test_conversation_fields_are_checked(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agents = stub(agents_channel)
    with pytest.raises(grpc.aio.AioRpcError) as agent:
        await new_conversation(agents_channel, team.owner, team.project_id, agent_id="nobody")
    assert agent.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "conversation.agent_id" in field_violations(agent.value)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await agents.GetConversation(
            agents_pb2.GetConversationRequest(), metadata=team.owner.metadata
        )
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await agents.GetConversation(
            agents_pb2.GetConversationRequest(conversation_id="not-an-id"),
            metadata=team.owner.metadata,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_messages_are_paged_oldest_first(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    created = await new_conversation(agents_channel, team.owner, team.project_id)
    for number in range(3):
        await chat(agents_channel, team.owner, created.id, f"message {number}")
    everything = await messages(agents_channel, team.viewer, created.id)
    assert [m.content for m in everything if m.role == agents_pb2.MESSAGE_ROLE_USER] == [
        "message 0",
        "message 1",
        "message 2",
    ]
    paged: list[str] = []
    token = ""
    while True:
        page = await stub(agents_channel).ListMessages(
            agents_pb2.ListMessagesRequest(
                conversation_id=created.id, page_size=4, page_token=token
            ),
            metadata=team.viewer.metadata,
        )
        paged.extend(message.id for message in page.messages)
        token = page.next_page_token
        if not token:
            break
    assert paged == [message.id for message in everything]


async def test_deleting_the_project_deletes_its_conversations(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    created = await new_conversation(agents_channel, team.owner, team.project_id)
    await chat(agents_channel, team.owner, created.id, "soon gone")
    await projects_pb2_grpc.ProjectServiceStub(agents_channel).DeleteProject(
        projects_pb2.DeleteProjectRequest(project_id=team.project_id),
        metadata=team.owner.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(agents_channel).GetConversation(
            agents_pb2.GetConversationRequest(conversation_id=created.id),
            metadata=team.owner.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# --- export ----------------------------------------------------------------------------


async def test_export_as_markdown_through_envoy_is_a_markdown_file(
    agents_channel: grpc.aio.Channel, agents_http: aiohttp.ClientSession, team: Team
) -> None:
    created = await new_conversation(agents_channel, team.owner, team.project_id, title="Notes")
    await chat(agents_channel, team.owner, created.id, "first question")
    await chat(agents_channel, team.owner, created.id, "second question")
    stored = await messages(agents_channel, team.owner, created.id)
    assert len(stored) == 4

    async with agents_http.get(
        f"/v1/conversations/{created.id}:export",
        params={"format": "markdown"},
        headers=dict(team.viewer.metadata),
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/markdown"
        assert "attachment" in response.headers.get("content-disposition", "")
        body = await response.text()
    assert body.startswith("# Notes\n")
    for message in stored:
        assert message.content in body
    assert body.count("## User") == 2
    assert body.count("## Assistant (echo)") == 2

    async with agents_http.get(
        f"/v1/conversations/{created.id}:export",
        params={"format": "markdown"},
        headers=dict(team.stranger.metadata),
    ) as refused:
        assert refused.status == 404


async def test_export_as_json_has_every_message(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    created = await new_conversation(agents_channel, team.owner, team.project_id)
    await chat(agents_channel, team.owner, created.id, "only question")
    exported = await stub(agents_channel).ExportConversation(
        agents_pb2.ExportConversationRequest(conversation_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert exported.content_type == "application/json"
    document = json.loads(exported.data)
    assert document["conversation"]["id"] == created.id
    assert [m["role"] for m in document["messages"]] == ["user", "assistant"]
    assert document["messages"][0]["content"] == "only question"
    assert document["messages"][1]["status"] == "complete"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(agents_channel).ExportConversation(
            agents_pb2.ExportConversationRequest(conversation_id=created.id, format="pdf"),
            metadata=team.viewer.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
