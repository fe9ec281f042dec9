"""Model providers and their switches: ListProviders (any signed-in caller) and
UpdateProvider (admins), and the registry's copy of which providers are switched off.

A provider switched off serves only callers with their own (or their project's) key for it;
echo is always on. The switches live in the database (`model_providers`); each server keeps
a copy in its registry (`ProviderRegistry.set_disabled`), read at start, at once after a
switch made through it, and every Settings.provider_switch_cache_seconds by a background
refresh (`ProviderSwitchRefresh`), so a switch reaches every server within that time.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import catalog_store
from server.core.audit_log import record_audit_event
from server.core.context import Caller
from server.core.errors import FailedPrecondition, NotFound, PermissionDenied
from server.core.tasks import TaskSupervisor
from server.db.catalog_models import ModelProviderRow
from server.llm import ProviderRegistry
from server.llm.echo import ECHO

log = logging.getLogger(__name__)

MUTABLE_FIELDS = ("enabled",)
ADMIN_REQUIRED = "ADMIN_REQUIRED"
PROVIDER_NOT_FOUND = "PROVIDER_NOT_FOUND"
ECHO_ALWAYS_ON = "ECHO_ALWAYS_ON"
PROVIDER_SWITCHED = "provider_switched"
"""The audit action (AUDIT_ACTION_PROVIDER_SWITCHED)."""
MIN_REFRESH_SECONDS = 0.5
"""The refresh's shortest interval, whatever Settings say (0 would spin)."""


class ProviderKind(StrEnum):
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OPENAI_COMPATIBLE = "openai_compatible"
    ECHO = "echo"


@dataclass(frozen=True, slots=True)
class ProviderView:
    name: str
    kind: ProviderKind
    configured: bool
    """The server has a key for it (a keyless endpoint and echo always do)."""
    enabled: bool
    discoverable: bool
    update_user_id: uuid.UUID | None
    update_time: datetime | None


def _kind(name: str) -> ProviderKind:
    if name == ECHO:
        return ProviderKind.ECHO
    if name in ("anthropic", "gemini"):
        return ProviderKind(name)
    return ProviderKind.OPENAI_COMPATIBLE


class Providers:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], registry: ProviderRegistry
    ) -> None:
        self._sessions = sessions
        self._registry = registry

    async def refresh(self) -> None:
        """Reads which providers are switched off into the registry."""
        async with self._sessions() as db:
            names = await catalog_store.switched_off(db)
        self._registry.set_disabled(names)

    async def list(self, caller: Caller) -> list[ProviderView]:
        async with self._sessions() as db:
            rows = await catalog_store.provider_rows(db)
        return [self._view(name, rows.get(name)) for name in self._registry.provider_names]

    async def update(self, caller: Caller, name: str, enabled: bool | None) -> ProviderView:
        """Switches `name` on or off (`enabled` None: leaves it as it is)."""
        if not caller.is_admin:
            raise PermissionDenied("switching providers needs the admin role", ADMIN_REQUIRED)
        if name not in self._registry.provider_names:
            raise NotFound(
                f"no provider named {name[:40]!r} (ListProviders names them)",
                PROVIDER_NOT_FOUND,
            )
        if name == ECHO and enabled is False:
            raise FailedPrecondition(
                "the offline echo model cannot be switched off", ECHO_ALWAYS_ON
            )
        if enabled is None:
            async with self._sessions() as db:
                rows = await catalog_store.provider_rows(db)
            return self._view(name, rows.get(name))
        async with self._sessions() as db, db.begin():
            row = await catalog_store.switch(db, name, enabled, caller.user_id)
            record_audit_event(
                db,
                PROVIDER_SWITCHED,
                actor_id=caller.user_id,
                target=f"providers/{name}",
                details={"enabled": "true" if enabled else "false"},
            )
            view = self._view(name, row)
        # This server follows at once; the others at their next refresh.
        await self.refresh()
        return view

    def _view(self, name: str, row: ModelProviderRow | None) -> ProviderView:
        return ProviderView(
            name=name,
            kind=_kind(name),
            configured=self._registry.has_server_provider(name),
            enabled=name == ECHO or row is None or row.enabled,
            discoverable=name in self._registry.discoverable,
            update_user_id=row.update_user_id if row is not None else None,
            update_time=row.update_time if row is not None else None,
        )


class ProviderSwitchRefresh:
    """Background part of the agents service: reads the switches at start, then every
    `interval` seconds."""

    def __init__(self, providers: Providers, interval: float) -> None:
        self._providers = providers
        self._interval = max(interval, MIN_REFRESH_SECONDS)
        self._tasks = TaskSupervisor("provider-switches")

    async def start(self) -> None:
        try:
            await self._providers.refresh()
        except Exception:
            # The database may come later; the periodic refresh catches up.
            log.warning("could not read which providers are switched off", exc_info=True)
        self._tasks.every("refresh", self._interval, self._providers.refresh)

    async def stop(self) -> None:
        await self._tasks.stop()
