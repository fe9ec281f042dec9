"""Our chat history as google-genai `contents` and `GenerateContentConfig`.

Roles: user -> "user", assistant -> "model", tool results -> a "user" turn of
`function_response` parts (Gemini pairs a result with its call by name, and by id when the
model gave one). Ids we made up for calls without one (`gemini-call-N`) are not sent back.
Automatic function calling and automatic continuation are off: the SDK must neither run
tools nor silently reconnect; tool calls are returned to the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from google.genai import types

from server.llm.base import ChatMessage, ChatRequest, Role, ToolCall, ToolResult

SYNTHETIC_CALL_ID_PREFIX = "gemini-call-"


def _real_id(call_id: str) -> str | None:
    return None if not call_id or call_id.startswith(SYNTHETIC_CALL_ID_PREFIX) else call_id


def _arguments(arguments_json: str) -> dict[str, object]:
    try:
        value = json.loads(arguments_json) if arguments_json else {}
    except json.JSONDecodeError:
        return {"input": arguments_json}
    return value if isinstance(value, dict) else {"input": value}


def _signature(signature: str) -> bytes | None:
    if not signature:
        return None
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None


def _call_part(call: ToolCall) -> types.Part:
    return types.Part(
        function_call=types.FunctionCall(
            id=_real_id(call.id), name=call.name, args=_arguments(call.arguments_json)
        ),
        thought_signature=_signature(call.signature),
    )


def _result_part(result: ToolResult) -> types.Part:
    key = "error" if result.is_error else "output"
    return types.Part(
        function_response=types.FunctionResponse(
            id=_real_id(result.tool_call_id), name=result.name, response={key: result.content}
        )
    )


def _parts(message: ChatMessage) -> list[types.Part]:
    parts = [_result_part(result) for result in message.tool_results]
    if message.text:
        parts.append(types.Part(text=message.text))
    parts.extend(_call_part(call) for call in message.tool_calls)
    return parts


def to_contents(messages: Sequence[ChatMessage]) -> list[types.Content]:
    contents: list[types.Content] = []
    for message in messages:
        role = "model" if message.role is Role.ASSISTANT else "user"
        parts = _parts(message)
        if not parts:
            continue
        last = contents[-1] if contents else None
        if last is not None and last.role == role and last.parts is not None:
            last.parts.extend(parts)
        else:
            contents.append(types.Content(role=role, parts=parts))
    return contents


def to_config(request: ChatRequest, max_tokens: int) -> types.GenerateContentConfig:
    tools = (
        [
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name=tool.name,
                        description=tool.description,
                        parameters_json_schema=dict(tool.parameters),
                    )
                    for tool in request.tools
                ]
            )
        ]
        if request.tools
        else None
    )
    return types.GenerateContentConfig(
        system_instruction=request.system or None,
        max_output_tokens=request.max_tokens or max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop_sequences=list(request.stop_sequences) or None,
        tools=tools,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
    )
