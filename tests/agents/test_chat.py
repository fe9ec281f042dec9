"""Chat through the real server: token-by-token relay from each provider (the real SDKs against
fake provider servers), cancellation, provider failures, history, access and usage."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Literal

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from google.rpc import code_pb2

from tests.agents.conftest import (
    ANTHROPIC_MODEL,
    DAILY_TOKEN_QUOTA,
    ECHO_DELAY_MS,
    GEMINI_MODEL,
    RecordingListener,
)
from tests.agents.support import (
    DEADLINE,
    Team,
    chat,
    chat_call,
    delta_text,
    error_reason,
    event_shape,
    messages,
    new_conversation,
    quota_failure,
    read_rest,
    read_text,
    rescript,
    retry_info,
    stub,
    within,
)
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.script import Script, words
from tests.fakes.server import FakeProviderServer
from tests.support.rpc import error_info
from tests.support.waiting import eventually

Kind = Literal["anthropic", "gemini"]
KINDS: list[Kind] = ["anthropic", "gemini"]
MODELS = {"anthropic": ANTHROPIC_MODEL, "gemini": GEMINI_MODEL}


@pytest.fixture
def fakes(anthropic_fake: AnthropicFake, gemini_fake: GeminiFake) -> dict[str, FakeProviderServer]:
    return {"anthropic": anthropic_fake, "gemini": gemini_fake}


async def conversation_for(
    channel: grpc.aio.Channel, team: Team, kind: Kind | Literal["echo"]
) -> str:
    model = "echo" if kind == "echo" else MODELS[kind]
    created = await new_conversation(channel, team.owner, team.project_id, model=model)
    return created.id


def status_names(listed: list[agents_pb2.Message]) -> list[tuple[str, str]]:
    return [
        (
            agents_pb2.MessageRole.Name(message.role),
            agents_pb2.MessageStatus.Name(message.status),
        )
        for message in listed
    ]


# --- relay -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_each_provider_relays_deltas_as_they_arrive(
    kind: Kind,
    fakes: dict[str, FakeProviderServer],
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    tokens = words(25)
    fake = rescript(fakes[kind], Script(tokens=tokens, hold_after=24))
    conversation_id = await conversation_for(agents_channel, team, kind)
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
    started = events[0].started
    assert started.model == MODELS[kind]
    assert events[-2].usage == agents_pb2.TokenUsage(input_tokens=17, output_tokens=25)
    assert events[-1].completed.finish_reason == agents_pb2.FINISH_REASON_STOP

    listed = await messages(agents_channel, team.viewer, conversation_id)
    assert [message.id for message in listed] == [
        started.user_message_id,
        started.assistant_message_id,
    ]
    user, answer = listed
    assert status_names(listed) == [
        ("MESSAGE_ROLE_USER", "MESSAGE_STATUS_COMPLETE"),
        ("MESSAGE_ROLE_ASSISTANT", "MESSAGE_STATUS_COMPLETE"),
    ]
    assert user.content == "Tell me something"
    assert user.author_user_id == team.owner.user_id
    assert answer.content == "".join(tokens)
    assert answer.model == MODELS[kind]
    assert answer.usage == agents_pb2.TokenUsage(input_tokens=17, output_tokens=25)
    assert answer.finish_reason == agents_pb2.FINISH_REASON_STOP


async def test_a_client_that_falls_behind_gets_the_answer_in_fewer_larger_deltas(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    # ~400 KB of answer: far more than the call's flow-control window, so once the client
    # stops reading, the server's writes wait, and what the model sends meanwhile piles up.
    tokens = [f"{i:04d}{'x' * 95} " for i in range(4000)]
    fake = rescript(anthropic_fake, Script(tokens=tokens, hold_after=1))
    conversation_id = await conversation_for(agents_channel, team, "anthropic")
    call = chat_call(agents_channel, team.owner, conversation_id, "a long answer please")
    events = await read_text(call, tokens[0])
    fake.release.set()
    await within(fake.last_token_sent, "the model sending its whole answer")  # unread so far
    events.extend(await read_rest(call))
    assert await call.code() == grpc.StatusCode.OK

    assert event_shape(events) == ["started", "delta", "usage", "completed"]
    assert delta_text(events) == "".join(tokens)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    deltas = sum(1 for event in events if event.HasField("delta"))
    assert deltas < len(tokens) / 2, deltas
    answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
    assert answer.content == "".join(tokens)


async def test_echo_streams_word_by_word_as_produced(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    conversation_id = await conversation_for(agents_channel, team, "echo")
    arrivals: list[float] = []
    events: list[agents_pb2.ChatEvent] = []
    call = chat_call(agents_channel, team.owner, conversation_id, "hello echo")
    async for event in call:
        events.append(event)
        if event.HasField("delta"):
            arrivals.append(time.monotonic())
    deltas = [event.delta.text for event in events if event.HasField("delta")]
    assert len(deltas) >= 20
    assert "hello echo" in "".join(deltas)
    assert events[-1].HasField("completed")
    # Paced at one token per ECHO_DELAY_MS: the first arrived long before the last was made.
    spread = arrivals[-1] - arrivals[0]
    assert spread >= (len(deltas) - 1) * ECHO_DELAY_MS / 1000 * 0.5


async def test_chat_through_envoy_streams_sse_events_as_they_arrive(
    anthropic_fake: AnthropicFake,
    agents_channel: grpc.aio.Channel,
    agents_http: aiohttp.ClientSession,
    team: Team,
) -> None:
    tokens = words(22)
    fake = rescript(anthropic_fake, Script(tokens=tokens, hold_after=21))
    conversation_id = await conversation_for(agents_channel, team, "anthropic")
    frames: list[dict[str, object]] = []
    async with agents_http.post(
        f"/v1/conversations/{conversation_id}:chat",
        json={"content": "stream it"},
        headers=dict(team.owner.metadata),
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                assert frame.startswith(b"data: "), frame
                frames.append(json.loads(frame.removeprefix(b"data: ")))
                seen = "".join(str(f["delta"]["text"]) for f in frames if "delta" in f)  # type: ignore[index]
                if seen == "".join(tokens[:21]):  # while the fake holds the last token
                    assert fake.holding.is_set()
                    assert not fake.last_token_sent.is_set()
                    fake.release.set()
    deltas = [frame["delta"] for frame in frames if "delta" in frame]
    assert "".join(str(delta["text"]) for delta in deltas) == "".join(tokens)  # type: ignore[index]
    assert fake.release.is_set()  # the first 21 arrived while the fake held the last one
    assert [frame["seq"] for frame in frames] == [str(n) for n in range(1, len(frames) + 1)]
    assert "started" in frames[0]
    assert frames[-2]["usage"] == {"inputTokens": "17", "outputTokens": "22"}
    assert frames[-1] == {
        "seq": str(len(frames)),
        "completed": {"finishReason": "FINISH_REASON_STOP"},
    }


# --- cancellation ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pace", ["holding", "streaming"])
async def test_cancel_after_five_deltas_closes_the_provider_and_keeps_the_part(
    kind: Kind,
    pace: str,
    fakes: dict[str, FakeProviderServer],
    agents_channel: grpc.aio.Channel,
    team: Team,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    script = (
        Script(tokens=words(30), hold_after=10)
        if pace == "holding"
        else Script(tokens=words(400), token_delay=0.002)
    )
    fake = rescript(fakes[kind], script)
    conversation_id = await conversation_for(agents_channel, team, kind)
    call = chat_call(agents_channel, team.owner, conversation_id, "a long answer please")
    seen = delta_text(await read_text(call, "".join(words(5)), of="".join(script.tokens)))
    call.cancel()
    await within(fake.disconnected, "the fake provider seeing its connection closed")
    assert fake.streams_completed == 0

    async def settled() -> agents_pb2.Message | None:
        answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
        return answer if answer.status == agents_pb2.MESSAGE_STATUS_CANCELLED else None

    answer = await eventually(settled, timeout=DEADLINE)
    # What the server had relayed when the client went away: at least what the client saw.
    assert answer.content.startswith(seen)
    assert "".join(script.tokens).startswith(answer.content)
    assert len(answer.content) < len("".join(script.tokens))
    assert answer.usage.output_tokens > 0
    assert [record.getMessage() for record in caplog.records] == []  # an ordinary end


async def test_many_clients_leaving_at_once_settle_every_answer_quietly(
    anthropic_fake: AnthropicFake,
    agents_channel: grpc.aio.Channel,
    team: Team,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Clients that go while their events are being sent (not while the server waits on
    the model) leave their streams suspended mid-send: each is closed once, quietly."""
    caplog.set_level(logging.ERROR)
    script = Script(tokens=words(2000), token_delay=0.001)
    rescript(anthropic_fake, script)
    conversations = [await conversation_for(agents_channel, team, "anthropic") for _ in range(20)]
    calls = [
        chat_call(agents_channel, team.owner, conversation_id, "a long answer please")
        for conversation_id in conversations
    ]
    for call in calls:
        await read_text(call, "".join(words(3)), of="".join(script.tokens))
    for call in calls:
        call.cancel()

    async def all_cancelled() -> bool | None:
        for conversation_id in conversations:
            answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
            if answer.status != agents_pb2.MESSAGE_STATUS_CANCELLED:
                return None
        return True

    await eventually(all_cancelled, timeout=DEADLINE)
    assert [record.getMessage() for record in caplog.records] == []


async def test_a_passed_deadline_cancels_the_answer(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(anthropic_fake, Script(tokens=words(30), hold_after=3))
    conversation_id = await conversation_for(agents_channel, team, "anthropic")
    call = chat_call(agents_channel, team.owner, conversation_id, "slow", timeout=1.0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await within(fake.disconnected, "the fake provider seeing its connection closed")

    async def settled() -> agents_pb2.Message | None:
        answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
        return answer if answer.status == agents_pb2.MESSAGE_STATUS_CANCELLED else None

    answer = await eventually(settled, timeout=DEADLINE)
    assert answer.content == "".join(words(3))


# --- provider failures -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_twice_then_the_chat_succeeds(
    kind: Kind, fakes: dict[str, FakeProviderServer], agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(fakes[kind], Script(tokens=words(20), statuses=[429, 429]))
    conversation_id = await conversation_for(agents_channel, team, kind)
    result = await chat(agents_channel, team.owner, conversation_id)
    assert result.error is None
    assert result.text == "".join(words(20))
    assert result.kinds[-1] == "completed"
    assert len(fake.requests) == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_forever_is_resource_exhausted_with_retry_info(
    kind: Kind, fakes: dict[str, FakeProviderServer], agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(fakes[kind], Script(status_forever=429, retry_after="0.02"))
    conversation_id = await conversation_for(agents_channel, team, kind)
    result = await chat(agents_channel, team.owner, conversation_id)
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(result.error).reason == "PROVIDER_RATE_LIMITED"
    retry = retry_info(result.error)
    assert retry is not None
    assert retry.retry_delay.ToTimedelta().total_seconds() == pytest.approx(0.02)
    # REST callers see the same status in-band, since `started` had already gone out.
    assert result.kinds == ["started", "error"]
    assert result.events[-1].error.code == code_pb2.RESOURCE_EXHAUSTED
    assert len(fake.requests) == 3

    answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
    assert answer.status == agents_pb2.MESSAGE_STATUS_FAILED
    assert answer.error.code == code_pb2.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_after_ten_tokens_is_in_band_and_keeps_the_ten(
    kind: Kind, fakes: dict[str, FakeProviderServer], agents_channel: grpc.aio.Channel, team: Team
) -> None:
    rescript(fakes[kind], Script(tokens=words(30), error_after=10))
    conversation_id = await conversation_for(agents_channel, team, kind)
    result = await chat(agents_channel, team.owner, conversation_id)
    assert result.shape == ["started", "delta", "error"]
    assert result.text == "".join(words(10))
    assert [event.seq for event in result.events] == list(range(1, len(result.events) + 1))
    in_band = result.events[-1].error
    assert in_band.code == code_pb2.UNAVAILABLE
    assert error_reason(in_band) == "PROVIDER_UNAVAILABLE"
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(result.error).reason == "PROVIDER_UNAVAILABLE"

    answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
    assert answer.status == agents_pb2.MESSAGE_STATUS_FAILED
    assert answer.content == "".join(words(10))
    assert answer.error.code == code_pb2.UNAVAILABLE
    assert error_reason(answer.error) == "PROVIDER_UNAVAILABLE"


# --- history ---------------------------------------------------------------------------


async def test_a_second_chat_sends_the_first_turn(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(anthropic_fake, Script(tokens=words(4, "first")))
    conversation_id = await conversation_for(agents_channel, team, "anthropic")
    await chat(agents_channel, team.owner, conversation_id, "What is Forge?")
    rescript(fake, Script(tokens=words(3, "second")))
    result = await chat(agents_channel, team.owner, conversation_id, "Tell me more.")
    assert result.error is None
    assert fake.requests[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is Forge?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "".join(words(4, "first"))}]},
        {"role": "user", "content": [{"type": "text", "text": "Tell me more."}]},
    ]


async def test_gemini_gets_the_history_in_its_own_format(
    gemini_fake: GeminiFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(gemini_fake, Script(tokens=words(2, "one")))
    conversation_id = await conversation_for(agents_channel, team, "gemini")
    await chat(agents_channel, team.owner, conversation_id, "first")
    await chat(agents_channel, team.owner, conversation_id, "second")
    assert fake.requests[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "first"}]},
        {"role": "model", "parts": [{"text": "".join(words(2, "one"))}]},
        {"role": "user", "parts": [{"text": "second"}]},
    ]


async def test_history_over_the_token_budget_is_summarised(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(anthropic_fake, Script(tokens=words(3)))
    conversation_id = await conversation_for(agents_channel, team, "anthropic")
    long_question = "word " * 600  # ~750 tokens: more than the whole budget (400)
    await chat(agents_channel, team.owner, conversation_id, long_question)
    second = await chat(agents_channel, team.owner, conversation_id, "short one")
    assert second.kinds[:2] == ["summary", "started"]
    await chat(agents_channel, team.owner, conversation_id, "and another")
    # One answer, then a summary and an answer, then an answer.
    assert len(fake.requests) == 4
    sent = fake.requests[-1].body["messages"]
    assert isinstance(sent, list)
    texts = [message["content"][0]["text"] for message in sent]
    # The oldest turn no longer fits: the summary (what the fake wrote) stands for it.
    assert texts == ["short one", "".join(words(3)), "and another"]
    assert "".join(words(3)).strip() in str(fake.requests[-1].body["system"])


async def test_an_agent_profile_gives_its_system_prompt(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    fake = rescript(anthropic_fake, Script(tokens=words(2)))
    agent = await stub(agents_channel).GetAgent(
        agents_pb2.GetAgentRequest(project_id=team.project_id, agent_id="debugger"),
        metadata=team.owner.metadata,
    )
    created = await new_conversation(
        agents_channel, team.owner, team.project_id, agent_id="debugger", model=ANTHROPIC_MODEL
    )
    await chat(agents_channel, team.owner, created.id, "why does it crash?")
    assert fake.requests[-1].body["system"] == agent.system_prompt


async def test_the_chat_model_overrides_the_conversation_model(
    gemini_fake: GeminiFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    rescript(gemini_fake, Script(tokens=words(2)))
    conversation_id = await conversation_for(agents_channel, team, "echo")
    result = await chat(
        agents_channel, team.owner, conversation_id, "hi", model="gemini/gemini-other"
    )
    assert result.started.model == "gemini/gemini-other"
    assert gemini_fake.requests[-1].path == "/v1beta/models/gemini-other:streamGenerateContent"


# --- listeners -------------------------------------------------------------------------


async def test_answer_listeners_run_and_their_artifacts_stream_before_completed(
    agents_channel: grpc.aio.Channel, team: Team, answer_listener: RecordingListener
) -> None:
    conversation_id = await conversation_for(agents_channel, team, "echo")
    result = await chat(
        agents_channel, team.owner, conversation_id, "write a function that adds two numbers"
    )
    assert result.error is None
    assert "```python" in result.text
    kinds = result.kinds
    artifact_at = [index for index, kind in enumerate(kinds) if kind == "artifact"]
    assert artifact_at
    assert kinds.index("usage") < min(artifact_at)
    assert max(artifact_at) == len(kinds) - 2
    assert kinds[-1] == "completed"
    ours = f"artifact-of-{result.started.assistant_message_id}"
    artifacts = [event.artifact for event in result.events if event.HasField("artifact")]
    assert ours in [artifact.id for artifact in artifacts]
    heard = [a for a in answer_listener.answers if str(a.message_id) == ours.split("of-")[1]]
    assert len(heard) == 1
    assert heard[0].text == result.text
    answer = (await messages(agents_channel, team.owner, conversation_id))[-1]
    assert ours in answer.artifact_ids


# --- access ----------------------------------------------------------------------------


async def test_a_stranger_cannot_chat_in_list_or_export_a_conversation(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    conversation_id = await conversation_for(agents_channel, team, "echo")
    await chat(agents_channel, team.owner, conversation_id, "private")
    agents = stub(agents_channel)
    stranger = team.stranger.metadata
    result = await chat(agents_channel, team.stranger, conversation_id, "let me in")
    assert result.events == []
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(result.error).reason == "CONVERSATION_NOT_FOUND"
    for call in (
        agents.ListMessages(
            agents_pb2.ListMessagesRequest(conversation_id=conversation_id), metadata=stranger
        ),
        agents.ExportConversation(
            agents_pb2.ExportConversationRequest(conversation_id=conversation_id),
            metadata=stranger,
        ),
        agents.GetConversation(
            agents_pb2.GetConversationRequest(conversation_id=conversation_id), metadata=stranger
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(caught.value).reason == "CONVERSATION_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await agents.ListConversations(
            agents_pb2.ListConversationsRequest(project_id=team.project_id), metadata=stranger
        )
    assert listing.value.code() == grpc.StatusCode.NOT_FOUND
    # Nothing the stranger did reached the conversation.
    assert len(await messages(agents_channel, team.owner, conversation_id)) == 2


async def test_a_viewer_reads_but_cannot_chat(agents_channel: grpc.aio.Channel, team: Team) -> None:
    conversation_id = await conversation_for(agents_channel, team, "echo")
    result = await chat(agents_channel, team.viewer, conversation_id, "may I?")
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(result.error).reason == "PROJECT_ROLE_TOO_LOW"
    assert await messages(agents_channel, team.viewer, conversation_id) == []


async def test_an_empty_message_is_invalid(agents_channel: grpc.aio.Channel, team: Team) -> None:
    conversation_id = await conversation_for(agents_channel, team, "echo")
    result = await chat(agents_channel, team.owner, conversation_id, "   ")
    assert result.error is not None
    assert result.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert result.events == []


# --- usage -----------------------------------------------------------------------------


async def test_usage_counts_the_providers_tokens_and_the_quota_stops_the_fourth_chat(
    anthropic_fake: AnthropicFake, agents_channel: grpc.aio.Channel, team: Team
) -> None:
    # 3 x (310 + 30) = 1020 tokens: the third chat crosses the 1000-token daily quota.
    rescript(anthropic_fake, Script(tokens=words(30), input_tokens=310))
    conversation_id = await conversation_for(agents_channel, team, "anthropic")
    for number in range(3):
        result = await chat(agents_channel, team.owner, conversation_id, f"question {number}")
        assert result.error is None
        assert result.events[-2].usage == agents_pb2.TokenUsage(input_tokens=310, output_tokens=30)

    usage = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.owner.metadata
    )
    assert [(r.model, r.input_tokens, r.output_tokens, r.request_count) for r in usage.records] == [
        (ANTHROPIC_MODEL, 930, 90, 3)
    ]
    assert usage.records[0].day == usage.end_day
    assert (usage.input_tokens, usage.output_tokens) == (930, 90)
    assert usage.daily_token_quota == DAILY_TOKEN_QUOTA
    assert usage.tokens_used_today == 1020
    assert usage.quota_remaining_tokens == 0
    reset = usage.quota_reset_time.ToDatetime(tzinfo=UTC)
    assert reset > datetime.now(UTC)
    assert (reset.hour, reset.minute, reset.second) == (0, 0, 0)

    fourth = await chat(agents_channel, team.owner, conversation_id, "one more")
    assert fourth.events == []
    assert fourth.error is not None
    assert fourth.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(fourth.error).reason == "DAILY_TOKEN_QUOTA_EXCEEDED"
    failure = quota_failure(fourth.error)
    assert failure is not None
    assert failure.violations[0].subject == f"user:{team.owner.user_id}"
    # The refused message was not stored.
    assert len(await messages(agents_channel, team.owner, conversation_id)) == 6
    # Another user of the same project still has their whole quota.
    other = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.viewer.metadata
    )
    assert other.tokens_used_today == 0
    assert other.quota_remaining_tokens == DAILY_TOKEN_QUOTA


async def test_usage_days_are_validated(agents_channel: grpc.aio.Channel, team: Team) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(agents_channel).GetUsage(
            agents_pb2.GetUsageRequest(start_day="2024-13-01", end_day="yesterday"),
            metadata=team.owner.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("kind", KINDS)
async def test_an_agents_temperature_reaches_the_provider(
    kind: Kind,
    fakes: dict[str, FakeProviderServer],
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    fake = rescript(fakes[kind], Script(tokens=words(2)))
    agent = await stub(agents_channel).CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(name=f"Cool {kind}", model=MODELS[kind], temperature=0.25),
        ),
        metadata=team.owner.metadata,
    )
    created = await new_conversation(agents_channel, team.owner, team.project_id, agent_id=agent.id)
    await chat(agents_channel, team.owner, created.id, "be precise")
    body = fake.requests[-1].body
    config = body if kind == "anthropic" else body["generationConfig"]
    assert isinstance(config, dict)
    assert config["temperature"] == pytest.approx(0.25)
