"""Compaction of a run's transcript: once the history outgrows the budget, a summary event
stands for the older steps, the next request carries it instead of them (a call never apart
from its result), its tokens count in the run's usage; the transcript rebuilt from the log
(as after a takeover) reads the same. The run's requests carry its agent profile's
sampling parameters.

A server of its own with a small history budget; its Anthropic fake answers each request
with the next script (the summary request is one of them)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from forge.agents.v1 import agents_pb2

from server.agents.runs.convert import EventCodec
from server.agents.runs.events import (
    RunStatus,
    StatusChanged,
    ToolAnswered,
    ToolCalled,
    TranscriptSummarized,
    TurnUsage,
)
from server.agents.runs.transcript import rebuild
from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from server.llm import Role
from server.llm.summary import SUMMARY_HEADING, SUMMARY_SYSTEM_PROMPT
from tests.agents.support import Team, new_team, stub
from tests.fakes.script import FakeToolCall, Script
from tests.runs.conftest import (
    ANTHROPIC_MODEL,
    AnthropicTurns,
    get_run,
    script_turns,
    start_run,
    watch,
)
from tests.support.own_server import own_server

BUDGET = 400
SUMMARY = "Step one tried to create a file without a path and failed."
FIRST, SECOND = "A" * 1200, "B" * 1200  # ~300 tokens each: two steps outgrow the budget


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
    database = await postgres.ensure_database("forge_runs_compaction")
    async with own_server(
        database,
        tmp_path_factory.mktemp("runs-compaction-data"),
        "Runs Compaction Admin",
        anthropic_api_key="sk-ant-forge-test",
        anthropic_base_url=fake.base_url,
        default_model="echo",
        provider_retry_attempts=1,
        provider_timeout_seconds=10.0,
        run_delta_flush_ms=20.0,
        history_token_budget=BUDGET,
        summary_max_output_tokens=300,
    ) as app:
        yield app


@pytest.fixture(scope="module")
async def channel(server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture
async def crew(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


def _pathless_create(text: str, call_id: str) -> FakeToolCall:
    """An editor call the tool refuses (no path), long because of its text."""
    return FakeToolCall("editor", {"command": "create", "file_text": text}, call_id)


async def test_a_long_run_is_summarised_and_the_next_request_carries_the_summary(
    channel: grpc.aio.Channel, crew: Team, fake: AnthropicTurns
) -> None:
    agent = await stub(channel).CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=crew.project_id,
            agent=agents_pb2.Agent(
                name="Terse",
                model=ANTHROPIC_MODEL,
                system_prompt="You are terse.",
                tools=["editor", "finish"],
                top_p=0.6,
                stop_sequences=["STOP"],
            ),
        ),
        metadata=crew.owner.metadata,
    )
    script_turns(
        fake,
        [
            Script(tokens=["one "], tool_calls=[_pathless_create(FIRST, "toolu_1")]),
            Script(tokens=["two "], tool_calls=[_pathless_create(SECOND, "toolu_2")]),
            Script(tokens=[SUMMARY], input_tokens=50, output_tokens=12),
            Script(tokens=["All ", "done."]),
        ],
    )
    run = await start_run(channel, crew.owner, crew.project_id, "Write a file.", agent_id=agent.id)
    watched = await watch(channel, crew.owner, run.id)
    assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED, watched.last
    assert watched.last.completed.result == "All done."

    bodies: list[Any] = [request.body for request in fake.requests]
    assert len(bodies) == 4
    # The profile's sampling parameters reach the run's turns (not the summary request).
    assert bodies[0]["top_p"] == pytest.approx(0.6)
    assert bodies[0]["stop_sequences"] == ["STOP"]
    summarising, last = bodies[2], bodies[3]
    assert summarising["system"] == SUMMARY_SYSTEM_PROMPT
    assert "tools" not in summarising
    assert "AAAA" in json.dumps(summarising["messages"])
    assert "BBBB" not in json.dumps(summarising["messages"])

    # The summary event, before the third step, covers the first step's events.
    kinds = watched.kinds
    at = kinds.index("summary")
    summary = watched.events[at].summary
    assert summary.text == SUMMARY
    assert (summary.usage.input_tokens, summary.usage.output_tokens) == (50, 12)
    third_step = watched.events[at + 1]
    assert third_step.status.step == 3
    second_step = next(e for e in watched.events if e.HasField("status") and e.status.step == 2)
    assert summary.through_seq == second_step.seq - 1

    # The next request: the goal, the summary in the system prompt, the second step whole
    # (its call with its result), and nothing of the first.
    assert last["system"] == f"You are terse.\n\n{SUMMARY_HEADING}\n{SUMMARY}"
    sent = json.dumps(last["messages"])
    assert "AAAA" not in sent
    assert "toolu_1" not in sent
    assert SECOND in sent
    roles = [message["role"] for message in last["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert last["messages"][0]["content"][0]["text"] == "Write a file."
    blocks = last["messages"][2]["content"]
    assert [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"] == ["toolu_2"]

    # The summary's tokens count in the run's usage (four calls of 17 + 50 input tokens).
    final = await get_run(channel, crew.owner, run.id)
    assert final.usage.input_tokens == 3 * 17 + 50
    assert watched.last.completed.usage.input_tokens == 3 * 17 + 50
    assert final.usage.output_tokens == watched.last.completed.usage.output_tokens


def test_the_transcript_rebuilt_from_the_log_reads_the_summary_in_place_of_the_steps() -> None:
    codec = EventCodec()
    events: list[Any] = [
        StatusChanged(RunStatus.RUNNING, "step 1", step=1),
        ToolCalled("c1", "editor", '{"x": 1}'),
        TurnUsage(10, 5),
        ToolAnswered("c1", "editor", "first result"),
        StatusChanged(RunStatus.RUNNING, "step 2", step=2),
        ToolCalled("c2", "editor", '{"x": 2}'),
        TurnUsage(10, 5),
        ToolAnswered("c2", "editor", "second result"),
        TranscriptSummarized("what step one did", 4, 7, 3),
    ]
    # Through the stored encoding, as a takeover reads it.
    stored = [(seq, codec.decode(codec.encode(e))) for seq, e in enumerate(events, start=1)]
    assert stored[-1][1] == events[-1]
    assert codec.kind(events[-1]) == "summary"
    transcript = rebuild("the goal", stored)
    assert transcript.summary == "what step one did"
    assert (transcript.input_tokens, transcript.output_tokens) == (27, 13)
    messages = transcript.messages()
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT, Role.TOOL]
    assert messages[0].text == "the goal"
    assert [c.id for c in messages[1].tool_calls] == ["c2"]
    assert [r.content for r in messages[2].tool_results] == ["second result"]
    # Nothing left to cover: the newest complete turn is always kept.
    assert transcript.compaction(0) is None
