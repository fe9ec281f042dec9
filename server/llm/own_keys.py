"""Callers' own provider keys, as the registry sees them for one call.

A user may store a key of their own for a provider, and a project one for calls made in it
(bring your own key). For one call the agents service looks up the keys that apply
(`OwnKeys`: the project's before the user's, per provider) and hands them to
`ProviderRegistry.resolve`, which then answers with a provider bound to that key instead of
the server's (`ProviderFactory`), and says whose key it is (`KeySource`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pydantic import SecretStr

from server.llm.base import ChatProvider


class KeySource(StrEnum):
    SERVER = "server"
    """The server's key (or a keyless endpoint, or echo)."""
    USER = "user"
    PROJECT = "project"


@dataclass(frozen=True, slots=True)
class OwnKey:
    key_id: uuid.UUID
    provider: str
    """"anthropic", "gemini" or an OpenAI-compatible endpoint's name."""
    source: KeySource
    """USER or PROJECT."""
    api_key: SecretStr = field(repr=False)


@dataclass(frozen=True, slots=True)
class OwnKeys:
    """The keys that apply to one call, by provider name."""

    by_provider: Mapping[str, OwnKey] = field(default_factory=dict)

    def get(self, provider: str) -> OwnKey | None:
        return self.by_provider.get(provider)

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(self.by_provider)


NO_OWN_KEYS = OwnKeys()


class ProviderFactory(Protocol):
    """Providers bound to a caller's key: same endpoint and settings as the server's provider
    of that name, another key. Built on demand and kept for reuse (their HTTP connections)."""

    def provider(self, provider_name: str, api_key: SecretStr) -> ChatProvider:
        """Raises ValueError for a provider name that takes no keys (echo, unknown)."""
        ...

    async def aclose(self) -> None:
        """Releases every kept provider's connections (at server shutdown)."""
        ...


class OwnKeysLookup(Protocol):
    """Finds the keys of one call (offered by the agents service, which stores them; used by
    chat, runs, ListModels and GenerateImage)."""

    async def for_call(
        self, user_id: uuid.UUID, project_id: uuid.UUID | None, *, model: str = ""
    ) -> OwnKeys:
        """The keys for a call of `user_id` in `project_id`; for `model` alone, if named."""
        ...

    def used(self, key_id: uuid.UUID | None) -> None: ...


class NoOwnKeys:
    """Own keys switched off (and the default where nothing is wired)."""

    async def for_call(
        self, user_id: uuid.UUID, project_id: uuid.UUID | None, *, model: str = ""
    ) -> OwnKeys:
        return NO_OWN_KEYS

    def used(self, key_id: uuid.UUID | None) -> None:
        return None


NO_OWN_KEY_LOOKUP: OwnKeysLookup = NoOwnKeys()
