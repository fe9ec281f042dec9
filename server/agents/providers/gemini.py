"""`gemini/<model>`: the Gemini API (`streamGenerateContent?alt=sse`) through `google-genai`.

The SDK is given our own httpx2 client, so tests and production take the same transport
(the SDK would otherwise switch to aiohttp whenever aiohttp happens to be installed) and so
we can close the HTTP response ourselves: the SDK stacks several async generators over it,
and closing the outermost does not close the ones beneath, which would leave the connection
open until the garbage collector got to them. A response hook hands each response to the
stream that is opening it (a context variable set only while that stream is starting).

SDK retries and automatic continuation are off (retry.py retries, before the first event
only). Chunks are mapped as they arrive: text parts -> TextDelta, function calls ->
ToolCallRequest (a unique `gemini-call-…` id is made up when the model gave none), the
last `usageMetadata` -> usage, `finishReason` -> Finish.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextvars import ContextVar

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from server.agents.providers.base import (
    ChatRequest,
    Finish,
    FinishReason,
    ModelInfo,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from server.agents.providers.errors import (
    ProviderFailure,
    failure_for_protocol,
    failure_for_status,
    failure_for_transport,
    parse_duration,
    parse_retry_after,
)
from server.agents.providers.gemini_request import (
    SYNTHETIC_CALL_ID_PREFIX,
    to_config,
    to_contents,
)
from server.agents.providers.retry import RetryPolicy, stream_with_retries
from server.config import Settings

NAME = "gemini"
API_VERSION = "v1beta"
"""Pinned: the SDK's default follows the GOOGLE_GENAI_API_VERSION environment variable."""

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


def _header_getter(response: object) -> Callable[[str], str | None]:
    headers = getattr(response, "headers", None)
    if not isinstance(headers, Mapping | httpx2.Headers):
        return lambda _name: None
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    return lowered.get


def _error_details(body: object, kind: str) -> list[dict[str, object]]:
    """The google.rpc `details` entries of type `kind` (e.g. "RetryInfo") in an error body."""
    error = body.get("error", body) if isinstance(body, dict) else None
    entries = error.get("details") if isinstance(error, dict) else None
    return [
        entry
        for entry in (entries if isinstance(entries, list) else ())
        if isinstance(entry, dict) and str(entry.get("@type", "")).endswith(f".{kind}")
    ]


def _retry_info(body: object) -> float | None:
    """`retryDelay` of a google.rpc.RetryInfo in the error body, in seconds."""
    for entry in _error_details(body, "RetryInfo"):
        delay = entry.get("retryDelay")
        if isinstance(delay, str):
            return parse_duration(delay)
    return None


def _rejects_the_key(body: object) -> bool:
    """Gemini refuses a bad key with 400 INVALID_ARGUMENT and ErrorInfo API_KEY_INVALID."""
    return any(
        str(entry.get("reason", "")).startswith("API_KEY_")
        for entry in _error_details(body, "ErrorInfo")
    )


def map_error(error: Exception) -> ProviderFailure:
    if isinstance(error, genai_errors.APIError):
        status = error.code if isinstance(error.code, int) else 500
        if status == 400 and _rejects_the_key(error.details):
            status = 401
        retry_after = _retry_info(error.details)
        if retry_after is None:
            retry_after = parse_retry_after(_header_getter(error.response))
        return failure_for_status(NAME, status, retry_after=retry_after)
    if isinstance(error, httpx2.TimeoutException):
        return failure_for_transport(NAME, "timed out")
    if isinstance(error, httpx2.TransportError):
        return failure_for_transport(NAME, "the connection failed")
    return failure_for_protocol(NAME, type(error).__name__)


def _finish_reason(reason: types.FinishReason, called_tools: bool) -> FinishReason:
    if reason == types.FinishReason.MAX_TOKENS:
        return "max_tokens"
    if reason in _CONTENT_FILTERS:
        return "content_filter"
    return "tool_use" if called_tools else "stop"


class GeminiProvider:
    name = NAME

    def __init__(self, settings: Settings) -> None:
        if settings.gemini_api_key is None:
            raise ValueError("gemini needs Settings.gemini_api_key")
        timeout = settings.provider_timeout_seconds
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout), event_hooks={"response": [_hand_over]}
        )
        self._client = genai.Client(
            api_key=settings.gemini_api_key.get_secret_value(),
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url,
                api_version=API_VERSION,
                # Per request; the SDK passes None as "no timeout at all" to httpx.
                timeout=max(int(timeout * 1000), 1),
                httpx_async_client=self._http,
            ),
        )
        self._policy = RetryPolicy.from_settings(settings)
        self._max_tokens = settings.provider_max_output_tokens
        self._model_names = list(settings.gemini_models)

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(f"{NAME}/{model}", NAME, model, f"Google {model}")
            for model in self._model_names
        ]

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()  # the SDK's own (unused) sync client
        await self._http.aclose()

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
                chunks = await self._client.aio.models.generate_content_stream(
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
        except (genai_errors.APIError, httpx2.HTTPError, ValueError) as error:
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
