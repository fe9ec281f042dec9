"""ListModels: the models the caller can use now, the server's default first.

Usable means: echo; models of providers the server has a key for (or that need none) and
admins have not switched off; models of providers the caller has an own key for
(`OwnKeys`). Each comes described by the model catalog (server/llm/catalog.py) and says whose
key answers it.

With `refresh`, the OpenAI-compatible endpoints the caller can use are first asked for their
models (server/llm/discovery.py), each at most once per
Settings.model_discovery_min_interval_seconds across all servers; what they answer is stored
(`discovered_models`), so every server lists it, marked `discovered`. An endpoint that fails
to answer is skipped (logged, without its key) and the listing still succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import catalog_store
from server.config import Settings
from server.core.errors import FieldViolation, InvalidArgument
from server.core.pagination import Listed, Page
from server.llm import ProviderRegistry
from server.llm.discovery import DiscoveryFailed, discover_models
from server.llm.own_keys import KeySource, OwnKeys
from server.llm.registry import UsableModel

log = logging.getLogger(__name__)


def check_provider(registry: ProviderRegistry, provider: str) -> None:
    known = registry.provider_names
    if provider and provider not in known:
        raise InvalidArgument.of([FieldViolation("provider", f"must be one of {', '.join(known)}")])


def list_models(
    registry: ProviderRegistry,
    provider: str,
    page: Page,
    own_keys: OwnKeys,
    discovered: Mapping[str, Sequence[str]] | None = None,
) -> Listed[UsableModel]:
    """One page of the models usable with `own_keys` (of `provider` only, when given);
    `discovered`: provider name -> model names found by asking it."""
    check_provider(registry, provider)
    models = [
        model
        for model in registry.usable_models(own_keys, discovered)
        if not provider or model.info.provider == provider
    ]
    after, size = page.after, page.size
    if after is not None:
        ids = [model.info.id for model in models]
        # A model gone since the last page (a configuration change) ends the listing.
        start = ids.index(after[0]) + 1 if after and after[0] in ids else len(models)
        models = models[start:]
    shown = models[:size]
    return Listed(items=shown, next_key=[shown[-1].info.id] if len(models) > size else None)


class ModelCatalog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        settings: Settings,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._endpoints = settings.openai_endpoints
        self._timeout = settings.provider_timeout_seconds
        self._min_interval = settings.model_discovery_min_interval_seconds

    async def list(
        self, provider: str, page: Page, own_keys: OwnKeys, *, refresh: bool = False
    ) -> Listed[UsableModel]:
        check_provider(self._registry, provider)
        if refresh:
            await self.discover(own_keys, provider)
        async with self._sessions() as db:
            found = await catalog_store.discovered(db)
        return list_models(self._registry, provider, page, own_keys, found)

    async def discover(self, own_keys: OwnKeys, provider: str = "") -> None:
        """Asks the endpoints the caller can use (only `provider`, when given) that no server
        asked within the interval for their models, and stores the answers."""
        registry = self._registry
        candidates = sorted(
            name
            for name in registry.discoverable
            if name in self._endpoints
            and (not provider or name == provider)
            and registry.key_source(name, own_keys) is not None
        )
        if not candidates:
            return
        async with self._sessions() as db, db.begin():
            claimed = [
                name
                for name in candidates
                if await catalog_store.claim_discovery(db, name, self._min_interval)
            ]
        if not claimed:
            return
        answers = await asyncio.gather(*(self._ask(name, own_keys) for name in claimed))
        async with self._sessions() as db, db.begin():
            for name, names in zip(claimed, answers, strict=True):
                if names is not None:
                    await catalog_store.replace_discovered(db, name, names)

    async def _ask(self, name: str, own_keys: OwnKeys) -> Sequence[str] | None:
        own = own_keys.get(name)
        use_own = own is not None and self._registry.key_source(name, own_keys) in (
            KeySource.USER,
            KeySource.PROJECT,
        )
        try:
            names = await discover_models(
                name,
                self._endpoints[name],
                self._timeout,
                own.api_key if use_own and own is not None else None,
            )
        except DiscoveryFailed as failure:
            log.warning(
                "a provider did not list its models; its listing is left as it was",
                extra={"provider": name, "failure": failure.what},
            )
            return None
        return [model for model in names if self._usable_name(name, model)]

    def _usable_name(self, provider: str, name: str) -> bool:
        try:
            self._registry.parse(f"{provider}/{name}")
        except InvalidArgument:
            return False
        return True
