"""Compaction of long conversations: a chat whose history outgrows the budget gets a stored
summary (role SUMMARY) written by the model that answers, sent before `started`, carried by
the request in place of the turns it covers, and by every later chat; summarising failures
fall back to leaving the older turns out; a cancelled chat leaves no half state.

A server of its own with a small history budget, whose Anthropic provider answers each
request with the next script (the summary request is one of them)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from server.llm.summary import SUMMARY_SYSTEM_PROMPT
from tests.agents.support import (
    DEADLINE,
    Team,
    chat,
    chat_call,
    messages,
    new_conversation,
    new_team,
    stub,
    within,
)
from tests.conftest import DESCRIPTOR
from tests.fakes.script import Script, words
from tests.runs.conftest import AnthropicTurns, script_turns
from tests.support.own_server import own_server
from tests.support.waiting import eventually

MODEL = "anthropic/claude-test"
BUDGET = 300
SUMMARY_MAX_TOKENS = 200
LONG = "alpha " * 300  # ~450 tokens: more than the whole budget
SUMMARY = "The user asked about alpha; the assistant answered."


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[AnthropicTurns]:
    turns = AnthropicTurns()
    turns.turns = []
    async with turns:
        yield turns


@pytest.fixture(scope="module")
async def server(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory, fake: AnthropicTurns
) -> AsyncIterator[ForgeServer]:
    database = await postgres.ensure_database("forge_compaction")
    async with own_server(
        database,
        tmp_path_factory.mktemp("compaction-data"),
        "Compaction Admin",
        anthropic_api_key="sk-ant-forge-test",
        anthropic_base_url=fake.base_url,
        default_model="echo",
        provider_retry_attempts=1,
        provider_timeout_seconds=5.0,
        history_token_budget=BUDGET,
        summary_max_output_tokens=SUMMARY_MAX_TOKENS,
    ) as app:
        yield app


@pytest.fixture(scope="module")
async def channel(server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture
async def crew(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


def answer(stem: str) -> Script:
    return Script(tokens=words(3, stem))


def text_of(stem: str) -> str:
    return "".join(words(3, stem))


def bodies(fake: AnthropicTurns) -> list[Any]:
    return [request.body for request in fake.requests]


def sent_texts(body: Any) -> list[str]:
    return [block["text"] for message in body["messages"] for block in message["content"]]


async def _over_budget(channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns) -> str:
    """A conversation whose first turn alone outgrows the budget (nothing to summarise
    yet: the newest turn is always sent whole)."""
    script_turns(fake, [answer("first")])
    conversation = await new_conversation(channel, crew.owner, crew.project_id, model=MODEL)
    result = await chat(channel, crew.owner, conversation.id, LONG)
    assert result.error is None
    assert "summary" not in result.kinds
    assert len(fake.requests) == 1
    return conversation.id


async def test_a_conversation_over_budget_gets_a_summary_that_replaces_the_older_turns(
    channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns
) -> None:
    conversation_id = await _over_budget(channel, crew, fake)
    script_turns(fake, [Script(tokens=[SUMMARY], input_tokens=40), answer("second")])
    result = await chat(channel, crew.owner, conversation_id, "and beta?")
    assert result.error is None
    assert result.kinds[:2] == ["summary", "started"]
    event = result.events[0].summary
    assert event.role == agents_pb2.MESSAGE_ROLE_SUMMARY
    assert event.content == SUMMARY

    # The summarising request: the model's own, no tools, the dropped turns as its input.
    summarising, answering = bodies(fake)
    assert summarising["system"] == SUMMARY_SYSTEM_PROMPT
    assert "tools" not in summarising
    assert summarising["max_tokens"] == SUMMARY_MAX_TOKENS
    prompt = sent_texts(summarising)[0]
    assert "alpha alpha" in prompt
    assert text_of("first") in prompt
    # The answer's request carries the summary instead of the turns it covers.
    assert SUMMARY in answering["system"]
    assert sent_texts(answering) == ["and beta?"]

    listed = await messages(channel, crew.viewer, conversation_id)
    roles = [agents_pb2.MessageRole.Name(message.role) for message in listed]
    assert roles == [
        "MESSAGE_ROLE_USER",
        "MESSAGE_ROLE_ASSISTANT",
        "MESSAGE_ROLE_SUMMARY",
        "MESSAGE_ROLE_USER",
        "MESSAGE_ROLE_ASSISTANT",
    ]
    first_question, first_answer, summary, question, _ = listed
    assert first_question.content == LONG  # the covered turns stay stored and listed
    assert summary.id == event.id
    assert summary.content == SUMMARY
    assert summary.summarized_through_id == first_answer.id
    assert summary.summarized_message_count == 2
    assert summary.usage.input_tokens == 40
    assert summary.status == agents_pb2.MESSAGE_STATUS_COMPLETE
    assert question.id == result.started.user_message_id

    # A later chat starts its history at the summary.
    script_turns(fake, [answer("third")])
    later = await chat(channel, crew.owner, conversation_id, "and gamma?")
    assert "summary" not in later.kinds
    (body,) = bodies(fake)
    assert SUMMARY in body["system"]
    assert sent_texts(body) == ["and beta?", text_of("second"), "and gamma?"]
    assert all("alpha" not in text for text in sent_texts(body))

    # The summary's tokens are charged like an answer's (three answers and one summary).
    usage = await stub(channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=crew.owner.metadata, timeout=DEADLINE
    )
    assert usage.input_tokens == 3 * 17 + 40
    assert usage.output_tokens == 3 * 3 + 1
    conversation = await stub(channel).GetConversation(
        agents_pb2.GetConversationRequest(conversation_id=conversation_id),
        metadata=crew.owner.metadata,
        timeout=DEADLINE,
    )
    assert conversation.message_count == 7


async def test_a_second_summary_carries_the_first_on(
    channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns
) -> None:
    conversation_id = await _over_budget(channel, crew, fake)
    script_turns(fake, [Script(tokens=["first summary"]), answer("second")])
    await chat(channel, crew.owner, conversation_id, "and beta?")
    script_turns(fake, [Script(tokens=["second summary"]), answer("third")])
    result = await chat(channel, crew.owner, conversation_id, "omega " * 300)
    assert result.kinds[:2] == ["summary", "started"]
    summarising, answering = bodies(fake)
    prompt = sent_texts(summarising)[0]
    assert "first summary" in prompt
    assert "and beta?" in prompt
    assert "second summary" in answering["system"]
    assert "first summary" not in answering["system"]
    listed = await messages(channel, crew.owner, conversation_id)
    summaries = [m for m in listed if m.role == agents_pb2.MESSAGE_ROLE_SUMMARY]
    assert [m.content for m in summaries] == ["first summary", "second summary"]
    # The earlier summary counts as one message of those the new one covers.
    assert summaries[1].summarized_message_count == 3
    assert summaries[1].summarized_through_id == listed[-4].id  # the answer before it


async def test_a_failed_summary_falls_back_to_leaving_the_older_turns_out(
    channel: grpc.aio.Channel,
    crew: Team,
    fake: AnthropicTurns,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conversation_id = await _over_budget(channel, crew, fake)
    script_turns(fake, [Script(status_forever=500), answer("second")])
    with caplog.at_level(logging.WARNING, logger="server.agents.compaction"):
        result = await chat(channel, crew.owner, conversation_id, "and beta?")
    assert result.error is None
    assert result.kinds[0] == "started"
    assert result.text == text_of("second")
    answering = bodies(fake)[-1]
    assert sent_texts(answering) == ["and beta?"]
    assert "system" not in answering or "alpha" not in str(answering["system"])
    warnings = [r for r in caplog.records if r.name == "server.agents.compaction"]
    assert warnings
    assert all("alpha" not in r.getMessage() for r in warnings)
    listed = await messages(channel, crew.owner, conversation_id)
    assert agents_pb2.MESSAGE_ROLE_SUMMARY not in [m.role for m in listed]
    assert len(listed) == 4


async def test_a_chat_cancelled_while_summarising_leaves_no_half_state(
    channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns
) -> None:
    conversation_id = await _over_budget(channel, crew, fake)
    script_turns(fake, [Script(tokens=[SUMMARY], hold_before_response=True), answer("second")])
    call = chat_call(channel, crew.owner, conversation_id, "and beta?")
    reading = asyncio.ensure_future(call.read())
    await within(fake.holding, "the summary request")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    fake.release.set()

    async def settled() -> list[agents_pb2.Message] | None:
        listed = await messages(channel, crew.owner, conversation_id)
        done = len(listed) == 5 and listed[-1].status != agents_pb2.MESSAGE_STATUS_IN_PROGRESS
        return listed if done else None

    listed = await eventually(settled)
    assert [m.role for m in listed][2:] == [
        agents_pb2.MESSAGE_ROLE_SUMMARY,
        agents_pb2.MESSAGE_ROLE_USER,
        agents_pb2.MESSAGE_ROLE_ASSISTANT,
    ]
    assert listed[2].content == SUMMARY
    assert listed[3].content == "and beta?"
    assert listed[4].status == agents_pb2.MESSAGE_STATUS_CANCELLED
    assert len(fake.requests) == 1  # the answer itself was never asked for


async def test_a_retried_chat_replays_its_summary(
    channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns
) -> None:
    conversation_id = await _over_budget(channel, crew, fake)
    script_turns(fake, [Script(tokens=[SUMMARY]), answer("second")])
    request = agents_pb2.ChatRequest(
        conversation_id=conversation_id, content="and beta?", request_id="compaction-retry-1"
    )
    first = [
        e async for e in stub(channel).Chat(request, metadata=crew.owner.metadata, timeout=DEADLINE)
    ]
    again = [
        e async for e in stub(channel).Chat(request, metadata=crew.owner.metadata, timeout=DEADLINE)
    ]
    kinds = [e.WhichOneof("event") for e in again]
    assert kinds[:2] == ["summary", "started"]
    assert kinds[-2:] == ["usage", "completed"]
    assert "".join(e.delta.text for e in again) == "".join(e.delta.text for e in first)
    assert again[0].summary == first[0].summary
    assert again[1].started == first[1].started
    assert len(fake.requests) == 2  # replayed, not asked again


async def test_export_and_rest_list_show_the_summary(
    channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns, server: ForgeServer
) -> None:
    conversation_id = await _over_budget(channel, crew, fake)
    script_turns(fake, [Script(tokens=[SUMMARY]), answer("second")])
    await chat(channel, crew.owner, conversation_id, "and beta?")

    exported = await stub(channel).ExportConversation(
        agents_pb2.ExportConversationRequest(conversation_id=conversation_id),
        metadata=crew.viewer.metadata,
        timeout=DEADLINE,
    )
    document = json.loads(exported.data)
    summary = document["messages"][2]
    assert summary["role"] == "summary"
    assert summary["content"] == SUMMARY
    assert summary["summarized_message_count"] == 2
    assert summary["summarized_through_id"] == document["messages"][1]["id"]
    markdown = await stub(channel).ExportConversation(
        agents_pb2.ExportConversationRequest(conversation_id=conversation_id, format="markdown"),
        metadata=crew.viewer.metadata,
        timeout=DEADLINE,
    )
    assert "## Summary of the earlier messages (2 messages)" in markdown.data.decode()

    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=server.port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
    )
    async with (
        EnvoyProcess(config) as envoy,
        aiohttp.ClientSession(base_url=envoy.base_url) as http,
        http.get(
            f"/v1/conversations/{conversation_id}/messages", headers=dict(crew.viewer.metadata)
        ) as response,
    ):
        assert response.status == 200, await response.text()
        listed = (await response.json())["messages"]
    assert [m["role"] for m in listed] == [
        "MESSAGE_ROLE_USER",
        "MESSAGE_ROLE_ASSISTANT",
        "MESSAGE_ROLE_SUMMARY",
        "MESSAGE_ROLE_USER",
        "MESSAGE_ROLE_ASSISTANT",
    ]
    assert listed[2]["content"] == SUMMARY
    assert listed[2]["summarizedThroughId"] == listed[1]["id"]
    assert listed[2]["summarizedMessageCount"] == 2
