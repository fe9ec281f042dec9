"""Trimming conversation history to a token budget. Chats and runs do not simply drop what
does not fit: the turns trimming would leave out are summarised first (compaction:
server/llm/summary.py, server/agents/compaction.py, server/agents/runs/compaction.py), and
trimming alone is the fallback when summarising fails.

Token counts are estimates, the same for every provider: about four characters per token
(`ceil(len/4)`), plus 4 tokens per message for its role and framing. Real tokenizers differ
by provider and model; the budget is meant to keep requests comfortably inside a context
window, not to be exact.

History is trimmed by whole turns: a turn is a user message with the assistant and tool
messages that follow it, so a tool call is never separated from its result and the kept
history always starts with a user message. The system prompt and the newest turn are always
kept, even when they alone exceed the budget; older turns are kept newest first while they
fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.llm.base import ChatMessage, Role

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_message_tokens(message: ChatMessage) -> int:
    total = MESSAGE_OVERHEAD_TOKENS + estimate_tokens(message.text)
    for call in message.tool_calls:
        total += estimate_tokens(call.name) + estimate_tokens(call.arguments_json)
    for result in message.tool_results:
        total += estimate_tokens(result.name) + estimate_tokens(result.content)
    return total


@dataclass(frozen=True, slots=True)
class TrimmedHistory:
    messages: list[ChatMessage]
    dropped: int
    """How many of the oldest messages were left out."""
    estimated_tokens: int
    """Estimated tokens of the system prompt and the kept messages."""


def _turns(messages: Sequence[ChatMessage]) -> list[list[ChatMessage]]:
    turns: list[list[ChatMessage]] = []
    for message in messages:
        if message.role is Role.USER or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def trim_history(system: str, messages: Sequence[ChatMessage], budget: int) -> TrimmedHistory:
    """Keeps the system prompt and the newest whole turns that fit in `budget` tokens."""
    total = estimate_tokens(system) if system else 0
    kept: list[list[ChatMessage]] = []
    for turn in reversed(_turns(messages)):
        cost = sum(estimate_message_tokens(message) for message in turn)
        if kept and total + cost > budget:
            break
        kept.append(turn)
        total += cost
    kept_messages = [message for turn in reversed(kept) for message in turn]
    return TrimmedHistory(
        messages=kept_messages,
        dropped=len(messages) - len(kept_messages),
        estimated_tokens=total,
    )
