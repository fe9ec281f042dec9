"""The run loop with the Anthropic, Gemini and OpenAI-compatible fakes, which speak the
providers' real tool-use wire formats (Anthropic: tool_use blocks with streamed
input_json_delta, results as tool_result blocks; Gemini: functionCall / functionResponse
parts; OpenAI: tool_calls deltas with partial arguments, results as `tool` messages)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc

from tests.agents.support import Team
from tests.fakes.script import FakeToolCall, Script, words
from tests.runs.conftest import (
    ANTHROPIC_MODEL,
    GEMINI_MODEL,
    OPENAI_INPUT_USD,
    OPENAI_MODEL,
    OPENAI_OUTPUT_USD,
    AnthropicTurns,
    GeminiTurns,
    OpenAITurns,
    get_run,
    script_turns,
    start_run,
    watch,
)

GOAL = "Write notes.txt, show it, then write b.txt."


def turns(ids: bool) -> list[Script]:
    def call(name: str, arguments: dict[str, object], call_id: str) -> FakeToolCall:
        return FakeToolCall(name, arguments, call_id if ids else None)

    return [
        # Two tools in one turn.
        Script(
            tokens=words(5, "plan"),
            tool_calls=[
                call(
                    "editor",
                    {"command": "create", "path": "notes.txt", "file_text": "alpha beta\n"},
                    "toolu_01",
                ),
                call("bash", {"command": "cat notes.txt"}, "toolu_02"),
            ],
        ),
        # Invalid input (no path) …
        Script(
            tokens=words(2, "oops"), tool_calls=[call("editor", {"command": "create"}, "toolu_03")]
        ),
        # … which the model then corrects.
        Script(
            tokens=words(2, "fix"),
            tool_calls=[
                call(
                    "editor",
                    {"command": "create", "path": "b.txt", "file_text": "beta\n"},
                    "toolu_04",
                )
            ],
        ),
        Script(tokens=["All ", "done."]),
    ]


def _anthropic_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body["messages"]
    return [
        block
        for message in messages
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def _gemini_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        part["functionResponse"]
        for content in body["contents"]
        for part in content.get("parts", [])
        if "functionResponse" in part
    ]


def _check_events(watched: Any) -> None:
    assert watched.seqs == list(range(1, len(watched.events) + 1))
    completed = watched.last.completed
    assert completed.status == agents_pb2.RUN_STATUS_SUCCEEDED, watched.last
    assert completed.result == "All done."
    names = [name for name, _ in watched.tool_calls()]
    assert names == ["editor", "bash", "editor", "editor"]
    first_args = json.loads(watched.of("tool_call")[0].tool_call.arguments)
    assert first_args == {"command": "create", "path": "notes.txt", "file_text": "alpha beta\n"}
    results = [e.tool_result for e in watched.of("tool_result")]
    assert [r.is_error for r in results] == [False, False, True, False]
    assert "alpha beta" in results[1].content
    assert "path" in results[2].content
    stdout = b"".join(e.exec.stdout for e in watched.of("exec") if e.exec.HasField("stdout"))
    assert stdout == b"alpha beta\n"
    assert len(watched.of("usage")) == 4
    assert completed.usage.input_tokens == 4 * 17


async def test_anthropic_tool_use_with_a_correction(
    runs_channel: grpc.aio.Channel, crew: Team, anthropic_turns: AnthropicTurns
) -> None:
    script_turns(anthropic_turns, turns(ids=True))
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, model=ANTHROPIC_MODEL)
    watched = await watch(runs_channel, crew.owner, run.id)
    _check_events(watched)

    bodies: list[Any] = [request.body for request in anthropic_turns.requests]
    assert len(bodies) == 4
    assert {tool["name"] for tool in bodies[0]["tools"]} >= {"bash", "editor", "finish"}
    second = _anthropic_results(bodies[1])
    assert [r["tool_use_id"] for r in second] == ["toolu_01", "toolu_02"]
    third = _anthropic_results(bodies[2])[-1]
    assert third["tool_use_id"] == "toolu_03"
    assert third.get("is_error") is True
    # The assistant turn in history carries the tool_use blocks with their parsed input.
    assistant = next(m for m in bodies[1]["messages"] if m["role"] == "assistant")
    uses = [b for b in assistant["content"] if b.get("type") == "tool_use"]
    assert [u["id"] for u in uses] == ["toolu_01", "toolu_02"]
    assert uses[1]["input"] == {"command": "cat notes.txt"}


async def test_gemini_function_calls_with_a_correction(
    runs_channel: grpc.aio.Channel, crew: Team, gemini_turns: GeminiTurns
) -> None:
    script_turns(gemini_turns, turns(ids=False))
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, model=GEMINI_MODEL)
    watched = await watch(runs_channel, crew.owner, run.id)
    _check_events(watched)

    bodies: list[Any] = [request.body for request in gemini_turns.requests]
    assert len(bodies) == 4
    responses = _gemini_responses(bodies[1])
    assert [r["name"] for r in responses] == ["editor", "bash"]
    corrected = _gemini_responses(bodies[2])[-1]
    assert corrected["name"] == "editor"
    assert "path" in json.dumps(corrected["response"])


async def test_openai_tool_calls_with_a_correction(
    runs_channel: grpc.aio.Channel, crew: Team, openai_turns: OpenAITurns
) -> None:
    script_turns(openai_turns, turns(ids=True))
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, model=OPENAI_MODEL)
    watched = await watch(runs_channel, crew.owner, run.id)
    _check_events(watched)

    bodies: list[Any] = [request.body for request in openai_turns.requests]
    assert len(bodies) == 4
    assert {tool["function"]["name"] for tool in bodies[0]["tools"]} >= {"bash", "editor"}
    second = [m for m in bodies[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in second] == ["toolu_01", "toolu_02"]
    assert "alpha beta" in second[1]["content"]
    corrected = [m for m in bodies[2]["messages"] if m["role"] == "tool"][-1]
    assert corrected["tool_call_id"] == "toolu_03"
    assert corrected["content"].startswith("Tool error: ")
    # The assistant turn in history carries both calls with their arguments as JSON text.
    assistant = next(m for m in bodies[1]["messages"] if m["role"] == "assistant")
    calls = assistant["tool_calls"]
    assert [c["id"] for c in calls] == ["toolu_01", "toolu_02"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"command": "cat notes.txt"}

    # The run's tokens are charged to its creator at the model's configured prices.
    usage = await agents_pb2_grpc.AgentServiceStub(runs_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=crew.owner.metadata, timeout=10
    )
    [record] = [r for r in usage.records if r.model == OPENAI_MODEL]
    spent = watched.last.completed.usage
    assert (record.input_tokens, record.output_tokens) == (spent.input_tokens, spent.output_tokens)
    expected = (
        spent.input_tokens * OPENAI_INPUT_USD + spent.output_tokens * OPENAI_OUTPUT_USD
    ) / 1e6
    assert record.cost_usd == pytest.approx(expected, rel=1e-6)
    assert expected > 0


async def test_a_provider_failure_fails_the_run(
    runs_channel: grpc.aio.Channel, crew: Team, anthropic_turns: AnthropicTurns
) -> None:
    script_turns(anthropic_turns, [Script(status_forever=500)])
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, model=ANTHROPIC_MODEL)
    watched = await watch(runs_channel, crew.owner, run.id)
    assert watched.kinds == ["status", "error"]
    assert watched.last.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    final = await get_run(runs_channel, crew.owner, run.id)
    assert final.status == agents_pb2.RUN_STATUS_FAILED
    assert final.error.message == watched.last.error.message
