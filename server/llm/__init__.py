"""LLM providers, used by chat, image generation and agent runs alike: one async streaming
call per answer (base.py), a registry of the models usable now (registry.py), retries before
the first token (retry.py), error mapping (errors.py), history trimming (history.py), and
image models (images.py). The Gemini client is built in one place (gemini_client.py);
OpenAI-compatible endpoints (OpenAI, DeepSeek, Ollama, …) are served by openai_compat.py.

This package knows no service: it imports only `server.config` and `server.core`."""

from server.llm.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Finish,
    FinishReason,
    ModelInfo,
    ProviderEvent,
    Role,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    ToolSpec,
    Usage,
)
from server.llm.errors import ProviderStreamError
from server.llm.history import TrimmedHistory, estimate_tokens, trim_history
from server.llm.images import GeneratedImage, ImageGenerator
from server.llm.registry import KNOWN_PROVIDERS, ProviderRegistry, ResolvedModel

__all__ = [
    "KNOWN_PROVIDERS",
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "Finish",
    "FinishReason",
    "GeneratedImage",
    "ImageGenerator",
    "ModelInfo",
    "ProviderEvent",
    "ProviderRegistry",
    "ProviderStreamError",
    "ResolvedModel",
    "Role",
    "TextDelta",
    "ToolCall",
    "ToolCallRequest",
    "ToolResult",
    "ToolSpec",
    "TrimmedHistory",
    "Usage",
    "estimate_tokens",
    "trim_history",
]
