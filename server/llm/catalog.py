"""The model catalog: what the server says about a model (display name, context window,
answer length, tools, image input, prices), in layers, the later winning field by field:

1. the provider's own description (`ChatProvider.models()`, or a bare one for a model the
   server only knows by name);
2. the built-in defaults below, taken from the providers' public model and price pages
   (see docs/models.md for the figures, their dates and sources: they need updating as
   providers change them);
3. the fields an OpenAI-compatible endpoint's model sets in Settings.openai_endpoints;
4. Settings.model_catalog (FORGE_MODEL_CATALOG), per model id.

An OpenAI-compatible endpoint's model is matched to the built-ins by its id, else by its
name as an id (OpenRouter's `openai/gpt-4o`), else by the name part alone (`gpt-4o` on an
endpoint called, say, `azure`). A keyless endpoint is a local server (Ollama, vLLM): its
models cost nothing unless Settings.model_catalog prices them. Unknown models cost nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from server.config import Settings
from server.config_catalog import ModelEntry
from server.config_endpoints import OpenAIEndpoint
from server.llm.base import FREE, ModelInfo, ModelPrices
from server.llm.echo import ECHO

T = TypeVar("T")
DEFAULT_CONTEXT_WINDOW_TOKENS = 128_000
"""Of a model nothing is known about (a discovered or a bare-named one)."""
_BUILT_IN_PROVIDERS = frozenset({"anthropic", "gemini", ECHO})


def _model(
    display_name: str,
    context_window: int,
    max_output: int,
    input_usd: float,
    output_usd: float,
    *,
    tools: bool = True,
    images: bool = True,
    usd_per_image: float | None = None,
) -> ModelEntry:
    return ModelEntry(
        display_name=display_name,
        context_window_tokens=context_window,
        max_output_tokens=max_output,
        supports_tools=tools,
        supports_image_input=images,
        input_usd_per_million_tokens=input_usd,
        output_usd_per_million_tokens=output_usd,
        usd_per_image=usd_per_image,
    )


BUILT_IN: dict[str, ModelEntry] = {
    # Anthropic: platform.claude.com models overview and pricing pages (2026-12).
    "anthropic/claude-opus-5-5": _model("Claude Opus 5.5", 1_000_000, 128_000, 4.0, 20.0),
    "anthropic/claude-sonnet-5-5": _model("Claude Sonnet 5.5", 1_000_000, 128_000, 2.0, 10.0),
    # (prompts up to 100,000 tokens; longer prompts cost $0.50 / $2.50)
    "anthropic/claude-haiku-5-5": _model("Claude Haiku 5.5", 1_000_000, 128_000, 0.10, 0.50),
    "anthropic/claude-opus-5": _model("Claude Opus 5", 1_000_000, 128_000, 5.0, 25.0),
    "anthropic/claude-opus-4-5": _model("Claude Opus 4.5", 200_000, 64_000, 5.0, 25.0),
    "anthropic/claude-sonnet-4-5": _model("Claude Sonnet 4.5", 200_000, 64_000, 3.0, 15.0),
    "anthropic/claude-haiku-4-5": _model("Claude Haiku 4.5", 200_000, 64_000, 1.0, 5.0),
    # Google: ai.google.dev Gemini API models and pricing pages (2026-12).
    # (introductory price through 2026-12-31; $1.50 / $7.50 from 2027-01-01)
    "gemini/gemini-3.8-flash": _model("Gemini 3.8 Flash", 1_048_576, 65_536, 0.75, 3.75),
    # (prompts up to 200,000 tokens; longer prompts cost $2.50 / $15)
    "gemini/gemini-2.5-pro": _model("Gemini 2.5 Pro", 1_048_576, 65_536, 1.25, 10.0),
    "gemini/gemini-2.5-flash": _model("Gemini 2.5 Flash", 1_048_576, 65_536, 0.30, 2.50),
    # An image model (GenerateImage): 1290 output tokens an image at $30 per million.
    "gemini/gemini-2.5-flash-image": _model(
        "Gemini 2.5 Flash Image", 32_768, 32_768, 0.30, 30.0, tools=False, usd_per_image=0.039
    ),
    # OpenAI: developers.openai.com API pricing and model pages (2026-11).
    "openai/gpt-5": _model("GPT-5", 400_000, 128_000, 1.25, 10.0),
    "openai/gpt-5-mini": _model("GPT-5 mini", 400_000, 128_000, 0.25, 2.0),
    "openai/gpt-5-nano": _model("GPT-5 nano", 400_000, 128_000, 0.05, 0.40),
    "openai/gpt-4.1": _model("GPT-4.1", 1_047_576, 32_768, 2.0, 8.0),
    "openai/gpt-4.1-mini": _model("GPT-4.1 mini", 1_047_576, 32_768, 0.40, 1.60),
    "openai/gpt-4.1-nano": _model("GPT-4.1 nano", 1_047_576, 32_768, 0.10, 0.40),
    "openai/gpt-4o": _model("GPT-4o", 128_000, 16_384, 2.50, 10.0),
    "openai/gpt-4o-mini": _model("GPT-4o mini", 128_000, 16_384, 0.15, 0.60),
    "openai/o3": _model("o3", 200_000, 100_000, 2.0, 8.0),
    "openai/o4-mini": _model("o4-mini", 200_000, 100_000, 1.10, 4.40),
    # DeepSeek: api-docs.deepseek.com models and pricing (cache-miss input price).
    "deepseek/deepseek-chat": _model("DeepSeek Chat", 128_000, 8_192, 0.28, 0.42, images=False),
    "deepseek/deepseek-reasoner": _model(
        "DeepSeek Reasoner", 128_000, 65_536, 0.28, 0.42, images=False
    ),
}

_BY_NAME: dict[str, ModelEntry] = {
    model_id.partition("/")[2]: entry
    for model_id, entry in BUILT_IN.items()
    if model_id.partition("/")[0] not in _BUILT_IN_PROVIDERS
}
"""OpenAI-compatible built-ins by their name part, for endpoints of other names."""

_FIELDS = tuple(ModelEntry.model_fields)
_ENDPOINT_FIELDS = {
    "display_name": "display_name",
    "context_window_tokens": "context_window_tokens",
    "max_output_tokens": "max_output_tokens",
    "supports_tools": "supports_tools",
}
"""What an endpoint's configured model may set (OpenAIModel field -> ModelEntry field)."""


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self._overrides = settings.model_catalog
        self._endpoints = settings.openai_endpoints

    def describe(self, model: ModelInfo) -> ModelInfo:
        """`model` (a provider's own description) with the catalog's layers applied."""
        entry = self._entry(model.provider, model.name, model.id)
        return dataclasses.replace(
            model,
            display_name=_given(entry.display_name, model.display_name),
            context_window_tokens=_given(entry.context_window_tokens, model.context_window_tokens),
            max_output_tokens=_given(entry.max_output_tokens, model.max_output_tokens),
            supports_tools=_given(entry.supports_tools, model.supports_tools),
            supports_image_input=_given(entry.supports_image_input, model.supports_image_input),
            prices=_prices(entry),
        )

    def bare(self, provider: str, name: str, *, discovered: bool = False) -> ModelInfo:
        """A model the server knows only by name (listed in Settings without its provider
        being usable by the server, or discovered), described by the catalog."""
        model_id = f"{provider}/{name}"
        return self.describe(
            ModelInfo(
                model_id,
                provider,
                name,
                f"{provider} {name}",
                DEFAULT_CONTEXT_WINDOW_TOKENS,
                discovered=discovered,
            )
        )

    def prices(self, model_id: str) -> ModelPrices:
        """What `model_id` costs now (FREE for echo, local and unknown models)."""
        if model_id == ECHO:
            return FREE
        provider, _, name = model_id.partition("/")
        return _prices(self._entry(provider, name, model_id))

    def _entry(self, provider: str, name: str, model_id: str) -> ModelEntry:
        """What the layers set (None: nothing), later layers winning field by field."""
        fields: dict[str, Any] = {}
        endpoint = self._endpoints.get(provider)
        built_in = self._built_in(provider, name, model_id, endpoint)
        if built_in is not None:
            fields.update(_set_fields(built_in))
        if endpoint is not None:
            fields.update(_endpoint_fields(endpoint, name))
        override = self._overrides.get(model_id)
        if override is not None:
            fields.update(_set_fields(override))
        return ModelEntry.model_construct(**fields)

    @staticmethod
    def _built_in(
        provider: str, name: str, model_id: str, endpoint: OpenAIEndpoint | None
    ) -> ModelEntry | None:
        if endpoint is None:
            return BUILT_IN.get(model_id)
        found = (
            BUILT_IN.get(model_id)
            or BUILT_IN.get(name)
            or _BY_NAME.get(name)
            or _BY_NAME.get(name.rsplit("/", 1)[-1])
        )
        if found is None or endpoint.api_key is not None:
            return found
        # A keyless endpoint is a local server: the capabilities hold, the prices do not.
        return found.model_copy(
            update={
                "input_usd_per_million_tokens": None,
                "output_usd_per_million_tokens": None,
                "usd_per_image": None,
            }
        )


def _given(value: T | None, default: T) -> T:
    return default if value is None else value


def _prices(entry: ModelEntry) -> ModelPrices:
    return ModelPrices(
        entry.input_usd_per_million_tokens or 0.0,
        entry.output_usd_per_million_tokens or 0.0,
        entry.usd_per_image or 0.0,
    )


def _set_fields(entry: ModelEntry) -> dict[str, Any]:
    return {name: value for name in _FIELDS if (value := getattr(entry, name)) is not None}


def _endpoint_fields(endpoint: OpenAIEndpoint, name: str) -> dict[str, Any]:
    for model in endpoint.models:
        if model.name == name:
            return {
                _ENDPOINT_FIELDS[field]: getattr(model, field)
                for field in model.model_fields_set
                if field in _ENDPOINT_FIELDS and getattr(model, field) is not None
            }
    return {}
