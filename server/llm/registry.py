"""Which models can be used now, and which provider serves a model id.

Model ids: `echo` (offline, always there), `anthropic/<model>` and `gemini/<model>` (when
that provider's key is configured), and `<endpoint>/<model>` for each OpenAI-compatible
endpoint of Settings.openai_endpoints (its model names may contain `/`, as OpenRouter's do).
Any well-formed model name is accepted for a configured provider; `models()` lists the names
configured in Settings. The default model is Settings.default_model, else the first listed
model of the first configured provider (anthropic, gemini, then the endpoints in order), else
`echo`.

Models are described by the catalog (catalog.py: built-in defaults, endpoint settings,
Settings.model_catalog), which also prices them. `usable_models` lists what one caller can use:
echo, the server's providers that are not switched off, the providers the caller has an own
key for, and the models discovered from those providers (ListModels `refresh`).

A caller's own key for a provider (`OwnKeys`, see own_keys.py) is used in preference to the
server's: `resolve` then answers with a provider bound to that key, built by the
`ProviderFactory`; with an own key a provider is usable even when the server has no key for
it or an admin switched it off. Providers switched off (`disabled`) serve nobody else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from server.config import Settings
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.llm.base import ChatProvider, ModelInfo
from server.llm.catalog import Catalog
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


@dataclass(frozen=True, slots=True)
class UsableModel:
    """A model one caller can use now, and whose key would answer."""

    info: ModelInfo
    key_source: KeySource


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
        self.catalog = Catalog(settings)
        self._named: dict[str, tuple[str, ...]] = {
            "anthropic": tuple(settings.anthropic_models),
            "gemini": tuple(settings.gemini_models),
            **{
                name: tuple(model.name for model in endpoint.models)
                for name, endpoint in settings.openai_endpoints.items()
            },
        }
        """Model names Settings list per provider (for a provider only an own key serves)."""
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
        """The models of the server's providers (switched off or not), described by the
        catalog, the default first."""
        listed = [
            self.catalog.describe(model)
            for provider in self._providers.values()
            for model in provider.models()
        ]
        listed.sort(key=lambda model: model.id != self.default_model)
        return listed

    def usable_models(
        self,
        own_keys: OwnKeys = NO_OWN_KEYS,
        discovered: Mapping[str, Sequence[str]] | None = None,
    ) -> list[UsableModel]:
        """The models a caller with `own_keys` can use now, the default first: echo, those
        of the server's providers not switched off, those of providers the caller has an
        own key for, then `discovered` ones (provider name -> model names) of any of these
        providers not listed already."""
        listed: dict[str, UsableModel] = {}
        own_only = sorted(own_keys.providers & self._key_takers - set(self._providers))
        for name in (*self._providers, *own_only):
            source = self.key_source(name, own_keys)
            if source is None:
                continue
            for info in self._listed(name):
                listed.setdefault(info.id, UsableModel(info, source))
        for name, names in (discovered or {}).items():
            source = self.key_source(name, own_keys)
            if source is None or name not in self.discoverable:
                continue
            for model_name in names:
                info = self.catalog.bare(name, model_name, discovered=True)
                listed.setdefault(info.id, UsableModel(info, source))
        usable = list(listed.values())
        usable.sort(key=lambda model: model.info.id != self.default_model)
        return usable

    def _listed(self, provider_name: str) -> list[ModelInfo]:
        provider = self._providers.get(provider_name)
        if provider is not None:
            return [self.catalog.describe(model) for model in provider.models()]
        return [
            self.catalog.bare(provider_name, name) for name in self._named.get(provider_name, ())
        ]

    def key_source(self, provider_name: str, own_keys: OwnKeys = NO_OWN_KEYS) -> KeySource | None:
        """Whose key would answer a call to `provider_name` now (None: nobody's), as
        `resolve` decides."""
        if provider_name == ECHO:
            return KeySource.SERVER
        own = own_keys.get(provider_name)
        if own is not None and self._keyed is not None and provider_name in self._key_takers:
            return own.source
        if provider_name in self._providers and provider_name not in self._disabled:
            return KeySource.SERVER
        return None

    @property
    def discoverable(self) -> frozenset[str]:
        """Providers that can be asked for their models: the OpenAI-compatible endpoints."""
        return self._key_takers - {"anthropic", "gemini"}

    def has_server_provider(self, provider_name: str) -> bool:
        """Whether the server can call `provider_name` with its own key (or needs none)."""
        return provider_name in self._providers

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
