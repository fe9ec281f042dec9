"""The offline `echo` model: always available, deterministic, paced like a real stream.

The answer (echo_answer.py) is cut into word tokens, each with the whitespace before it, so
the deltas concatenate to exactly the answer (code blocks keep their indentation). One
delta every `echo_token_delay_ms`, on a fixed schedule (no drift). Usage counts tokens as
whitespace-separated words: input = words of the system prompt and the whole history,
output = deltas sent. `max_tokens` cuts the answer (finish reason `max_tokens`).

The answer text is composed before the first delta and cut into tokens as they are sent,
so relaying a token costs one timer wait and one yield, and a stream holds its answer as
its paragraphs (the prompt's being the request's own string, not a copy) rather than a
list of deltas (echo_answer.EchoAnswer.tokens).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from server.config import Settings
from server.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    FinishReason,
    ModelInfo,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from server.llm.echo_answer import compose

ECHO = "echo"
CONTEXT_WINDOW_TOKENS = 1_000_000


def count_words(text: str) -> int:
    return len(text.split())


def _message_words(message: ChatMessage) -> int:
    words = count_words(message.text)
    for call in message.tool_calls:
        words += count_words(call.arguments_json) + 1
    for result in message.tool_results:
        words += count_words(result.content)
    return words


class EchoProvider:
    name = ECHO

    def __init__(self, settings: Settings) -> None:
        self._delay = max(settings.echo_token_delay_ms, 0.0) / 1000
        self._max_tokens = settings.provider_max_output_tokens

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                ECHO, ECHO, ECHO, "Echo (offline, repeats your message)", CONTEXT_WINDOW_TOKENS
            )
        ]

    async def aclose(self) -> None:
        return None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        answer = compose(request)
        limit = request.max_tokens or self._max_tokens
        reason: FinishReason = "tool_use" if answer.tool_call else "stop"
        input_tokens = count_words(request.system) + sum(
            _message_words(message) for message in request.messages
        )
        delay = self._delay
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        # Tokens are cut from the answer as they are sent: a long answer is not held as a
        # list of deltas for the whole stream.
        for token in answer.tokens():
            if sent == limit:
                reason = "max_tokens"
                break
            sent += 1
            if delay > 0:
                await asyncio.sleep(max(start + sent * delay - loop.time(), 0))
            else:
                await asyncio.sleep(0)
            yield TextDelta(token)
        if answer.tool_call is not None and reason == "tool_use":
            call = answer.tool_call
            yield ToolCallRequest(call.id, call.name, call.arguments_json)
        yield Finish(reason, Usage(input_tokens=input_tokens, output_tokens=sent))
