"""The summarising request's prompt (server/llm/summary.py): clipped to its budget, the
earlier summary always kept, and the summary carried in later system prompts."""

from __future__ import annotations

from server.llm import ChatMessage, ToolCall, ToolResult
from server.llm.summary import SUMMARY_HEADING, summary_prompt, with_summary


def test_the_summary_goes_after_the_system_prompt() -> None:
    assert with_summary("Be terse.", "") == "Be terse."
    assert with_summary("", "S") == f"{SUMMARY_HEADING}\nS"
    assert with_summary("Be terse.", "S") == f"Be terse.\n\n{SUMMARY_HEADING}\nS"


def test_the_prompt_renders_every_kind_of_message() -> None:
    prompt = summary_prompt(
        "what came before",
        [
            ChatMessage.user("question"),
            ChatMessage.assistant("looking", [ToolCall("c1", "bash", '{"command": "ls"}')]),
            ChatMessage.tool([ToolResult("c1", "bash", "a.txt", is_error=True)]),
        ],
        input_budget_tokens=1000,
        context="the task",
    )
    assert "Context:\nthe task" in prompt
    assert "Earlier summary:\nwhat came before" in prompt
    assert "User: question" in prompt
    assert 'Assistant called bash: {"command": "ls"}' in prompt
    assert "Tool bash error: a.txt" in prompt
    assert "left out" not in prompt


def test_a_long_history_is_clipped_newest_first() -> None:
    messages = [ChatMessage.user(f"{n}:" + "x" * 2000) for n in range(10)]
    prompt = summary_prompt("keep me", messages, input_budget_tokens=1000)
    assert len(prompt) < 4 * 1000 + 1000
    assert "keep me" in prompt
    assert "User: 9:" in prompt
    assert "User: 0:" not in prompt
    assert "older messages left out" in prompt
    assert "characters left out" in prompt  # each message keeps its start and end
