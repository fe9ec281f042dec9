"""`gemini/<model>`: the Gemini API (`streamGenerateContent?alt=sse`) through `google-genai`
(the client: gemini_client.py).

The SDK stacks several async generators over the HTTP response, and closing the outermost
does not close the ones beneath, which would leave the connection open until the garbage
collector got to them; so we close the response ourselves. A response hook hands each
response to the stream that is opening it (a context variable set only while that stream is
starting).

Automatic continuation is off (retry.py retries, before the first event only). Chunks are
mapped as they arrive: text parts -> TextDelta, function calls -> ToolCallRequest (a unique
`gemini-call-…` id is made up when the model gave none), the last `usageMetadata` -> usage,
`finishReason` -> Finish.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextvars import ContextVar

import httpx2
from google.genai import types
from pydantic import SecretStr

from server.config import Settings
from server.llm.base import (
    ChatRequest,
    Finish,
    FinishReason,
    ModelInfo,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from server.llm.errors import failure_for_protocol
from server.llm.gemini_client import CALL_ERRORS, NAME, GeminiClient, map_error
from server.llm.gemini_request import (
    SYNTHETIC_CALL_ID_PREFIX,
    to_config,
    to_contents,
)
from server.llm.retry import RetryPolicy, stream_with_retries

CONTEXT_WINDOW_TOKENS = 1_048_576
"""Of every model listed (prompt + answer tokens)."""

_CONTENT_FILTERS = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.RECITATION,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.SPII,
        types.FinishReason.IMAGE_SAFETY,
        types.FinishReason.IMAGE_PROHIBITED_CONTENT,
        types.FinishReason.IMAGE_RECITATION,
        types.FinishReason.MODEL_ARMOR,
    }
)

_opening: ContextVar[list[httpx2.Response] | None] = ContextVar("gemini_opening", default=None)


async def _hand_over(response: httpx2.Response) -> None:
    sink = _opening.get()
    if sink is not None:
        sink.append(response)


def _finish_reason(reason: types.FinishReason, called_tools: bool) -> FinishReason:
    if reason == types.FinishReason.MAX_TOKENS:
        return "max_tokens"
    if reason in _CONTENT_FILTERS:
        return "content_filter"
    return "tool_use" if called_tools else "stop"


class GeminiProvider:
    name = NAME

    def __init__(self, settings: Settings, *, api_key: SecretStr | None = None) -> None:
        """`api_key`: a caller's own key instead of Settings.gemini_api_key."""
        self._client = GeminiClient(settings, response_hooks=[_hand_over], api_key=api_key)
        self._policy = RetryPolicy.from_settings(settings)
        self._max_tokens = settings.provider_max_output_tokens
        self._model_names = list(settings.gemini_models)

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(f"{NAME}/{model}", NAME, model, f"Google {model}", CONTEXT_WINDOW_TOKENS)
            for model in self._model_names
        ]

    async def aclose(self) -> None:
        await self._client.aclose()

    def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        return stream_with_retries(lambda: self._attempt(request), self._policy, provider=NAME)

    async def _attempt(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        responses: list[httpx2.Response] = []
        chunks: AsyncIterator[types.GenerateContentResponse] | None = None
        input_tokens = output_tokens = calls = 0
        finish: types.FinishReason | None = None
        blocked = False
        try:
            opening = _opening.set(responses)
            try:
                chunks = await self._client.models.generate_content_stream(
                    model=request.model,
                    contents=to_contents(request.messages),
                    config=to_config(request, self._max_tokens),
                )
                chunk = await anext(chunks, None)
            finally:
                _opening.reset(opening)
            while chunk is not None:
                usage = chunk.usage_metadata
                if usage is not None:
                    input_tokens = usage.prompt_token_count or 0
                    output_tokens = (usage.candidates_token_count or 0) + (
                        usage.thoughts_token_count or 0
                    )
                if chunk.candidates:
                    candidate = chunk.candidates[0]
                    content = candidate.content
                    for part in (content.parts if content is not None else None) or ():
                        if part.thought:
                            continue
                        if part.text:
                            yield TextDelta(part.text)
                        elif part.function_call is not None:
                            call = part.function_call
                            calls += 1
                            signature = part.thought_signature
                            yield ToolCallRequest(
                                call.id or f"{SYNTHETIC_CALL_ID_PREFIX}{uuid.uuid4().hex[:16]}",
                                call.name or "",
                                json.dumps(call.args or {}),
                                base64.b64encode(signature).decode() if signature else "",
                            )
                    if candidate.finish_reason is not None:
                        finish = candidate.finish_reason
                elif chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason:
                    blocked = True
                chunk = await anext(chunks, None)
        except CALL_ERRORS as error:
            raise map_error(error) from None
        finally:
            for response in responses:
                await response.aclose()
            if chunks is not None and hasattr(chunks, "aclose"):
                await chunks.aclose()
        if blocked:
            yield Finish("content_filter", Usage(input_tokens, output_tokens))
        elif finish is None:
            raise failure_for_protocol(NAME, "the stream ended without a finish reason")
        else:
            yield Finish(_finish_reason(finish, calls > 0), Usage(input_tokens, output_tokens))
