"""`<endpoint>/<model>`: an OpenAI-compatible Chat Completions endpoint (OpenAI, DeepSeek,
OpenRouter, Ollama, vLLM…), streamed, through the official `openai` SDK.

One provider per endpoint of Settings.openai_endpoints; its name is the endpoint's name. A
keyless endpoint (a local server) is sent a placeholder key: the SDK insists on one and would
otherwise read OPENAI_API_KEY from the environment.

The SDK's own retries are off (`max_retries=0`): retry.py retries, and only before the first
event. Chunks are mapped as they arrive: `delta.content` -> TextDelta; `delta.tool_calls`
parts are joined per `index` (the first part carries the id and name, the rest pieces of
`arguments`) and become ToolCallRequests once the choice has its `finish_reason`; the last
chunk (`stream_options.include_usage`, no choices) carries usage; Finish comes when the
stream ends (`data: [DONE]`). An error object inside the stream, which the SDK raises as a
plain APIError, is mapped by its type or code. Closing the generator closes the response.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field

import httpx2
import openai
from openai.types.chat import ChatCompletionChunk
from pydantic import SecretStr

from server.config import Settings
from server.config_endpoints import OpenAIEndpoint
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
from server.llm.errors import (
    ProviderFailure,
    failure_for_protocol,
    failure_for_status,
    failure_for_transport,
    parse_retry_after,
)
from server.llm.openai_request import to_messages, to_tools
from server.llm.retry import RetryPolicy, stream_with_retries

KEYLESS_PLACEHOLDER = "forge-keyless"
SYNTHETIC_CALL_ID_PREFIX = "call_forge_"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}


def _status_of_stream_error(body: object) -> int:
    """The HTTP status an error object inside a 200 stream stands for."""
    if not isinstance(body, Mapping):
        return 500
    code = body.get("code")
    if isinstance(code, int) and 400 <= code < 600:
        return code
    described = f"{body.get('type') or ''} {code or ''}".lower()
    if "rate_limit" in described:
        return 429
    if "auth" in described or "api_key" in described:
        return 401
    if "permission" in described:
        return 403
    return 500


def map_error(provider: str, error: Exception) -> ProviderFailure:
    if isinstance(error, openai.APIStatusError):
        return failure_for_status(
            provider,
            error.status_code,
            retry_after=parse_retry_after(error.response.headers.get),
        )
    if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException):
        return failure_for_transport(provider, "timed out")
    if isinstance(error, openai.APIConnectionError | httpx2.TransportError):
        return failure_for_transport(provider, "the connection failed")
    if isinstance(error, openai.APIError):  # an error object inside the stream
        return failure_for_status(provider, _status_of_stream_error(error.body))
    return failure_for_protocol(provider, type(error).__name__)


_CALL_ERRORS = (openai.OpenAIError, httpx2.HTTPError, ValueError)


@dataclass(slots=True)
class _ToolCall:
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


class OpenAICompatProvider:
    def __init__(
        self,
        name: str,
        endpoint: OpenAIEndpoint,
        settings: Settings,
        *,
        api_key: SecretStr | None = None,
    ) -> None:
        """`api_key`: a caller's own key instead of the endpoint's."""
        self.name = name
        secret = api_key or endpoint.api_key
        key = secret.get_secret_value() if secret else KEYLESS_PLACEHOLDER
        timeout = httpx2.Timeout(settings.provider_timeout_seconds)
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=endpoint.base_url,
            max_retries=0,
            timeout=timeout,
            # aiohttp's C parser reads the stream (as the anthropic provider does).
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )
        self._policy = RetryPolicy.from_settings(settings)
        self._max_tokens = settings.provider_max_output_tokens
        self._max_tokens_param = endpoint.max_tokens_param
        self._models = {model.name: model for model in endpoint.models}

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                f"{self.name}/{model.name}",
                self.name,
                model.name,
                model.display_name or f"{self.name} {model.name}",
                model.context_window_tokens,
                supports_tools=model.supports_tools,
                max_output_tokens=model.max_output_tokens,
            )
            for model in self._models.values()
        ]

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        return stream_with_retries(lambda: self._attempt(request), self._policy, provider=self.name)

    def _max_tokens_for(self, request: ChatRequest) -> int:
        if request.max_tokens:
            return request.max_tokens
        model = self._models.get(request.model)
        return (model.max_output_tokens if model else None) or self._max_tokens

    async def _attempt(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        tools = to_tools(request.tools)
        limit = self._max_tokens_for(request)
        by_completion = self._max_tokens_param == "max_completion_tokens"
        try:
            stream = await self._client.chat.completions.create(
                model=request.model,
                messages=to_messages(request.system, request.messages),
                tools=tools or openai.omit,
                temperature=request.temperature if request.temperature is not None else openai.omit,
                top_p=request.top_p if request.top_p is not None else openai.omit,
                stop=list(request.stop_sequences) or openai.omit,
                max_tokens=openai.omit if by_completion else limit,
                max_completion_tokens=limit if by_completion else openai.omit,
                stream=True,
                stream_options={"include_usage": True},
            )
        except _CALL_ERRORS as error:
            raise map_error(self.name, error) from None
        usage = Usage()
        finish: str | None = None
        calls: dict[int, _ToolCall] = {}
        try:
            async for chunk in stream:
                usage = _usage(chunk) or usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta.content:
                    yield TextDelta(delta.content)
                for part in delta.tool_calls or ():
                    call = calls.setdefault(part.index, _ToolCall())
                    call.id = part.id or call.id
                    if part.function is not None:
                        call.name = part.function.name or call.name
                        if part.function.arguments:
                            call.parts.append(part.function.arguments)
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
                    for index in sorted(calls):
                        yield _request(calls.pop(index))
        except _CALL_ERRORS as error:
            raise map_error(self.name, error) from None
        finally:
            await stream.close()
        if finish is None:
            raise failure_for_protocol(self.name, "the stream ended without a finish reason")
        yield Finish(_FINISH_REASONS.get(finish, "stop"), usage)


def _usage(chunk: ChatCompletionChunk) -> Usage | None:
    if chunk.usage is None:
        return None
    return Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)


def _request(call: _ToolCall) -> ToolCallRequest:
    return ToolCallRequest(
        call.id or f"{SYNTHETIC_CALL_ID_PREFIX}{uuid.uuid4().hex[:16]}",
        call.name,
        "".join(call.parts) or "{}",
    )
