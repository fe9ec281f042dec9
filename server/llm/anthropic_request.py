"""Our chat history as Anthropic Messages API parameters.

Tool results travel in a user turn (`tool_result` blocks), tool calls in the assistant turn
(`tool_use` blocks). Consecutive turns of the same role are merged and empty text is left
out, since the API wants alternating, non-empty turns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from anthropic.types import (
    ContentBlockParam,
    MessageParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)

from server.llm.base import ChatMessage, Role, ToolSpec


def _arguments(arguments_json: str) -> dict[str, object]:
    try:
        value = json.loads(arguments_json) if arguments_json else {}
    except json.JSONDecodeError:
        return {"input": arguments_json}
    return value if isinstance(value, dict) else {"input": value}


def _blocks(message: ChatMessage) -> list[ContentBlockParam]:
    blocks: list[ContentBlockParam] = []
    for result in message.tool_results:
        blocks.append(
            ToolResultBlockParam(
                type="tool_result",
                tool_use_id=result.tool_call_id,
                content=result.content,
                is_error=result.is_error,
            )
        )
    if message.text:
        blocks.append(TextBlockParam(type="text", text=message.text))
    for call in message.tool_calls:
        blocks.append(
            ToolUseBlockParam(
                type="tool_use", id=call.id, name=call.name, input=_arguments(call.arguments_json)
            )
        )
    return blocks


def to_messages(messages: Sequence[ChatMessage]) -> list[MessageParam]:
    turns: list[tuple[Literal["user", "assistant"], list[ContentBlockParam]]] = []
    for message in messages:
        role: Literal["user", "assistant"] = (
            "assistant" if message.role is Role.ASSISTANT else "user"
        )
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    result: list[MessageParam] = []
    for role, blocks in turns:
        if role == "user":
            result.append({"role": "user", "content": blocks})
        else:
            result.append({"role": "assistant", "content": blocks})
    return result


def to_tools(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    return [
        ToolParam(name=tool.name, description=tool.description, input_schema=dict(tool.parameters))
        for tool in tools
    ]
