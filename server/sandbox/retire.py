"""Ending sandboxes and removing containers: shared by deletion, RunCode, provisioning and
the reaper."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.sandbox import store
from server.sandbox.backend import BackendError
from server.sandbox.engine import EngineProvider

log = logging.getLogger(__name__)


class Retirer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], engine: EngineProvider) -> None:
        self._sessions = sessions
        self._engine = engine

    async def retire(
        self,
        sandbox_id: uuid.UUID,
        host_id: str | None,
        container_id: str | None,
        state: str,
        message: str,
    ) -> None:
        """Ends a sandbox: the row first (so nothing else uses it), then its container."""
        async with self._sessions() as db:
            await store.set_state(db, sandbox_id, state, message)
            await db.commit()
        if container_id:
            await self.destroy(host_id, container_id)

    async def destroy(self, host_id: str | None, container_id: str) -> None:
        """Removes a container of the host; a failure is logged (the host's sweep removes it
        later, or reconciliation once the host answers again)."""
        engine = self._engine.of_host(host_id)
        if engine is None:
            return
        try:
            await engine.backend.destroy(container_id)
        except BackendError as error:
            log.warning("could not remove a container", extra={"error": str(error)})
        engine.oom.forget(container_id)
