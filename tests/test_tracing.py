"""Traces: a Chat call continues its caller's trace, with spans for the RPC, its database
queries and the provider's HTTP request, and the provider is sent the trace on."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from server.app import ForgeServer
from server.core.logging import configure_logging
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import new_conversation, new_team, stub
from tests.conftest import make_settings
from tests.fakes.anthropic_fake import AnthropicFake
from tests.support.testing_service import TEST_MODULES

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
MODEL = "anthropic/claude-test"
CREATE_CONVERSATION = "/forge.agents.v1.AgentService/CreateConversation"


@pytest.fixture(scope="module")
async def traced(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ForgeServer, InMemorySpanExporter, AnthropicFake]]:
    exporter = InMemorySpanExporter()
    fake = AnthropicFake()
    async with fake:
        settings = make_settings(
            await postgres.ensure_database("forge_tracing"),
            tmp_path_factory.mktemp("tracing"),
            anthropic_api_key="sk-ant-forge-test",
            anthropic_base_url=fake.base_url,
        )
        app = ForgeServer(settings, TEST_MODULES, span_processors=[SimpleSpanProcessor(exporter)])
        await app.start()
        try:
            yield app, exporter, fake
        finally:
            await app.stop(grace=0)


async def test_a_chat_is_one_trace_continuing_the_callers(
    traced: tuple[ForgeServer, InMemorySpanExporter, AnthropicFake],
) -> None:
    app, exporter, fake = traced
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        team = await new_team(channel)
        conversation = await new_conversation(channel, team.owner, team.project_id, model=MODEL)
        fake.requests.clear()
        call = stub(channel).Chat(
            agents_pb2.ChatRequest(conversation_id=conversation.id, content="hello"),
            metadata=(*team.owner.metadata, ("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01")),
            timeout=10,
        )
        events = [event async for event in call]
    assert events[-1].HasField("completed")

    spans = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]
    (rpc,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert rpc.name == "/forge.agents.v1.AgentService/Chat"
    assert rpc.parent is not None
    assert f"{rpc.parent.span_id:016x}" == CALLER_SPAN
    database = [s for s in spans if s.attributes and s.attributes.get("db.system") == "postgresql"]
    assert database, [s.name for s in spans]
    # (the anthropic SDK adds a gen_ai span of its own around the HTTP request)
    (provider,) = [s for s in spans if s.kind is SpanKind.CLIENT and s.name == "POST"]
    assert provider.attributes is not None
    assert str(provider.attributes["url.full"]).startswith(fake.base_url)
    assert provider.attributes["http.response.status_code"] == 200
    # The provider was told the trace (its own spans would join it).
    (request,) = fake.requests
    assert request.headers["traceparent"].split("-")[1] == TRACE_ID


async def test_log_lines_of_a_traced_call_carry_its_trace_id(
    traced: tuple[ForgeServer, InMemorySpanExporter, AnthropicFake],
) -> None:
    app, _, _ = traced
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", "json")
    output = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub(channel).CreateConversation(
                    agents_pb2.CreateConversationRequest(),
                    metadata=(("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01"),),
                    timeout=10,
                )
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    (access,) = [line for line in lines if line.get("method") == CREATE_CONVERSATION]
    assert access["code"] == "UNAUTHENTICATED"
    assert access["trace_id"] == TRACE_ID
