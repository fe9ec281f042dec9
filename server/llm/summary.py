"""Compaction's model call: older history (and the summary before it, if any) summarised by
the model that answers, into one text that then stands for it. Chats and runs both use it.

The summarising request is a plain answer: no tools, a system prompt of its own, one user
message holding the transcript to summarise (so every provider's role rules hold), at most
`max_tokens` of summary. The transcript is clipped to `input_budget_tokens`: long messages
keep their beginning and end, and when the whole is still too long the oldest messages are
left out (the previous summary is always kept). Later requests carry the summary in their
system prompt (`with_summary`), so the kept history still starts with a user message.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

from server.core.errors import ForgeError
from server.llm.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Finish,
    Role,
    TextDelta,
    Usage,
)
from server.llm.errors import ProviderStreamError
from server.llm.history import CHARS_PER_TOKEN

SUMMARY_FAILED = "SUMMARY_FAILED"
SUMMARY_HEADING = "Summary of the earlier conversation (it replaces the older messages):"
SUMMARY_SYSTEM_PROMPT = (
    "You compact the history of a conversation between a user and an AI assistant (or of "
    "an agent's work on a task) so that the assistant can carry on without the original "
    "messages. Write a concise, factual summary in the language of the conversation: the "
    "user's goals, requests and preferences; decisions and conclusions; important facts, "
    "names, numbers, file paths, code and commands; tool calls made and what they showed; "
    "and anything still open. Keep everything from the earlier summary, if one is given, "
    "that still matters. Write only the summary, without a preamble."
)
MESSAGE_CHARS_MIN = 400
"""No message is clipped to fewer characters than this."""

_ROLE_NAMES = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.TOOL: "Tool"}


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    usage: Usage
    """Tokens of the summarising call (charged like an answer)."""


def with_summary(system: str, summary: str) -> str:
    """The system prompt of a request whose older history `summary` stands for."""
    if not summary:
        return system
    block = f"{SUMMARY_HEADING}\n{summary}"
    return f"{system}\n\n{block}" if system else block


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… ({len(text) - 2 * half} characters left out) …\n{text[-half:]}"


def _render(message: ChatMessage, limit: int) -> str:
    lines: list[str] = []
    if message.text:
        lines.append(f"{_ROLE_NAMES[message.role]}: {_clip(message.text, limit)}")
    for call in message.tool_calls:
        lines.append(f"Assistant called {call.name}: {_clip(call.arguments_json, limit)}")
    for result in message.tool_results:
        kind = "error" if result.is_error else "result"
        lines.append(f"Tool {result.name} {kind}: {_clip(result.content, limit)}")
    return "\n".join(lines)


def summary_prompt(
    previous: str, messages: Sequence[ChatMessage], input_budget_tokens: int, context: str = ""
) -> str:
    """The user message of a summarising request (see the module docstring)."""
    budget = max(input_budget_tokens, 1) * CHARS_PER_TOKEN
    per_message = max(budget // max(len(messages), 1), MESSAGE_CHARS_MIN)
    head: list[str] = []
    if context:
        head.append(f"Context:\n{_clip(context, budget // 4)}")
    if previous:
        head.append(f"Earlier summary:\n{_clip(previous, budget // 2)}")
    left = budget - sum(len(part) for part in head)
    rendered: list[str] = []
    for message in reversed(messages):
        text = _render(message, per_message)
        if not text:
            continue
        if rendered and len(text) > left:
            break
        rendered.append(text)
        left -= len(text)
    omitted = sum(1 for m in messages if m.text or m.tool_calls or m.tool_results) - len(rendered)
    body = "\n\n".join(reversed(rendered))
    if omitted > 0:
        body = f"({omitted} older messages left out)\n\n{body}"
    return "\n\n".join([*head, f"Messages to summarise:\n{body}", "Write the summary now."])


async def summarise(
    provider: ChatProvider,
    model: str,
    previous: str,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int,
    input_budget_tokens: int,
    context: str = "",
) -> Summary:
    """Asks `model` of `provider` for the summary. A provider failure raises its
    ForgeError; an answer without text (or cut short) raises SUMMARY_FAILED."""
    request = ChatRequest(
        model=model,
        system=SUMMARY_SYSTEM_PROMPT,
        messages=[
            ChatMessage.user(summary_prompt(previous, messages, input_budget_tokens, context))
        ],
        max_tokens=max_tokens,
    )
    text = ""
    finish: Finish | None = None
    try:
        async with aclosing(provider.stream(request)) as events:
            async for event in events:
                if type(event) is TextDelta:
                    text += event.text
                elif type(event) is Finish:
                    finish = event
    except ProviderStreamError as failure:
        raise failure.error from None
    text = text.strip()
    if finish is None or not text:
        raise ForgeError("the model wrote no summary", SUMMARY_FAILED)
    return Summary(text, finish.usage)
