"""Answers outlive their server: the text streamed is saved as it goes, and when the server
is SIGKILLed mid-answer, a sweeper (of the restarted server, or of another one on the same
database) settles the answer as INTERRUPTED with that text and charges it; an answer still
streaming on a live server is never swept."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from forge.agents.v1 import agents_pb2

from server.db.embedded import EmbeddedPostgres
from server.llm import estimate_tokens
from tests.agents.support import (
    Team,
    chat_call,
    messages,
    new_conversation,
    new_team,
    read_events,
    read_rest,
    stub,
)
from tests.support.accounts import Account, register
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

SAVE_INTERVAL = 0.2
ORPHAN_AFTER = 1.5
"""Well above the save interval, and below the gaps of the slow answer (the test of a
silent answer relies on the saver marking it alive between its deltas)."""
FAST_TOKEN_MS = 40
PROMPT = " ".join(f"word{number}" for number in range(400))
"""The echo model repeats it: an answer of ~400 tokens, ~16 s at FAST_TOKEN_MS."""

Spawn = Callable[[float], Awaitable[ServerProcess]]
ChatCall = grpc.aio.UnaryStreamCall[agents_pb2.ChatRequest, agents_pb2.ChatEvent]


@pytest.fixture
async def spawn(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Spawn]:
    """Starts `python -m server` processes sharing one fresh database and secret; each
    with the echo model at the pace given (milliseconds per token)."""
    url = await postgres.ensure_database(f"forge_durable_{secrets.token_hex(4)}")
    secret = secrets.token_hex(32)
    started: list[ServerProcess] = []

    async def start(token_delay_ms: float) -> ServerProcess:
        process = ServerProcess(
            {
                "FORGE_DATABASE_URL": url,
                "FORGE_JWT_SECRET": secret,
                "FORGE_DATA_DIR": str(tmp_path_factory.mktemp("durable")),
                "FORGE_LOG_FORMAT": "text",
                "FORGE_LOG_LEVEL": "WARNING",
                "FORGE_BCRYPT_ROUNDS": "4",
                "FORGE_SHUTDOWN_GRACE_SECONDS": "1",
                "FORGE_ECHO_TOKEN_DELAY_MS": str(token_delay_ms),
                "FORGE_CHAT_SAVE_INTERVAL_SECONDS": str(SAVE_INTERVAL),
                "FORGE_CHAT_ORPHAN_AFTER_SECONDS": str(ORPHAN_AFTER),
                "FORGE_CHAT_SWEEP_INTERVAL_SECONDS": "0.2",
            }
        )
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.kill()


def channel_to(process: ServerProcess) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{process.port}")


async def answer_of(
    channel: grpc.aio.Channel, account: Account, conversation_id: str
) -> agents_pb2.Message:
    answer = (await messages(channel, account, conversation_id))[-1]
    assert answer.role == agents_pb2.MESSAGE_ROLE_ASSISTANT
    return answer


async def start_answer(
    channel: grpc.aio.Channel, team: Team, *, agent_id: str = ""
) -> tuple[str, ChatCall]:
    """A chat with the echo model that streams; returns its conversation and the call, its
    `started` event read."""
    conversation = await new_conversation(
        channel, team.owner, team.project_id, model="echo", agent_id=agent_id
    )
    call = chat_call(channel, team.owner, conversation.id, PROMPT, timeout=120)
    [started] = await read_events(call, 1)
    assert started.HasField("started")
    return conversation.id, call


async def saved_while_streaming(
    channel: grpc.aio.Channel, team: Team, conversation_id: str, call: ChatCall, words: int
) -> tuple[str, str]:
    """Reads `words` deltas, then waits until ListMessages shows at least them saved in the
    answer still in progress; returns (the text read, the text seen saved)."""
    read = "".join(event.delta.text for event in await read_events(call, words))

    async def saved() -> str | None:
        answer = await answer_of(channel, team.owner, conversation_id)
        assert answer.status == agents_pb2.MESSAGE_STATUS_IN_PROGRESS
        return answer.content if answer.content.startswith(read) else None

    return read, await eventually(saved, timeout=20)


async def received_until_killed(call: ChatCall) -> str:
    """The rest of what the client received; the call then fails (its server is gone)."""
    text = ""
    try:
        while (event := await asyncio.wait_for(call.read(), 20)) is not grpc.aio.EOF:
            assert isinstance(event, agents_pb2.ChatEvent)
            text += event.delta.text
    except grpc.aio.AioRpcError:
        return text
    raise AssertionError("the answer ended although its server was killed")


async def interrupted(
    channel: grpc.aio.Channel, team: Team, conversation_id: str
) -> agents_pb2.Message:
    async def swept() -> agents_pb2.Message | None:
        answer = await answer_of(channel, team.owner, conversation_id)
        return answer if answer.status == agents_pb2.MESSAGE_STATUS_INTERRUPTED else None

    return await eventually(swept, timeout=30)


def check_interrupted(answer: agents_pb2.Message, seen_saved: str, received: str) -> None:
    """The answer keeps everything seen saved and (at least most of) what the client got:
    the crash lost at most the text streamed after the last save."""
    assert answer.content.startswith(seen_saved)
    assert received.startswith(answer.content) or answer.content.startswith(received)
    assert len(answer.content) >= len(received) // 2
    assert answer.usage.input_tokens > 0
    assert answer.usage.output_tokens == estimate_tokens(answer.content)
    assert answer.finish_reason == agents_pb2.FINISH_REASON_UNSPECIFIED


async def usage_records(
    channel: grpc.aio.Channel, account: Account
) -> list[tuple[str, int, int, int]]:
    usage = await stub(channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=account.metadata, timeout=10
    )
    return [(r.model, r.input_tokens, r.output_tokens, r.request_count) for r in usage.records]


async def test_a_killed_servers_answer_is_interrupted_with_its_saved_text_and_charged(
    spawn: Spawn,
) -> None:
    first = await spawn(FAST_TOKEN_MS)
    async with channel_to(first) as a:
        await register(a, display_name="Admin")
        team = await new_team(a)
        conversation_id, call = await start_answer(a, team)
        read, seen_saved = await saved_while_streaming(a, team, conversation_id, call, 30)
        assert await usage_records(a, team.owner) == []  # charged only once it ends
        first.send_signal(signal.SIGKILL)
        await first.wait(10)
        received = read + await received_until_killed(call)

    second = await spawn(FAST_TOKEN_MS)
    async with channel_to(second) as b:
        answer = await interrupted(b, team, conversation_id)
        check_interrupted(answer, seen_saved, received)
        assert await usage_records(b, team.owner) == [
            ("echo", answer.usage.input_tokens, answer.usage.output_tokens, 1)
        ]
        # Swept once: a later sweep changes nothing.
        assert await answer_of(b, team.owner, conversation_id) == answer


async def test_an_answer_cancelled_after_its_server_died_is_swept_as_cancelled(
    spawn: Spawn,
) -> None:
    first, second = await spawn(FAST_TOKEN_MS), await spawn(FAST_TOKEN_MS)
    async with channel_to(first) as a, channel_to(second) as b:
        await register(a, display_name="Admin")
        team = await new_team(a)
        conversation_id, call = await start_answer(a, team)
        read, seen_saved = await saved_while_streaming(a, team, conversation_id, call, 30)
        answer_id = (await answer_of(b, team.owner, conversation_id)).id
        first.send_signal(signal.SIGKILL)
        # Cancelled through the live server before its sweeper finds the answer orphaned
        # (whether the killed writer saw the cancel or not, the answer ends cancelled).
        await stub(b).CancelAnswer(
            agents_pb2.CancelAnswerRequest(conversation_id=conversation_id, message_id=answer_id),
            metadata=team.owner.metadata,
            timeout=30,
        )
        await first.wait(10)
        received = read + await received_until_killed(call)

        async def swept() -> agents_pb2.Message | None:
            answer = await answer_of(b, team.owner, conversation_id)
            return answer if answer.status != agents_pb2.MESSAGE_STATUS_IN_PROGRESS else None

        answer = await eventually(swept, timeout=30)
        assert answer.status == agents_pb2.MESSAGE_STATUS_CANCELLED
        assert answer.content.startswith(seen_saved)
        assert received.startswith(answer.content) or answer.content.startswith(received)


async def test_an_answer_streaming_on_a_live_server_is_never_swept(spawn: Spawn) -> None:
    # The live answer is slow: a delta every 2 s, longer than ORPHAN_AFTER, so only the
    # saver marking it alive keeps the sweepers away; 6 deltas (its agent's limit), ~12 s.
    live_server = await spawn(2000)
    doomed_server = await spawn(FAST_TOKEN_MS)
    async with channel_to(live_server) as live, channel_to(doomed_server) as doomed:
        await register(live, display_name="Admin")
        live_team, doomed_team = await new_team(live), await new_team(live)
        agent = await stub(live).CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=live_team.project_id,
                agent=agents_pb2.Agent(name="Brief", model="echo", max_output_tokens=6),
            ),
            metadata=live_team.owner.metadata,
            timeout=10,
        )
        live_id, live_call = await start_answer(live, live_team, agent_id=agent.id)

        # Another server dies mid-answer; the live server's sweeper settles that answer
        # (so it ran while the slow answer was streaming, older than ORPHAN_AFTER by then).
        doomed_id, doomed_call = await start_answer(doomed, doomed_team)
        read, seen_saved = await saved_while_streaming(
            doomed, doomed_team, doomed_id, doomed_call, 20
        )
        doomed_server.send_signal(signal.SIGKILL)
        await doomed_server.wait(10)
        received = read + await received_until_killed(doomed_call)
        check_interrupted(await interrupted(live, doomed_team, doomed_id), seen_saved, received)

        during = await answer_of(live, live_team.owner, live_id)
        assert during.status == agents_pb2.MESSAGE_STATUS_IN_PROGRESS
        events = await asyncio.wait_for(read_rest(live_call), 60)
        assert events[-1].HasField("completed"), events[-3:]
        text = "".join(event.delta.text for event in events)
        after = await answer_of(live, live_team.owner, live_id)
        assert after.status == agents_pb2.MESSAGE_STATUS_COMPLETE
        assert after.content == text
        assert len(text.split()) == 6
        # Charged once, by its own server, with the model's own count.
        [(model, _, output_tokens, requests)] = await usage_records(live, live_team.owner)
        assert (model, output_tokens, requests) == ("echo", 6, 1)


async def test_a_chat_retried_on_another_server_follows_the_answer_being_written(
    spawn: Spawn,
) -> None:
    writer_server, retry_server = await spawn(FAST_TOKEN_MS), await spawn(FAST_TOKEN_MS)
    async with channel_to(writer_server) as writer, channel_to(retry_server) as other:
        await register(writer, display_name="Admin")
        team = await new_team(writer)
        conversation = await new_conversation(writer, team.owner, team.project_id, model="echo")
        request = agents_pb2.ChatRequest(
            conversation_id=conversation.id,
            content=" ".join(f"word{number}" for number in range(80)),
            request_id="retried-elsewhere",
        )
        original = stub(writer).Chat(request, metadata=team.owner.metadata, timeout=120)
        first = await read_events(original, 5)
        retried = [
            event
            async for event in stub(other).Chat(request, metadata=team.owner.metadata, timeout=120)
        ]
        first.extend(await read_rest(original))

    assert retried[0].started == first[0].started
    assert retried[-1].WhichOneof("event") == "completed"
    assert "".join(e.delta.text for e in retried) == "".join(e.delta.text for e in first)
    assert len("".join(e.delta.text for e in retried)) > 0
    assert retried[-2].usage == first[-2].usage
