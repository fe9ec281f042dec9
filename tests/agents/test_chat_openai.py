"""Chat through the real server with OpenAI-compatible endpoints: `openai/…` (a key) and
`ollama/…` (keyless), the real `openai` SDK against fake Chat Completions servers."""

from __future__ import annotations

from typing import Any, Literal

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from google.rpc import code_pb2

from tests.agents.conftest import OLLAMA_MODEL, OPENAI_API_KEY, OPENAI_MODEL
from tests.agents.support import (
    Team,
    chat,
    chat_call,
    delta_text,
    event_shape,
    messages,
    new_conversation,
    read_rest,
    read_text,
    rescript,
    stub,
)
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script, words
from tests.support.rpc import error_info

Endpoint = Literal["openai", "ollama"]
ENDPOINTS: list[Endpoint] = ["openai", "ollama"]
MODELS = {"openai": OPENAI_MODEL, "ollama": OLLAMA_MODEL}
KEYLESS_PLACEHOLDER = "forge-keyless"


@pytest.fixture
def fakes(openai_fake: OpenAIFake, ollama_fake: OpenAIFake) -> dict[str, OpenAIFake]:
    return {"openai": openai_fake, "ollama": ollama_fake}


async def conversation_for(channel: grpc.aio.Channel, team: Team, endpoint: Endpoint) -> str:
    created = await new_conversation(channel, team.owner, team.project_id, model=MODELS[endpoint])
    return created.id


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_each_endpoint_relays_deltas_as_they_arrive(
    endpoint: Endpoint, fakes: dict[str, OpenAIFake], agents_channel: grpc.aio.Channel, team: Team
) -> None:
    tokens = words(25)
    fake = rescript(fakes[endpoint], Script(tokens=tokens, hold_after=24))
    conversation_id = await conversation_for(agents_channel, team, endpoint)
    call = chat_call(agents_channel, team.owner, conversation_id, "Tell me something")
    events = await read_text(call, "".join(tokens[:24]))
    # Started and 24 tokens reached the client while the fake still holds its last token.
    assert fake.holding.is_set()
    assert not fake.last_token_sent.is_set()
    fake.release.set()
    events.extend(await read_rest(call))
    assert await call.code() == grpc.StatusCode.OK

    assert event_shape(events) == ["started", "delta", "usage", "completed"]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert delta_text(events) == "".join(tokens)
    assert events[0].started.model == MODELS[endpoint]
    assert events[-2].usage == agents_pb2.TokenUsage(input_tokens=17, output_tokens=25)
    assert events[-1].completed.finish_reason == agents_pb2.FINISH_REASON_STOP

    sent = fake.requests[-1]
    assert sent.body["model"] == MODELS[endpoint].split("/", 1)[1]
    sent_messages: Any = sent.body["messages"]
    assert sent_messages[-1] == {"role": "user", "content": "Tell me something"}
    key = OPENAI_API_KEY if endpoint == "openai" else KEYLESS_PLACEHOLDER
    assert sent.headers["authorization"] == f"Bearer {key}"
    answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
    assert answer.content == "".join(tokens)
    assert answer.model == MODELS[endpoint]


async def test_rate_limited_twice_then_the_chat_succeeds(
    openai_fake: OpenAIFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(openai_fake, Script(tokens=words(20), statuses=[429, 429]))
    conversation_id = await conversation_for(agents_channel, team, "openai")
    result = await chat(agents_channel, team.owner, conversation_id)
    assert result.error is None
    assert result.text == "".join(words(20))
    assert len(fake.requests) == 3


async def test_a_refused_key_is_provider_auth_failed_without_the_key(
    openai_fake: OpenAIFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(openai_fake, Script(expected_api_key="sk-some-other-key"))
    conversation_id = await conversation_for(agents_channel, team, "openai")
    result = await chat(agents_channel, team.owner, conversation_id)
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(result.error).reason == "PROVIDER_AUTH_FAILED"
    assert OPENAI_API_KEY not in (result.error.details() or "")
    assert OPENAI_API_KEY not in str(result.error.trailing_metadata())
    assert result.events[-1].error.code == code_pb2.FAILED_PRECONDITION
    assert OPENAI_API_KEY not in result.events[-1].error.message
    assert len(fake.requests) == 1


async def test_an_agents_temperature_and_history_reach_the_endpoint(
    ollama_fake: OpenAIFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(ollama_fake, Script(tokens=words(2, "first")))
    agent = await stub(agents_channel).CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(name="Cool llama", model=OLLAMA_MODEL, temperature=0.25),
        ),
        metadata=team.owner.metadata,
    )
    created = await new_conversation(agents_channel, team.owner, team.project_id, agent_id=agent.id)
    await chat(agents_channel, team.owner, created.id, "be precise")
    await chat(agents_channel, team.owner, created.id, "and again")
    body: Any = fake.requests[-1].body
    assert body["temperature"] == pytest.approx(0.25)
    assert body["max_tokens"] == 2048  # the model's own max output
    turns = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
    assert turns == [
        ("user", "be precise"),
        ("assistant", "".join(words(2, "first"))),
        ("user", "and again"),
    ]


async def test_endpoints_are_listed_with_their_model_limits(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    listed = await stub(agents_channel).ListModels(
        agents_pb2.ListModelsRequest(provider="ollama"), metadata=team.owner.metadata
    )
    assert [(m.id, m.provider) for m in listed.models] == [(OLLAMA_MODEL, "ollama")]
    assert listed.models[0].context_window_tokens == 8192
    assert listed.models[0].max_output_tokens == 2048
