"""`anthropic/<model>`: the Anthropic Messages API, streamed, through the `anthropic` SDK.

The SDK's own retries are off (`max_retries=0`): retry.py retries, and only before the first
event. Raw stream events (`create(stream=True)`) are mapped as they arrive:
`content_block_delta` text -> TextDelta; a `tool_use` block's `input_json_delta` parts are
joined and become one ToolCallRequest at its `content_block_stop`; `message_start` and
`message_delta` carry usage and the stop reason; `message_stop` -> Finish. An `error` event
(which the SDK raises as an APIStatusError with the stream's 200 status) is mapped by its
error type. Closing the generator closes the HTTP response, hence the connection.

`ChatRequest.temperature` and `top_p` go in the request body (`extra_body`): this SDK's
`create` has no parameters for them, the Messages API takes them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import anthropic
import httpx2
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    ToolUseBlock,
)
from anthropic.types import (
    TextDelta as AnthropicTextDelta,
)
from pydantic import SecretStr

from server.config import Settings
from server.llm.anthropic_request import to_messages, to_tools
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
from server.llm.retry import RetryPolicy, stream_with_retries

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
CONTEXT_WINDOW_TOKENS = 200_000
"""Of every model listed (prompt + answer tokens)."""

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "tool_use": "tool_use",
    "refusal": "content_filter",
}

# The HTTP status each error type of an in-stream `error` event stands for.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def map_error(error: Exception) -> ProviderFailure:
    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        if status < 400:  # an `error` event inside a streamed 200 response
            return failure_for_status(NAME, _ERROR_TYPE_STATUS.get(error.type or "", 500))
        return failure_for_status(
            NAME, status, retry_after=parse_retry_after(error.response.headers.get)
        )
    if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
        return failure_for_transport(NAME, "timed out")
    if isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
        return failure_for_transport(NAME, "the connection failed")
    return failure_for_protocol(NAME, type(error).__name__)


@dataclass(slots=True)
class _ToolBlock:
    id: str
    name: str
    parts: list[str] = field(default_factory=list)


class AnthropicProvider:
    name = NAME

    def __init__(self, settings: Settings, *, api_key: SecretStr | None = None) -> None:
        """`api_key`: a caller's own key instead of Settings.anthropic_api_key."""
        key = api_key or settings.anthropic_api_key
        if key is None:
            raise ValueError("anthropic needs Settings.anthropic_api_key")
        timeout = httpx2.Timeout(settings.provider_timeout_seconds)
        self._client = anthropic.AsyncAnthropic(
            api_key=key.get_secret_value(),
            base_url=settings.anthropic_base_url or DEFAULT_BASE_URL,
            max_retries=0,
            timeout=timeout,
            # The SDK's aiohttp transport: its C parser reads the stream's bytes, where the
            # default (h11) spent ~60 µs of Python per streamed delta (bench/README.md).
            http_client=anthropic.DefaultAioHttpClient(timeout=timeout),
        )
        self._policy = RetryPolicy.from_settings(settings)
        self._max_tokens = settings.provider_max_output_tokens
        self._model_names = list(settings.anthropic_models)

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(f"{NAME}/{model}", NAME, model, f"Anthropic {model}", CONTEXT_WINDOW_TOKENS)
            for model in self._model_names
        ]

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        return stream_with_retries(lambda: self._attempt(request), self._policy, provider=NAME)

    async def _attempt(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        tools = to_tools(request.tools)
        try:
            stream = await self._client.messages.create(
                model=request.model,
                max_tokens=request.max_tokens or self._max_tokens,
                messages=to_messages(request.messages),
                system=request.system or anthropic.omit,
                tools=tools or anthropic.omit,
                stop_sequences=list(request.stop_sequences) or anthropic.omit,
                stream=True,
                extra_body=_sampling(request) or None,
            )
        except (anthropic.APIError, httpx2.HTTPError, ValueError) as error:
            raise map_error(error) from None
        input_tokens = output_tokens = 0
        stop_reason: str | None = None
        tool_blocks: dict[int, _ToolBlock] = {}
        try:
            async for event in stream:
                if isinstance(event, RawContentBlockDeltaEvent):
                    delta = event.delta
                    if isinstance(delta, AnthropicTextDelta):
                        if delta.text:
                            yield TextDelta(delta.text)
                    elif isinstance(delta, InputJSONDelta):
                        block = tool_blocks.get(event.index)
                        if block is not None:
                            block.parts.append(delta.partial_json)
                elif isinstance(event, RawContentBlockStartEvent):
                    content = event.content_block
                    if isinstance(content, ToolUseBlock):
                        tool_blocks[event.index] = _ToolBlock(content.id, content.name)
                    elif isinstance(content, TextBlock) and content.text:
                        yield TextDelta(content.text)
                elif isinstance(event, RawContentBlockStopEvent):
                    done = tool_blocks.pop(event.index, None)
                    if done is not None:
                        yield ToolCallRequest(done.id, done.name, "".join(done.parts) or "{}")
                elif isinstance(event, RawMessageStartEvent):
                    usage = event.message.usage
                    input_tokens = (
                        usage.input_tokens
                        + (usage.cache_creation_input_tokens or 0)
                        + (usage.cache_read_input_tokens or 0)
                    )
                    output_tokens = usage.output_tokens
                elif isinstance(event, RawMessageDeltaEvent):
                    stop_reason = event.delta.stop_reason or stop_reason
                    output_tokens = event.usage.output_tokens
                    if event.usage.input_tokens is not None:
                        input_tokens = (
                            event.usage.input_tokens
                            + (event.usage.cache_creation_input_tokens or 0)
                            + (event.usage.cache_read_input_tokens or 0)
                        )
                elif isinstance(event, RawMessageStopEvent):
                    reason = _FINISH_REASONS.get(stop_reason or "end_turn", "stop")
                    yield Finish(reason, Usage(input_tokens, output_tokens))
                    return
        except (anthropic.APIError, httpx2.HTTPError, ValueError) as error:
            raise map_error(error) from None
        finally:
            await stream.close()
        raise failure_for_protocol(NAME, "the stream ended before message_stop")


def _sampling(request: ChatRequest) -> dict[str, float]:
    sampling = {"temperature": request.temperature, "top_p": request.top_p}
    return {name: value for name, value in sampling.items() if value is not None}
