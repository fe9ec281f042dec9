"""The reaper: destroys expired sandboxes (idle TTL, maximum lifetime) and sweeps the engine
against the database. The backend connection runs a pass every few seconds while the
engine answers, in the process holding the Docker host's duties (duties.py)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.timestamps import utcnow
from server.sandbox import reconcile, store
from server.sandbox.backend import BackendError, SandboxBackend
from server.sandbox.retire import Retirer
from server.sandbox.views import Lifetimes

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self,
        *,
        backend: SandboxBackend,
        sessions: async_sessionmaker[AsyncSession],
        namespace: str,
        host_id: str,
        lifetimes: Lifetimes,
        retirer: Retirer,
    ) -> None:
        self._backend = backend
        self._sessions = sessions
        self._namespace = namespace
        self._host_id = host_id
        self._lifetimes = lifetimes
        self._retirer = retirer

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; answers how many sandboxes it destroyed."""
        now = now or utcnow()
        async with self._sessions() as db:
            expired = await store.expired(
                db, self._host_id, now, self._lifetimes.idle_ttl, self._lifetimes.max_lifetime
            )
        for item in expired:
            await self._retirer.retire(
                item.row.id, item.row.host_id, item.row.container_id, "deleted", item.why
            )
        if expired:
            log.info("reaped sandboxes", extra={"count": len(expired)})
        try:
            await reconcile.sweep(
                self._backend, self._sessions, self._namespace, self._host_id, now
            )
        except BackendError as error:
            log.warning("sandbox sweep failed", extra={"error": str(error)})
        return len(expired)
