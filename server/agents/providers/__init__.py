"""Model providers: one async streaming call per answer (see base.py), a registry of the
models usable now (registry.py), retries before the first token (retry.py), error mapping
(errors.py) and history trimming (history.py)."""

from server.agents.providers.base import (
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
from server.agents.providers.errors import ProviderStreamError
from server.agents.providers.history import TrimmedHistory, estimate_tokens, trim_history
from server.agents.providers.registry import ProviderRegistry, ResolvedModel

__all__ = [
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "Finish",
    "FinishReason",
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
