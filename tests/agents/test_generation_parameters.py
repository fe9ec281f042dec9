"""A chat's generation parameters (temperature, top_p, answer length, stop sequences) reach
whichever provider answers, in that provider's own form; out-of-range ones are refused."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from forge.agents.v1 import agents_pb2

from tests.agents.conftest import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL
from tests.agents.support import Team, new_conversation, rescript, stub
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script, words
from tests.fakes.server import FakeProviderServer
from tests.support.rpc import field_violations

PARAMETERS = agents_pb2.GenerationParameters(
    temperature=0.5, top_p=0.75, max_output_tokens=77, stop_sequences=["END", "###"]
)


def _sent(kind: str, body: dict[str, Any]) -> tuple[object, object, object, object]:
    """(temperature, top_p, max tokens, stop sequences) as each provider's API names them."""
    if kind == "anthropic":
        return body["temperature"], body["top_p"], body["max_tokens"], body["stop_sequences"]
    if kind == "gemini":
        config = body["generationConfig"]
        return (
            config["temperature"],
            config["topP"],
            config["maxOutputTokens"],
            config["stopSequences"],
        )
    return body["temperature"], body["top_p"], body["max_tokens"], body["stop"]


@pytest.mark.parametrize(
    ("kind", "model"),
    [("anthropic", ANTHROPIC_MODEL), ("gemini", GEMINI_MODEL), ("openai", OPENAI_MODEL)],
)
async def test_a_chats_parameters_reach_each_provider(
    kind: str,
    model: str,
    anthropic_fake: AnthropicFake,
    gemini_fake: GeminiFake,
    openai_fake: OpenAIFake,
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    fakes: dict[str, FakeProviderServer] = {
        "anthropic": anthropic_fake,
        "gemini": gemini_fake,
        "openai": openai_fake,
    }
    fake = rescript(fakes[kind], Script(tokens=words(2)))
    conversation = await new_conversation(agents_channel, team.owner, team.project_id, model=model)
    call = stub(agents_channel).Chat(
        agents_pb2.ChatRequest(
            conversation_id=conversation.id, content="be brief", parameters=PARAMETERS
        ),
        metadata=team.owner.metadata,
        timeout=20,
    )
    events = [event async for event in call]
    assert events[-1].HasField("completed")
    body: dict[str, Any] = dict(fake.requests[-1].body)
    temperature, top_p, max_tokens, stop = _sent(kind, body)
    assert temperature == pytest.approx(0.5)
    assert top_p == pytest.approx(0.75)
    assert max_tokens == 77
    assert stop == ["END", "###"]


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        (agents_pb2.GenerationParameters(temperature=2.5), "parameters.temperature"),
        (agents_pb2.GenerationParameters(temperature=float("nan")), "parameters.temperature"),
        (agents_pb2.GenerationParameters(top_p=0), "parameters.top_p"),
        (agents_pb2.GenerationParameters(max_output_tokens=-1), "parameters.max_output_tokens"),
        (agents_pb2.GenerationParameters(stop_sequences=["a"] * 5), "parameters.stop_sequences"),
        (agents_pb2.GenerationParameters(stop_sequences=[""]), "parameters.stop_sequences"),
    ],
)
async def test_out_of_range_parameters_are_refused_before_anything_is_stored(
    agents_channel: grpc.aio.Channel,
    team: Team,
    parameters: agents_pb2.GenerationParameters,
    field: str,
) -> None:
    conversation = await new_conversation(agents_channel, team.owner, team.project_id)
    call = stub(agents_channel).Chat(
        agents_pb2.ChatRequest(
            conversation_id=conversation.id, content="hello", parameters=parameters
        ),
        metadata=team.owner.metadata,
        timeout=20,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call:
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
    listed = await stub(agents_channel).ListMessages(
        agents_pb2.ListMessagesRequest(conversation_id=conversation.id),
        metadata=team.owner.metadata,
    )
    assert list(listed.messages) == []
