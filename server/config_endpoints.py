"""Settings of the OpenAI-compatible endpoints (`Settings.openai_endpoints`).

In the environment, FORGE_OPENAI_ENDPOINTS is JSON: an object of name -> endpoint, e.g.

    {"openai": {"base_url": "https://api.openai.com/v1", "api_key": "sk-…",
                "models": ["gpt-4o-mini", {"name": "gpt-4.1", "context_window_tokens": 1047576}]},
     "ollama": {"base_url": "http://localhost:11434/v1", "models": ["llama3.2"]}}

or a list of endpoints each with a `name`. Models are then addressed `<name>/<model>`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

RESERVED_NAMES = frozenset({"anthropic", "gemini", "echo"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")

OPENAI_ENDPOINTS_HELP = (
    "OpenAI-compatible Chat Completions endpoints (OpenAI, DeepSeek, OpenRouter, Ollama, vLLM…) "
    "as JSON: an object of name -> {base_url, api_key (optional: local servers), models: "
    "[name or {name, display_name, context_window_tokens, max_output_tokens, supports_tools}], "
    "max_tokens_param}; models are addressed <name>/<model>"
)


class OpenAIModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    display_name: str | None = None
    context_window_tokens: int = Field(128_000, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)
    """None: Settings.provider_max_output_tokens."""
    supports_tools: bool = True


def _model(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


class OpenAIEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(min_length=1)
    """Up to and including the version, e.g. https://api.openai.com/v1."""
    api_key: SecretStr | None = None
    """None: a keyless (local) server."""
    models: list[Annotated[OpenAIModel, BeforeValidator(_model)]] = Field(default_factory=list)
    """Listed by ListModels; any well-formed model name is accepted in a request."""
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """How the answer length limit is sent: OpenAI's reasoning models want
    max_completion_tokens; most compatible servers know only max_tokens."""


def _from_list(value: object) -> object:
    if not isinstance(value, list):
        return value
    endpoints: dict[str, object] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("each endpoint of a list needs a name")
        endpoints[item["name"]] = {key: v for key, v in item.items() if key != "name"}
    return endpoints


def _check_names(endpoints: dict[str, OpenAIEndpoint]) -> dict[str, OpenAIEndpoint]:
    for name in endpoints:
        if name in RESERVED_NAMES:
            raise ValueError(f"endpoint name {name!r} is taken by a built-in provider")
        if not _NAME.fullmatch(name):
            raise ValueError(f"endpoint name {name!r}: use lower-case letters, digits, - and _")
    return endpoints


OpenAIEndpoints = Annotated[
    dict[str, OpenAIEndpoint], BeforeValidator(_from_list), AfterValidator(_check_names)
]
