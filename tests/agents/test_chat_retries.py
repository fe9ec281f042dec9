"""Chat with a request id: a retry (a lost connection, a timeout) replays the answer from
storage, or follows it while it is still being written; the model is asked once, the
user's message is stored once and the tokens are charged once."""

from __future__ import annotations

import json
import uuid

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2

from tests.agents.conftest import ANTHROPIC_MODEL
from tests.agents.support import (
    ChatResult,
    Team,
    messages,
    new_conversation,
    read_events,
    read_rest,
    read_text,
    rescript,
    stub,
    within,
)
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.script import Script, words
from tests.support.rpc import error_info, field_violations

DEADLINE = 20.0


def _request(conversation_id: str, content: str, request_id: str) -> agents_pb2.ChatRequest:
    return agents_pb2.ChatRequest(
        conversation_id=conversation_id, content=content, request_id=request_id
    )


async def _chat(
    channel: grpc.aio.Channel, team: Team, request: agents_pb2.ChatRequest
) -> ChatResult:
    result = ChatResult(events=[])
    call = stub(channel).Chat(request, metadata=team.owner.metadata, timeout=DEADLINE)
    try:
        async for event in call:
            result.events.append(event)
    except grpc.aio.AioRpcError as error:
        result.error = error
    return result


async def _conversation(channel: grpc.aio.Channel, team: Team) -> str:
    created = await new_conversation(channel, team.owner, team.project_id, model=ANTHROPIC_MODEL)
    return created.id


async def test_a_retry_of_a_finished_chat_replays_it_without_asking_the_model_again(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    tokens = words(12)
    fake = rescript(anthropic_fake, Script(tokens=tokens))
    conversation_id = await _conversation(agents_channel, team)
    request = _request(conversation_id, "once please", str(uuid.uuid4()))
    first = await _chat(agents_channel, team, request)
    assert first.error is None
    assert first.kinds[-1] == "completed"
    usage_before = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.owner.metadata
    )

    again = await _chat(agents_channel, team, request)
    assert again.error is None
    assert again.kinds == ["started", "delta", "usage", "completed"]
    assert again.started == first.started
    assert again.text == first.text == "".join(tokens)
    assert again.events[-2].usage == first.events[-2].usage
    assert again.events[-1].completed == first.events[-1].completed
    assert len(fake.requests) == 1
    stored = await messages(agents_channel, team.owner, conversation_id)
    assert [message.content for message in stored] == ["once please", "".join(tokens)]
    usage_after = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.owner.metadata
    )
    assert usage_after == usage_before


async def test_a_retry_while_the_answer_streams_follows_it_to_the_end(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    tokens = words(30)
    fake = rescript(anthropic_fake, Script(tokens=tokens, hold_after=10))
    conversation_id = await _conversation(agents_channel, team)
    request = _request(conversation_id, "follow me", "follow-1")
    original = stub(agents_channel).Chat(request, metadata=team.owner.metadata, timeout=DEADLINE)
    # Started and the first 10 tokens; then the fake holds.
    first_events = await read_text(original, "".join(tokens[:10]))
    await within(fake.holding, "the model holding its answer")

    retry = stub(agents_channel).Chat(request, metadata=team.owner.metadata, timeout=DEADLINE)
    [started] = await read_events(retry, 1)
    assert started.started == first_events[0].started
    fake.release.set()
    retried = [started, *await read_rest(retry)]
    first_events.extend(await read_rest(original))

    assert await retry.code() == grpc.StatusCode.OK
    kinds = [event.WhichOneof("event") for event in retried]
    assert kinds[0] == "started"
    assert kinds[-2:] == ["usage", "completed"]
    assert set(kinds[1:-2]) <= {"delta"}
    text = "".join(event.delta.text for event in retried)
    assert text == "".join(event.delta.text for event in first_events) == "".join(tokens)
    assert [event.seq for event in retried] == list(range(1, len(retried) + 1))
    assert len(fake.requests) == 1
    assert len(await messages(agents_channel, team.owner, conversation_id)) == 2


async def test_the_same_id_with_another_message_is_refused(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    rescript(anthropic_fake, Script(tokens=words(3)))
    conversation_id = await _conversation(agents_channel, team)
    first = await _chat(agents_channel, team, _request(conversation_id, "one", "same-id"))
    assert first.error is None
    other = await _chat(agents_channel, team, _request(conversation_id, "two", "same-id"))
    assert other.error is not None
    assert other.events == []
    assert other.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(other.error).reason == "REQUEST_ID_REUSED"
    assert "request_id" in field_violations(other.error)
    assert len(await messages(agents_channel, team.owner, conversation_id)) == 2


async def test_a_retry_of_a_failed_answer_ends_with_the_same_error(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    # Three 529s (overloaded) exhaust the provider retries: the answer fails.
    rescript(anthropic_fake, Script(tokens=words(3), statuses=[529, 529, 529]))
    conversation_id = await _conversation(agents_channel, team)
    request = _request(conversation_id, "fail", str(uuid.uuid4()))
    first = await _chat(agents_channel, team, request)
    again = await _chat(agents_channel, team, request)
    assert first.error is not None
    assert again.error is not None
    assert again.error.code() == first.error.code()
    assert error_info(again.error).reason == error_info(first.error).reason
    assert again.kinds == ["started", "error"]
    assert again.events[-1].error.code == first.events[-1].error.code


async def test_a_retry_over_rest_with_the_idempotency_key_header(
    anthropic_fake: AnthropicFake,
    agents_channel: grpc.aio.Channel,
    agents_http: aiohttp.ClientSession,
    team: Team,
) -> None:
    tokens = words(5)
    fake = rescript(anthropic_fake, Script(tokens=tokens))
    conversation_id = await _conversation(agents_channel, team)
    headers = {**dict(team.owner.metadata), "Idempotency-Key": str(uuid.uuid4())}

    async def post() -> list[dict[str, object]]:
        async with agents_http.post(
            f"/v1/conversations/{conversation_id}:chat",
            json={"content": "over rest"},
            headers=headers,
        ) as response:
            assert response.status == 200
            body = await response.read()
        return [json.loads(frame.removeprefix(b"data: ")) for frame in body.split(b"\n\n") if frame]

    first, again = await post(), await post()
    assert first[0] == again[0]
    assert "started" in first[0]
    assert "".join(f["delta"]["text"] for f in first if "delta" in f) == "".join(tokens)  # type: ignore[index]
    assert [f["delta"] for f in again if "delta" in f] == [{"text": "".join(tokens)}]
    assert again[-1]["completed"] == first[-1]["completed"]
    assert len(fake.requests) == 1


@pytest.mark.parametrize("request_id", ["", "x" * 200])
async def test_no_id_means_no_replay_and_a_bad_id_is_invalid(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team, request_id: str
) -> None:
    fake = rescript(anthropic_fake, Script(tokens=words(2)))
    conversation_id = await _conversation(agents_channel, team)
    request = _request(conversation_id, "plain", request_id)
    first = await _chat(agents_channel, team, request)
    second = await _chat(agents_channel, team, request)
    if request_id:
        assert first.error is not None
        assert first.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request_id" in field_violations(first.error)
        assert len(fake.requests) == 0
    else:
        assert first.error is None
        assert second.error is None
        assert first.started != second.started
        assert len(fake.requests) == 2
