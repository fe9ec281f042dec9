"""An agent profile's top_p and stop sequences: stored, changed through the update mask,
checked like a chat's parameters, sent to every provider by the chats of the profile's
conversations (a chat's own parameters win), and served through REST as well."""

from __future__ import annotations

from typing import Any

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from google.protobuf import field_mask_pb2

from tests.agents.conftest import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL
from tests.agents.support import DEADLINE, Team, new_conversation, rescript, stub
from tests.agents.test_generation_parameters import PARAMETERS, _sent
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script, words
from tests.fakes.server import FakeProviderServer
from tests.support.rpc import field_violations

KINDS = [("anthropic", ANTHROPIC_MODEL), ("gemini", GEMINI_MODEL), ("openai", OPENAI_MODEL)]


@pytest.fixture
def fakes(
    anthropic_fake: AnthropicFake, gemini_fake: GeminiFake, openai_fake: OpenAIFake
) -> dict[str, FakeProviderServer]:
    return {"anthropic": anthropic_fake, "gemini": gemini_fake, "openai": openai_fake}


async def _profile(channel: grpc.aio.Channel, team: Team, model: str) -> agents_pb2.Agent:
    return await stub(channel).CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(
                name=f"Sampler {model}",
                model=model,
                temperature=0.25,
                top_p=0.6,
                max_output_tokens=55,
                stop_sequences=["STOP", "</done>"],
            ),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )


async def _chat_body(
    channel: grpc.aio.Channel,
    team: Team,
    fake: FakeProviderServer,
    agent: agents_pb2.Agent,
    parameters: agents_pb2.GenerationParameters | None = None,
) -> dict[str, Any]:
    conversation = await new_conversation(channel, team.owner, team.project_id, agent_id=agent.id)
    request = agents_pb2.ChatRequest(conversation_id=conversation.id, content="sample")
    if parameters is not None:
        request.parameters.CopyFrom(parameters)
    events = [
        event
        async for event in stub(channel).Chat(
            request, metadata=team.owner.metadata, timeout=DEADLINE
        )
    ]
    assert events[-1].HasField("completed"), events[-1]
    return dict(fake.requests[-1].body)


@pytest.mark.parametrize(("kind", "model"), KINDS)
async def test_a_profiles_top_p_and_stop_sequences_reach_each_provider(
    kind: str,
    model: str,
    fakes: dict[str, FakeProviderServer],
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    fake = rescript(fakes[kind], Script(tokens=words(2)))
    agent = await _profile(agents_channel, team, model)
    assert agent.HasField("top_p")
    assert agent.top_p == pytest.approx(0.6)
    assert list(agent.stop_sequences) == ["STOP", "</done>"]

    temperature, top_p, max_tokens, stop = _sent(
        kind, await _chat_body(agents_channel, team, fake, agent)
    )
    assert temperature == pytest.approx(0.25)
    assert top_p == pytest.approx(0.6)
    assert max_tokens == 55
    assert stop == ["STOP", "</done>"]


@pytest.mark.parametrize(("kind", "model"), KINDS)
async def test_a_chats_parameters_override_the_profiles(
    kind: str,
    model: str,
    fakes: dict[str, FakeProviderServer],
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    fake = rescript(fakes[kind], Script(tokens=words(2)))
    agent = await _profile(agents_channel, team, model)
    body = await _chat_body(agents_channel, team, fake, agent, PARAMETERS)
    temperature, top_p, max_tokens, stop = _sent(kind, body)
    assert temperature == pytest.approx(0.5)
    assert top_p == pytest.approx(0.75)
    assert max_tokens == 77
    assert stop == ["END", "###"]


async def test_a_profile_without_them_sends_neither(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(anthropic_fake, Script(tokens=words(2)))
    agent = await stub(agents_channel).CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(name="Plain", model=ANTHROPIC_MODEL),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    assert not agent.HasField("top_p")
    assert list(agent.stop_sequences) == []
    body = await _chat_body(agents_channel, team, fake, agent)
    assert "top_p" not in body
    assert "stop_sequences" not in body


async def test_the_update_mask_changes_and_clears_them(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    agent = await _profile(agents_channel, team, ANTHROPIC_MODEL)
    agents = stub(agents_channel)
    changed = await agents.UpdateAgent(
        agents_pb2.UpdateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(id=agent.id, top_p=0.9, stop_sequences=["<<"]),
            update_mask=field_mask_pb2.FieldMask(paths=["top_p"]),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    # Only the masked field changed.
    assert changed.top_p == pytest.approx(0.9)
    assert list(changed.stop_sequences) == ["STOP", "</done>"]
    cleared = await agents.UpdateAgent(
        agents_pb2.UpdateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(id=agent.id),
            update_mask=field_mask_pb2.FieldMask(paths=["top_p", "stop_sequences"]),
        ),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    assert not cleared.HasField("top_p")
    assert list(cleared.stop_sequences) == []
    fetched = await agents.GetAgent(
        agents_pb2.GetAgentRequest(project_id=team.project_id, agent_id=agent.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert not fetched.HasField("top_p")
    assert fetched.temperature == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("agent", "field"),
    [
        (agents_pb2.Agent(top_p=0), "agent.top_p"),
        (agents_pb2.Agent(top_p=1.5), "agent.top_p"),
        (agents_pb2.Agent(top_p=float("nan")), "agent.top_p"),
        (agents_pb2.Agent(stop_sequences=["a", "b", "c", "d", "e"]), "agent.stop_sequences"),
        (agents_pb2.Agent(stop_sequences=[""]), "agent.stop_sequences"),
        (agents_pb2.Agent(stop_sequences=["x" * 65]), "agent.stop_sequences"),
    ],
)
async def test_out_of_range_values_are_refused_on_create_and_update(
    agents_channel: grpc.aio.Channel, team: Team, agent: agents_pb2.Agent, field: str
) -> None:
    agents = stub(agents_channel)
    bad = agents_pb2.Agent()
    bad.CopyFrom(agent)
    bad.name = "Out of range"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agents.CreateAgent(
            agents_pb2.CreateAgentRequest(project_id=team.project_id, agent=bad),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)

    existing = await _profile(agents_channel, team, ANTHROPIC_MODEL)
    bad.id = existing.id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agents.UpdateAgent(
            agents_pb2.UpdateAgentRequest(
                project_id=team.project_id,
                agent=bad,
                update_mask=field_mask_pb2.FieldMask(paths=[field.removeprefix("agent.")]),
            ),
            metadata=team.owner.metadata,
            timeout=DEADLINE,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
    kept = await agents.GetAgent(
        agents_pb2.GetAgentRequest(project_id=team.project_id, agent_id=existing.id),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    assert kept.top_p == pytest.approx(0.6)
    assert list(kept.stop_sequences) == ["STOP", "</done>"]


async def test_builtin_profiles_have_neither(agents_channel: grpc.aio.Channel, team: Team) -> None:
    builtin = await stub(agents_channel).GetAgent(
        agents_pb2.GetAgentRequest(project_id=team.project_id, agent_id="coder"),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert builtin.builtin
    assert not builtin.HasField("top_p")
    assert list(builtin.stop_sequences) == []


async def test_rest_create_and_patch(agents_http: aiohttp.ClientSession, team: Team) -> None:
    headers = dict(team.owner.metadata)
    async with agents_http.post(
        f"/v1/projects/{team.project_id}/agents",
        json={"name": "REST sampler", "topP": 0.5, "stopSequences": ["END"]},
        headers=headers,
    ) as response:
        assert response.status == 200, await response.text()
        created = await response.json()
    assert created["topP"] == pytest.approx(0.5)
    assert created["stopSequences"] == ["END"]

    async with agents_http.patch(
        f"/v1/projects/{team.project_id}/agents/{created['id']}",
        params={"updateMask": "stopSequences"},
        json={"stopSequences": ["A", "B"], "topP": 0.1},
        headers=headers,
    ) as response:
        assert response.status == 200, await response.text()
        patched = await response.json()
    assert patched["stopSequences"] == ["A", "B"]
    assert patched["topP"] == pytest.approx(0.5)

    async with agents_http.patch(
        f"/v1/projects/{team.project_id}/agents/{created['id']}",
        params={"updateMask": "topP"},
        json={"topP": 2},
        headers=headers,
    ) as refused:
        assert refused.status == 400
        problem = await refused.json()
    assert "agent.top_p" in str(problem)
