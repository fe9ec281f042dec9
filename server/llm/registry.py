"""Which models can be used now, and which provider serves a model id.

Model ids: `echo` (offline, always there), `anthropic/<model>` and `gemini/<model>` (when
that provider's key is configured), and `<endpoint>/<model>` for each OpenAI-compatible
endpoint of Settings.openai_endpoints (its model names may contain `/`, as OpenRouter's do).
Any well-formed model name is accepted for a configured provider; `models()` lists the names
configured in Settings. The default model is Settings.default_model, else the first listed
model of the first configured provider (anthropic, gemini, then the endpoints in order), else
`echo`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.config import Settings
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.llm.base import ChatProvider, ModelInfo
from server.llm.echo import ECHO, EchoProvider

KNOWN_PROVIDERS = ("anthropic", "gemini", ECHO)
UNKNOWN_MODEL = "UNKNOWN_MODEL"
PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_ENDPOINT_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    id: str
    """The canonical model id (what to store and report)."""
    provider: ChatProvider
    name: str
    """The provider's own model name: `ChatRequest.model`."""


def _configured(settings: Settings) -> list[ChatProvider]:
    # A provider's SDK is imported only when its key is configured: the Anthropic SDK alone
    # adds about 50 MB to the process.
    providers: list[ChatProvider] = []
    if settings.anthropic_api_key is not None:
        from server.llm.anthropic import AnthropicProvider

        providers.append(AnthropicProvider(settings))
    if settings.gemini_api_key is not None:
        from server.llm.gemini import GeminiProvider

        providers.append(GeminiProvider(settings))
    if settings.openai_endpoints:
        from server.llm.openai_compat import OpenAICompatProvider

        providers.extend(
            OpenAICompatProvider(name, endpoint, settings)
            for name, endpoint in settings.openai_endpoints.items()
        )
    providers.append(EchoProvider(settings))
    return providers


class ProviderRegistry:
    def __init__(self, settings: Settings, providers: Sequence[ChatProvider] | None = None) -> None:
        """`providers` overrides the ones Settings configure (echo is always added)."""
        chosen = list(providers) if providers is not None else _configured(settings)
        if not any(provider.name == ECHO for provider in chosen):
            chosen.append(EchoProvider(settings))
        self._providers = {provider.name: provider for provider in chosen}
        self._endpoints = frozenset(self._providers) - set(KNOWN_PROVIDERS)
        """OpenAI-compatible endpoints (any provider not built in)."""
        self.default_model = self._default(settings.default_model)

    def _default(self, configured: str | None) -> str:
        if configured:
            try:
                return self.resolve(configured).id
            except (InvalidArgument, FailedPrecondition) as error:
                raise ValueError(f"default_model {configured!r}: {error.message}") from None
        for provider in self._providers.values():
            listed = provider.models()
            if listed:
                return listed[0].id
        return ECHO

    def models(self) -> list[ModelInfo]:
        """Models usable now, the default first."""
        listed = [model for provider in self._providers.values() for model in provider.models()]
        listed.sort(key=lambda model: model.id != self.default_model)
        return listed

    @property
    def provider_names(self) -> tuple[str, ...]:
        """Every provider name a model id may start with (ListModels' filter)."""
        return (*KNOWN_PROVIDERS, *sorted(self._endpoints))

    def resolve(self, model_id: str, *, field: str = "model") -> ResolvedModel:
        """Raises InvalidArgument (UNKNOWN_MODEL) for an id no provider could serve, and
        FailedPrecondition (PROVIDER_NOT_CONFIGURED) when its provider has no key here."""
        provider_name, _, name = model_id.partition("/")
        if provider_name == ECHO and not name:
            return ResolvedModel(ECHO, self._providers[ECHO], ECHO)
        if provider_name in self._endpoints:
            if not _ENDPOINT_MODEL_NAME.fullmatch(name):
                raise self._unknown(model_id, field)
            return ResolvedModel(model_id, self._providers[provider_name], name)
        if provider_name not in KNOWN_PROVIDERS or provider_name == ECHO:
            raise self._unknown(model_id, field)
        if not _MODEL_NAME.fullmatch(name):
            raise self._unknown(model_id, field)
        provider = self._providers.get(provider_name)
        if provider is None:
            raise FailedPrecondition(
                message=f"model {model_id!r} needs a {provider_name} API key, "
                "which this server does not have",
                reason=PROVIDER_NOT_CONFIGURED,
                metadata={"provider": provider_name},
            )
        return ResolvedModel(model_id, provider, name)

    def _unknown(self, model_id: str, field: str) -> InvalidArgument:
        *others, last = [f"{name}/<model>" for name in self.provider_names if name != ECHO]
        described = f"unknown model {model_id[:80]!r}: use echo, {', '.join(others)} or {last}"
        return InvalidArgument.of([FieldViolation(field, described)], reason=UNKNOWN_MODEL)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
