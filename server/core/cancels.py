"""Cancels from any server process, over PostgreSQL LISTEN/NOTIFY.

What one process streams (an answer, an execution) may be stopped through another: the
process asked records the request in the row (e.g. `cancel_requested_at`), and in the same
transaction notifies every process (`Cancels.request`: '<kind>:<id>', ids only). Whoever
streams it registered a local `watch(kind, id, callback)`; its callback runs once, on the
event loop, when the notification arrives (the process that was asked may hold the stream
itself: same path).

Each process holds ONE dedicated listening connection, reconnected with backoff. Since
notifications sent while it was down are lost, each kind registers a `check` that reads
which of the watched ids were asked to stop; checks run after every reconnect, and every
`check_seconds` while anything is watched (which also covers a request that came between
a stream's start and its watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.pg_listen import keep_listening
from server.core.tasks import TaskSupervisor

log = logging.getLogger(__name__)

CHANNEL = "forge_cancel"
START_WAIT_SECONDS = 10.0
CHECK_SECONDS = 10.0
APPLICATION_NAME = "forge-cancels"
"""The listening connection's name in pg_stat_activity."""

Check = Callable[[list[uuid.UUID]], Awaitable[Iterable[uuid.UUID]]]
"""Given watched ids of one kind, returns those whose stop was requested (in the database)."""


def cancel_dsn(url: URL) -> str:
    """The asyncpg DSN of the server's database, from its SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Cancels:
    """A Background component: start()/stop()."""

    def __init__(self, dsn: str, check_seconds: float = CHECK_SECONDS) -> None:
        self._dsn = dsn
        self._check_seconds = check_seconds
        self._tasks = TaskSupervisor("cancels")
        self._watches: dict[tuple[str, uuid.UUID], set[Callable[[], None]]] = {}
        self._checks: dict[str, Check] = {}
        self._listening = asyncio.Event()
        self.connections = 0
        """How many times the listening connection was established (tests)."""

    async def start(self) -> None:
        """Starts listening; waits (briefly) for the first connection."""
        self._tasks.forever("listen", self._listen)
        self._tasks.every("check", self._check_seconds, self._check_watched)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), START_WAIT_SECONDS)

    async def stop(self) -> None:
        await self._tasks.stop()

    def add_check(self, kind: str, check: Check) -> None:
        self._checks[kind] = check

    def watch(self, kind: str, key: uuid.UUID, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls `callback()` once when a stop of `kind` `key` is requested; returns the
        function that ends the watch (call it when the stream ends)."""
        callbacks = self._watches.setdefault((kind, key), set())
        callbacks.add(callback)

        def unwatch() -> None:
            callbacks.discard(callback)
            if not callbacks and self._watches.get((kind, key)) is callbacks:
                del self._watches[kind, key]

        return unwatch

    @staticmethod
    async def request(db: AsyncSession, kind: str, key: uuid.UUID) -> None:
        """Notifies every process, when the caller's transaction commits."""
        await db.execute(select(func.pg_notify(CHANNEL, f"{kind}:{key}")))

    # --- firing ------------------------------------------------------------------------

    def _fire(self, kind: str, key: uuid.UUID) -> None:
        for callback in self._watches.pop((kind, key), set()):
            try:
                callback()
            except Exception:
                log.exception("a cancel callback failed", extra={"kind": kind})

    async def _check_watched(self) -> None:
        by_kind: dict[str, list[uuid.UUID]] = {}
        for kind, key in self._watches:
            by_kind.setdefault(kind, []).append(key)
        for kind, keys in by_kind.items():
            check = self._checks.get(kind)
            if check is None:
                continue
            try:
                requested = list(await check(keys))
            except Exception as error:  # the database is away: the next round retries
                log.warning("cancels: cannot check", extra={"kind": kind, "error": str(error)})
                continue
            for key in requested:
                self._fire(kind, key)

    # --- the listening connection --------------------------------------------------------

    async def _listen(self) -> None:
        await keep_listening(
            self._dsn,
            "cancels",
            {CHANNEL: self._on_notify},
            self._listening_on,
            self._listening.clear,
            application_name=APPLICATION_NAME,
        )

    def _listening_on(self, _connection: Any) -> None:
        self.connections += 1
        self._listening.set()
        if self.connections > 1:
            # Requests notified while not listening were lost: read them instead.
            self._tasks.spawn(self._check_watched(), name="recheck")

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, text = payload.partition(":")
        try:
            key = uuid.UUID(text)
        except ValueError:
            log.warning("cancels: bad payload", extra={"payload": payload})
            return
        self._fire(kind, key)
