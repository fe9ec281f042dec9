"""Health follows the database: `SELECT 1` every `interval` seconds (and at once when a
call found the database gone), reported to whoever follows, only when the answer changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.core.tasks import TaskSupervisor, Ticker

log = logging.getLogger(__name__)

SetServing = Callable[[bool], Awaitable[None]]


class DatabaseHealth:
    def __init__(self, engine: AsyncEngine, interval: float, timeout: float | None = None) -> None:
        self._engine = engine
        self._interval = interval
        self._timeout = timeout if timeout is not None else max(interval, 1.0)
        self._tasks = TaskSupervisor("database-health")
        self._ticker: Ticker | None = None
        self._listeners: list[SetServing] = []
        self.available = True
        """What the last probe found (True until one says otherwise)."""

    def follow(self, set_serving: SetServing) -> None:
        """`set_serving(available)` runs whenever the database comes or goes."""
        self._listeners.append(set_serving)

    async def start(self) -> None:
        self._ticker = self._tasks.every("probe", self._interval, self.probe)

    async def stop(self) -> None:
        await self._tasks.stop()
        self._ticker = None

    def poke(self) -> None:
        """A call found the database unreachable: probe now rather than at the next tick."""
        if self._ticker is not None:
            self._ticker.poke()

    async def probe(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            available = False
            if self.available:
                log.warning("the database is unreachable", extra={"error": repr(error)})
        else:
            available = True
            if not self.available:
                log.warning("the database is reachable again")
        if available != self.available:
            self.available = available
            for listener in self._listeners:
                await listener(available)
        return available
