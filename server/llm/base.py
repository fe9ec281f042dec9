"""The provider interface: one async streaming call per answer.

A provider turns a `ChatRequest` into a stream of `ProviderEvent`s:

    TextDelta*  (ToolCallRequest*)  Finish

`Finish` is always the last event of a stream that completed; a stream the consumer stops
early (`aclose()`, or its task cancelled) ends without one, and the provider's HTTP request
is closed at once. Consume a stream with `contextlib.aclosing` so that stopping early is
immediate rather than left to the garbage collector:

    async with aclosing(provider.stream(request)) as events:
        async for event in events:
            ...

Errors: before the first event, transient provider failures are retried (see retry.py) and
a final failure raises a `server.core.errors.ForgeError`; after the first event a failure
raises `ProviderStreamError` carrying the mapped `ForgeError` (see errors.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, TypeAlias


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    """Results of the tool calls the assistant asked for in the message before."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the assistant made (in history) or asks for (`ToolCallRequest`)."""

    id: str
    name: str
    arguments_json: str = "{}"
    """A JSON object, as text: exactly what the model produced."""
    signature: str = ""
    """Opaque provider data to send back with the call (Gemini's thought signature,
    base64); keep it with the call in history."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_call_id: str
    name: str
    """The tool's name (Gemini pairs a result with its call by name)."""
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of history. USER and ASSISTANT carry `text` (an ASSISTANT turn may also carry
    `tool_calls`); TOOL carries the `tool_results` answering the previous turn's calls."""

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()

    @classmethod
    def user(cls, text: str) -> ChatMessage:
        return cls(Role.USER, text)

    @classmethod
    def assistant(cls, text: str, tool_calls: Sequence[ToolCall] = ()) -> ChatMessage:
        return cls(Role.ASSISTANT, text, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, results: Sequence[ToolResult]) -> ChatMessage:
        return cls(Role.TOOL, tool_results=tuple(results))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: `parameters` is a JSON Schema object."""

    name: str
    description: str
    parameters: Mapping[str, object] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    """The provider's own model name, without the `provider/` prefix (see registry.py)."""
    messages: Sequence[ChatMessage]
    system: str = ""
    tools: Sequence[ToolSpec] = ()
    max_tokens: int | None = None
    """None: Settings.provider_max_output_tokens."""
    temperature: float | None = None
    """None: the provider's default."""
    top_p: float | None = None
    """None: the provider's default."""
    stop_sequences: Sequence[str] = ()

    @property
    def prompt(self) -> str:
        """The text of the newest user message ("" if there is none)."""
        for message in reversed(self.messages):
            if message.role is Role.USER:
                return message.text
        return ""


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """The model asks for a tool call; the stream then finishes with reason `tool_use`."""

    id: str
    name: str
    arguments_json: str
    signature: str = ""
    """Keep it: `ToolCall.signature` of this call in later history."""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


FinishReason: TypeAlias = Literal["stop", "max_tokens", "tool_use", "content_filter"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    usage: Usage


ProviderEvent: TypeAlias = TextDelta | ToolCallRequest | Finish


NANOS_PER_USD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """What a model costs, in US dollars (0: free, e.g. a local model, or not known)."""

    input_usd_per_million_tokens: float = 0.0
    output_usd_per_million_tokens: float = 0.0
    usd_per_image: float = 0.0
    """Image models: one generated image."""

    def cost_nanos(self, input_tokens: int, output_tokens: int) -> int:
        """The cost of tokens in billionths of a US dollar (USD per million tokens x tokens
        / 1e6 x 1e9 = price x tokens x 1000), rounded to the nearest."""
        return round(
            input_tokens * self.input_usd_per_million_tokens * 1000
            + output_tokens * self.output_usd_per_million_tokens * 1000
        )

    def image_cost_nanos(self, images: int = 1) -> int:
        return round(images * self.usd_per_image * NANOS_PER_USD)


FREE = ModelPrices()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    """What clients name: `echo`, `anthropic/<model>`, `gemini/<model>`, `<endpoint>/<model>`
    (an OpenAI-compatible endpoint)."""
    provider: str
    name: str
    """The provider's own model name."""
    display_name: str
    context_window_tokens: int
    """Prompt and answer tokens together."""
    supports_tools: bool = True
    max_output_tokens: int | None = None
    """None: Settings.provider_max_output_tokens."""
    supports_image_input: bool = False
    prices: ModelPrices = FREE
    discovered: bool = False
    """Found by asking the provider for its models (ListModels `refresh`), not configured."""


class ChatProvider(Protocol):
    name: str
    """The prefix of the model ids it serves: `anthropic`, `gemini`, `echo`, or the name of
    an OpenAI-compatible endpoint."""

    def models(self) -> list[ModelInfo]:
        """The models to list (ListModels)."""
        ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """An async generator of the answer's events (see the module docstring)."""
        ...

    async def aclose(self) -> None:
        """Releases the provider's HTTP connections (at server shutdown)."""
        ...
