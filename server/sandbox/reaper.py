"""The reaper: every few seconds, destroys expired sandboxes (idle TTL, maximum lifetime),
sweeps the engine against the database, and notices the engine coming and going."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.timestamps import utcnow
from server.sandbox import reconcile, store
from server.sandbox.backend import BackendError, BackendUnavailable, ContainerInfo, SandboxBackend
from server.sandbox.pool import WarmPool
from server.sandbox.views import Lifetimes

log = logging.getLogger(__name__)

Retire = Callable[[uuid.UUID, str | None, str, str], Awaitable[None]]
Availability = Callable[[bool], Awaitable[None]]


class Reaper:
    def __init__(
        self,
        *,
        backend: SandboxBackend,
        sessions: async_sessionmaker[AsyncSession],
        pool: WarmPool,
        namespace: str,
        lifetimes: Lifetimes,
        interval_seconds: float,
        retire: Retire,
        availability: Availability,
    ) -> None:
        self._backend = backend
        self._sessions = sessions
        self._pool = pool
        self._namespace = namespace
        self._lifetimes = lifetimes
        self._interval = interval_seconds
        self._retire = retire
        self._availability = availability
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox-reaper")

    def poke(self) -> None:
        """Runs a pass now (tests, and after settings change)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("sandbox reaper pass failed")

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; answers how many sandboxes it destroyed."""
        try:
            await self._backend.ping()
        except BackendUnavailable:
            await self._availability(False)
            return 0
        await self._availability(True)
        now = now or utcnow()
        async with self._sessions() as db:
            expired = await store.expired(
                db, now, self._lifetimes.idle_ttl, self._lifetimes.max_lifetime
            )
        for item in expired:
            await self._retire(item.row.id, item.row.container_id, "deleted", item.why)
        if expired:
            log.info("reaped sandboxes", extra={"count": len(expired)})
        try:
            _, containers = await reconcile.sweep(
                self._backend,
                self._sessions,
                self._namespace,
                self._pool.owns,
                lambda container: _older_than_grace(container, now),
            )
        except BackendError as error:
            log.warning("sandbox sweep failed", extra={"error": str(error)})
        else:
            self._pool.drop(c.id for c in containers if c.status.value == "running")
        return len(expired)


def _older_than_grace(container: ContainerInfo, now: datetime) -> bool:
    if container.created is None:
        return False
    return now - container.created > reconcile.ORPHAN_GRACE
