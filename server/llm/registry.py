"""Which models can be used now, and which provider serves a model id.

Model ids: `echo` (offline, always there), `anthropic/<model>` and `gemini/<model>` (when
that provider's key is configured), and `<endpoint>/<model>` for each OpenAI-compatible
endpoint of Settings.openai_endpoints (its model names may contain `/`, as OpenRouter's do).
Any well-formed model name is accepted for a configured provider; `models()` lists the names
configured in Settings. The default model is Settings.default_model, else the first listed
model of the first configured provider (anthropic, gemini, then the endpoints in order), else
`echo`.

A caller's own key for a provider (`OwnKeys`, see own_keys.py) is used in preference to the
server's: `resolve` then answers with a provider bound to that key, built by the
`ProviderFactory`; with an own key a provider is usable even when the server has no key for
it or an admin switched it off. Providers switched off (`disabled`) serve nobody else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.config import Settings
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.llm.base import ChatProvider, ModelInfo
from server.llm.echo import ECHO, EchoProvider
from server.llm.own_keys import NO_OWN_KEYS, KeySource, OwnKeys, ProviderFactory

KNOWN_PROVIDERS = ("anthropic", "gemini", ECHO)
UNKNOWN_MODEL = "UNKNOWN_MODEL"
PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
PROVIDER_DISABLED = "PROVIDER_DISABLED"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_ENDPOINT_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    id: str
    """The canonical model id (what to store and report)."""
    provider: ChatProvider
    name: str
    """The provider's own model name: `ChatRequest.model`."""
    key_source: KeySource = KeySource.SERVER
    own_key_id: uuid.UUID | None = None
    """The caller's (or project's) key used, when not the server's."""


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
    def __init__(
        self,
        settings: Settings,
        providers: Sequence[ChatProvider] | None = None,
        keyed: ProviderFactory | None = None,
    ) -> None:
        """`providers` overrides the ones Settings configure (echo is always added); `keyed`
        builds providers bound to callers' own keys (None: own keys are not used)."""
        self._keyed = keyed
        self._disabled: frozenset[str] = frozenset()
        self._key_takers = frozenset({"anthropic", "gemini", *settings.openai_endpoints})
        """Providers a caller's own key can serve."""
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

    def set_disabled(self, provider_names: Iterable[str]) -> None:
        """The providers admins switched off (echo cannot be)."""
        self._disabled = frozenset(provider_names) - {ECHO}

    def is_disabled(self, provider_name: str) -> bool:
        return provider_name in self._disabled

    def resolve(
        self, model_id: str, *, field: str = "model", own_keys: OwnKeys = NO_OWN_KEYS
    ) -> ResolvedModel:
        """Raises InvalidArgument (UNKNOWN_MODEL) for an id no provider could serve, and
        FailedPrecondition when only the server's key could serve it and the server has none
        (PROVIDER_NOT_CONFIGURED) or an admin switched the provider off (PROVIDER_DISABLED)."""
        provider_name, name = self.parse(model_id, field=field)
        if provider_name == ECHO:
            return ResolvedModel(ECHO, self._providers[ECHO], ECHO)
        own = own_keys.get(provider_name)
        if own is not None and self._keyed is not None:
            provider = self._keyed.provider(provider_name, own.api_key)
            return ResolvedModel(model_id, provider, name, own.source, own.key_id)
        server_provider = self._providers.get(provider_name)
        if server_provider is None:
            raise FailedPrecondition(
                message=f"model {model_id!r} needs a {provider_name} API key, which this "
                "server does not have (a key of your own can be added: CreateProviderKey)",
                reason=PROVIDER_NOT_CONFIGURED,
                metadata={"provider": provider_name},
            )
        if provider_name in self._disabled:
            raise FailedPrecondition(
                message=f"the {provider_name} provider is switched off on this server "
                "(a key of your own can be added: CreateProviderKey)",
                reason=PROVIDER_DISABLED,
                metadata={"provider": provider_name},
            )
        return ResolvedModel(model_id, server_provider, name)

    def parse(self, model_id: str, *, field: str = "model") -> tuple[str, str]:
        """(provider name, the provider's model name) of a well-formed model id, whether or
        not the provider is usable now; InvalidArgument (UNKNOWN_MODEL) otherwise. `echo`
        is ("echo", "echo")."""
        provider_name, _, name = model_id.partition("/")
        if provider_name == ECHO and not name:
            return ECHO, ECHO
        if provider_name in self._endpoints or provider_name in self._key_takers - {
            "anthropic",
            "gemini",
        }:
            if not _ENDPOINT_MODEL_NAME.fullmatch(name):
                raise self._unknown(model_id, field)
            return provider_name, name
        if provider_name not in KNOWN_PROVIDERS or provider_name == ECHO:
            raise self._unknown(model_id, field)
        if not _MODEL_NAME.fullmatch(name):
            raise self._unknown(model_id, field)
        return provider_name, name

    def _unknown(self, model_id: str, field: str) -> InvalidArgument:
        *others, last = [f"{name}/<model>" for name in self.provider_names if name != ECHO]
        described = f"unknown model {model_id[:80]!r}: use echo, {', '.join(others)} or {last}"
        return InvalidArgument.of([FieldViolation(field, described)], reason=UNKNOWN_MODEL)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        if self._keyed is not None:
            await self._keyed.aclose()
