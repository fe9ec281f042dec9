"""CancelAnswer stops an answer from any server process: two servers share one database; an
answer streaming on A is cancelled through B (gRPC, and REST through Envoy). A's stream
ends with an `error` event (CANCELLED, ANSWER_CANCELLED), and the answer is kept CANCELLED
with the text A had streamed. A notification A missed (its listening connection was lost)
is caught from the database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import grpc
import pytest
from forge.agents.v1 import agents_pb2

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from server.core.cancels import APPLICATION_NAME
from server.db.embedded import EmbeddedPostgres
from server.llm import estimate_tokens
from tests.agents.support import (
    Team,
    chat,
    chat_call,
    error_reason,
    messages,
    new_conversation,
    new_team,
    read_events,
    stub,
)
from tests.conftest import DESCRIPTOR, make_settings
from tests.support.accounts import Account, register
from tests.support.testing_service import TEST_MODULES
from tests.support.waiting import eventually

TOKEN_MS = 40
PROMPT = " ".join(f"word{number}" for number in range(400))
"""The echo model repeats it: an answer of ~400 tokens, ~16 s at TOKEN_MS."""
DEADLINE = 20
LISTENERS = "FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"
"""The listening connections of the servers on this test's database."""

ChatCall = grpc.aio.UnaryStreamCall[agents_pb2.ChatRequest, agents_pb2.ChatEvent]


@dataclass
class Pair:
    a: ForgeServer
    b: ForgeServer
    dsn: str

    def channel(self, app: ForgeServer) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")


@pytest.fixture(scope="module")
async def pair(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    url = await postgres.ensure_database(f"forge_cancel_{secrets.token_hex(4)}")
    secret = secrets.token_hex(32)
    servers = [
        ForgeServer(
            make_settings(
                url,
                tmp_path_factory.mktemp(f"cancel-{name}"),
                jwt_secret=secret,
                default_model="echo",
                echo_token_delay_ms=TOKEN_MS,
            ),
            TEST_MODULES,
        )
        for name in ("a", "b")
    ]
    for app in servers:
        await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{servers[0].port}") as channel:
            await register(channel, display_name="Admin")  # no test account is the admin
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        yield Pair(servers[0], servers[1], dsn)
    finally:
        for app in servers:
            await app.stop(grace=0)


@pytest.fixture(scope="module")
async def a(pair: Pair) -> AsyncIterator[grpc.aio.Channel]:
    async with pair.channel(pair.a) as channel:
        yield channel


@pytest.fixture(scope="module")
async def b(pair: Pair) -> AsyncIterator[grpc.aio.Channel]:
    async with pair.channel(pair.b) as channel:
        yield channel


@pytest.fixture
async def team(a: grpc.aio.Channel) -> Team:
    return await new_team(a)


async def streaming(
    channel: grpc.aio.Channel, team: Team, words: int
) -> tuple[str, str, ChatCall, str]:
    """A long echo answer streaming on `channel`'s server, `words` deltas read: its
    conversation, message id, call, and the text read."""
    conversation = await new_conversation(channel, team.owner, team.project_id, model="echo")
    call = chat_call(channel, team.owner, conversation.id, PROMPT, timeout=60)
    [started] = await read_events(call, 1)
    assert started.HasField("started")
    read = "".join(event.delta.text for event in await read_events(call, words))
    return conversation.id, started.started.assistant_message_id, call, read


async def rest_of(call: ChatCall) -> tuple[list[agents_pb2.ChatEvent], grpc.aio.AioRpcError]:
    """The events until the call ends, which it must with an error."""
    events: list[agents_pb2.ChatEvent] = []
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            assert isinstance(event, agents_pb2.ChatEvent)
            events.append(event)
    except grpc.aio.AioRpcError as error:
        return events, error
    raise AssertionError(
        f"the stream ended without an error: {[e.WhichOneof('event') for e in events]}"
    )


def check_stopped(
    events: list[agents_pb2.ChatEvent], error: grpc.aio.AioRpcError, read: str
) -> str:
    """The stream ended with the in-band CANCELLED / ANSWER_CANCELLED error; returns all
    the text it streamed."""
    assert events
    assert events[-1].HasField("error"), [e.WhichOneof("event") for e in events]
    assert events[-1].error.code == grpc.StatusCode.CANCELLED.value[0]
    assert error_reason(events[-1].error) == "ANSWER_CANCELLED"
    assert error.code() == grpc.StatusCode.CANCELLED
    assert all(e.HasField("delta") for e in events[:-1])
    return read + "".join(e.delta.text for e in events[:-1])


def check_cancelled(message: agents_pb2.Message, streamed: str) -> None:
    assert message.status == agents_pb2.MESSAGE_STATUS_CANCELLED
    assert message.content == streamed
    assert 0 < len(message.content) < len(PROMPT)  # cut short
    assert message.usage.output_tokens == estimate_tokens(message.content)
    assert not message.HasField("error")


async def cancel(
    channel: grpc.aio.Channel, account: Account, conversation_id: str, message_id: str
) -> agents_pb2.Message:
    return await stub(channel).CancelAnswer(
        agents_pb2.CancelAnswerRequest(conversation_id=conversation_id, message_id=message_id),
        metadata=account.metadata,
        timeout=DEADLINE,
    )


async def test_an_answer_streaming_on_one_server_is_cancelled_through_another(
    a: grpc.aio.Channel, b: grpc.aio.Channel, team: Team
) -> None:
    conversation_id, message_id, call, read = await streaming(a, team, 10)
    returned = await cancel(b, team.owner, conversation_id, message_id)
    events, error = await rest_of(call)
    streamed = check_stopped(events, error, read)
    check_cancelled(returned, streamed)
    # Stored as returned, seen alike from both servers; a second cancel changes nothing.
    assert (await messages(a, team.owner, conversation_id))[-1] == returned
    assert await cancel(b, team.owner, conversation_id, message_id) == returned
    assert await cancel(a, team.owner, conversation_id, message_id) == returned


async def test_an_ended_answer_is_returned_unchanged(
    a: grpc.aio.Channel, b: grpc.aio.Channel, team: Team
) -> None:
    conversation = await new_conversation(a, team.owner, team.project_id, model="echo")
    result = await chat(a, team.owner, conversation.id, "hello there")
    assert result.error is None
    assert result.kinds[-1] == "completed"
    stored = (await messages(a, team.owner, conversation.id))[-1]
    assert stored.status == agents_pb2.MESSAGE_STATUS_COMPLETE
    assert await cancel(b, team.owner, conversation.id, stored.id) == stored
    assert (await messages(b, team.owner, conversation.id))[-1] == stored


async def test_only_editors_cancel_and_others_learn_nothing(
    a: grpc.aio.Channel, b: grpc.aio.Channel, team: Team
) -> None:
    conversation_id, message_id, call, read = await streaming(a, team, 3)
    refusals = [
        (team.viewer, conversation_id, message_id, grpc.StatusCode.PERMISSION_DENIED),
        (team.stranger, conversation_id, message_id, grpc.StatusCode.NOT_FOUND),
        # The user's own message is not an answer; ids that name nothing are not found.
        (team.owner, conversation_id, "not-an-id", grpc.StatusCode.NOT_FOUND),
        (team.owner, conversation_id, conversation_id, grpc.StatusCode.NOT_FOUND),
        (team.owner, "", message_id, grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for account, cid, mid, code in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await cancel(b, account, cid, mid)
        assert refused.value.code() == code, (account.email, cid, mid)
    # The answer still streams; its owner then stops it.
    [more] = await read_events(call, 1)
    assert more.HasField("delta")
    answer = (await messages(b, team.owner, conversation_id))[-1]
    assert answer.status == agents_pb2.MESSAGE_STATUS_IN_PROGRESS
    returned = await cancel(b, team.owner, conversation_id, message_id)
    events, error = await rest_of(call)
    check_cancelled(returned, check_stopped(events, error, read + more.delta.text))


async def test_a_missed_notification_is_still_caught(
    pair: Pair, a: grpc.aio.Channel, team: Team
) -> None:
    conversation_id, message_id, call, read = await streaming(a, team, 5)
    # A cancel whose notification nobody heard: recorded, then A's listening connection
    # (and B's) is lost; A reads the request (on reconnecting, or at its periodic check)
    # and stops the answer.
    db = await asyncpg.connect(pair.dsn)
    try:
        await db.execute(
            "UPDATE messages SET cancel_requested_at = now() WHERE id = $1::uuid", message_id
        )
        listening = await db.fetchval(f"SELECT count(*) {LISTENERS}", APPLICATION_NAME)
        assert listening == 2  # one listening connection per server
        await db.execute(f"SELECT pg_terminate_backend(pid) {LISTENERS}", APPLICATION_NAME)
    finally:
        await db.close()
    events, error = await rest_of(call)
    streamed = check_stopped(events, error, read)

    async def settled() -> agents_pb2.Message | None:
        answer = (await messages(a, team.owner, conversation_id))[-1]
        return answer if answer.status != agents_pb2.MESSAGE_STATUS_IN_PROGRESS else None

    check_cancelled(await eventually(settled, timeout=DEADLINE), streamed)


async def test_rest_cancel_through_the_gateway(pair: Pair, a: grpc.aio.Channel, team: Team) -> None:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=pair.b.port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
    )
    conversation_id, message_id, call, read = await streaming(a, team, 5)
    async with (
        EnvoyProcess(config) as envoy,
        aiohttp.ClientSession(base_url=envoy.base_url) as http,
    ):
        path = f"/v1/conversations/{conversation_id}/messages/{message_id}:cancel"
        headers = {"authorization": f"Bearer {team.owner.access_token}"}
        async with http.post(path, json={}, headers=headers) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        async with http.post(
            path, json={}, headers={"authorization": f"Bearer {team.viewer.access_token}"}
        ) as refused:
            assert refused.status == 403
    assert body["status"] == "MESSAGE_STATUS_CANCELLED"
    events, error = await rest_of(call)
    streamed = check_stopped(events, error, read)
    assert body["content"] == streamed
