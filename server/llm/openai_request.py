"""Our chat history as OpenAI Chat Completions parameters.

The system prompt is the first message; an assistant turn carries its `tool_calls` (function
calls with their arguments as JSON text); each tool result is a `tool` message of its own,
paired with its call by `tool_call_id`. The API has no error flag on a tool result, so a
failed tool's output is marked in its text. Empty turns are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)

from server.llm.base import ChatMessage, Role, ToolSpec

TOOL_ERROR_PREFIX = "Tool error: "


def _assistant(message: ChatMessage) -> ChatCompletionAssistantMessageParam | None:
    if not message.text and not message.tool_calls:
        return None
    turn = ChatCompletionAssistantMessageParam(role="assistant", content=message.text or None)
    if message.tool_calls:
        turn["tool_calls"] = [
            ChatCompletionMessageFunctionToolCallParam(
                id=call.id,
                type="function",
                function={"name": call.name, "arguments": call.arguments_json or "{}"},
            )
            for call in message.tool_calls
        ]
    return turn


def to_messages(system: str, messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    result: list[ChatCompletionMessageParam] = []
    if system:
        result.append(ChatCompletionSystemMessageParam(role="system", content=system))
    for message in messages:
        if message.role is Role.USER:
            if message.text:
                result.append(ChatCompletionUserMessageParam(role="user", content=message.text))
        elif message.role is Role.ASSISTANT:
            turn = _assistant(message)
            if turn is not None:
                result.append(turn)
        else:
            for outcome in message.tool_results:
                content = outcome.content
                result.append(
                    ChatCompletionToolMessageParam(
                        role="tool",
                        tool_call_id=outcome.tool_call_id,
                        content=f"{TOOL_ERROR_PREFIX}{content}" if outcome.is_error else content,
                    )
                )
    return result


def to_tools(tools: Sequence[ToolSpec]) -> list[ChatCompletionFunctionToolParam]:
    return [
        ChatCompletionFunctionToolParam(
            type="function",
            function={
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        )
        for tool in tools
    ]
