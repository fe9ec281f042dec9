"""Providers bound to callers' own keys (`ProviderFactory`, see own_keys.py).

A provider built for a key talks to the same endpoint, with the same settings, as the
server's provider of that name; only the key differs. Built providers are kept in a small
LRU (their HTTP connections are reused), keyed by the provider name and the SHA-256 of the
key, never the key itself; one pushed out is closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict

from pydantic import SecretStr

from server.config import Settings
from server.llm.base import ChatProvider

log = logging.getLogger(__name__)

DEFAULT_KEPT = 128
"""Providers kept at most. Generous: one pushed out while a stream of it still runs would
end that stream, so the LRU must outlast any burst of distinct keys during one answer."""


class KeyedProviders:
    def __init__(self, settings: Settings, *, kept: int = DEFAULT_KEPT) -> None:
        self._settings = settings
        self._kept = kept
        self._providers: OrderedDict[tuple[str, bytes], ChatProvider] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def provider_names(self) -> frozenset[str]:
        """The providers a caller's key can serve."""
        return frozenset({"anthropic", "gemini", *self._settings.openai_endpoints})

    def provider(self, provider_name: str, api_key: SecretStr) -> ChatProvider:
        slot = (provider_name, hashlib.sha256(api_key.get_secret_value().encode()).digest())
        kept = self._providers.get(slot)
        if kept is not None:
            self._providers.move_to_end(slot)
            return kept
        built = self._build(provider_name, api_key)
        self._providers[slot] = built
        while len(self._providers) > self._kept:
            _, evicted = self._providers.popitem(last=False)
            self._close_soon(evicted)
        return built

    def _build(self, provider_name: str, api_key: SecretStr) -> ChatProvider:
        settings = self._settings
        # Imported here, as the registry does: an SDK is loaded only once it is needed.
        if provider_name == "anthropic":
            from server.llm.anthropic import AnthropicProvider

            return AnthropicProvider(settings, api_key=api_key)
        if provider_name == "gemini":
            from server.llm.gemini import GeminiProvider

            return GeminiProvider(settings, api_key=api_key)
        endpoint = settings.openai_endpoints.get(provider_name)
        if endpoint is not None:
            from server.llm.openai_compat import OpenAICompatProvider

            return OpenAICompatProvider(provider_name, endpoint, settings, api_key=api_key)
        raise ValueError(f"the provider {provider_name!r} takes no keys")

    def _close_soon(self, provider: ChatProvider) -> None:
        task = asyncio.get_running_loop().create_task(_close(provider))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        providers = list(self._providers.values())
        self._providers.clear()
        for provider in providers:
            await _close(provider)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._providers)


async def _close(provider: ChatProvider) -> None:
    try:
        await provider.aclose()
    except Exception:  # one provider failing to close must not keep the others open
        log.warning("could not close a keyed provider", extra={"provider": provider.name})
