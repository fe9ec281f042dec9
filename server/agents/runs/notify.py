"""LISTEN/NOTIFY for runs: how every server process learns at once that a run has new
events (watchers on any replica follow it live) or that a run needs its owner's attention
(cancel) or an owner (claimable).

Each process holds ONE dedicated connection listening on both channels and fans out to
its local waiters. Notifications carry ids only ('<run_id>:<last_seq>',
'<kind>:<run_id>'), never event bodies (payloads are capped at 8000 bytes): a woken watcher
reads the log. A lost listening connection is reconnected with backoff, and then every
waiter is woken to re-read, since notifications sent while it was down are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.agents.runs.log import EVENTS_CHANNEL
from server.core.pg_listen import keep_listening
from server.core.tasks import TaskSupervisor
from server.db.engine import to_async_url

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "forge_run_control"
CONTROL_KINDS = frozenset({"cancel", "claimable"})

START_WAIT_SECONDS = 10.0
REMEMBERED_RUNS = 10_000
"""Runs whose latest notified seq is remembered (closes the race between a watcher's read
and its wait)."""

ControlListener = Callable[[str, uuid.UUID], None]


def listen_dsn(engine_or_url: AsyncEngine | URL | str) -> str:
    """The asyncpg DSN (postgresql://…) of the server's database, from its engine or its
    SQLAlchemy URL (postgresql+asyncpg://…, postgresql://…, postgres://…)."""
    if isinstance(engine_or_url, AsyncEngine):
        url = engine_or_url.url
    elif isinstance(engine_or_url, URL):
        url = engine_or_url
    else:
        url = make_url(to_async_url(engine_or_url))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class RunNotifications:
    """A Background component: start()/stop()."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._tasks = TaskSupervisor("run-notifications")
        self._waiters: dict[uuid.UUID, dict[asyncio.Future[None], int]] = {}
        self._latest: OrderedDict[uuid.UUID, int] = OrderedDict()
        self._control: list[ControlListener] = []
        self._reconnect: list[Callable[[], None]] = []
        self._connection: Any = None  # asyncpg.Connection while listening
        self._listening = asyncio.Event()
        self.connections = 0
        """How many times the listening connection was established (tests, metrics)."""

    @property
    def listening(self) -> bool:
        return self._connection is not None

    async def start(self) -> None:
        """Starts listening; waits (briefly) for the first connection."""
        self._tasks.forever("listen", self._listen)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), START_WAIT_SECONDS)

    async def stop(self) -> None:
        await self._tasks.stop()
        self._wake_all()

    async def wait(self, run_id: uuid.UUID, after_seq: int, timeout: float) -> None:
        """Returns when a notification for `run_id` with last_seq > `after_seq` arrives (or
        arrived since the caller last read), when the listening connection was
        (re)established (callers re-read), or at `timeout`. Never raises for timeouts."""
        if self._latest.get(run_id, 0) > after_seq:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(run_id, {})
        waiters[future] = after_seq
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            waiters.pop(future, None)
            if not waiters and self._waiters.get(run_id) is waiters:
                del self._waiters[run_id]

    def add_control_listener(self, callback: ControlListener) -> None:
        """`callback(kind, run_id)` for each `forge_run_control` notification ('<kind>:
        <run_id>', kind "cancel" or "claimable"), on the event loop; keep it short."""
        self._control.append(callback)

    def add_reconnect_listener(self, callback: Callable[[], None]) -> None:
        """`callback()` each time the listening connection is re-established after a loss
        (control notifications sent meanwhile were missed)."""
        self._reconnect.append(callback)

    @staticmethod
    async def send_control(db: AsyncSession, kind: str, run_id: uuid.UUID) -> None:
        """Notifies every process, when the caller's transaction commits."""
        if kind not in CONTROL_KINDS:
            raise ValueError(f"not a run control kind: {kind}")
        await db.execute(select(func.pg_notify(CONTROL_CHANNEL, f"{kind}:{run_id}")))

    # --- the listening connection --------------------------------------------------------

    async def _listen(self) -> None:
        """Keeps one listening connection until stopped (reconnecting with backoff)."""
        await keep_listening(
            self._dsn,
            "run notifications",
            {EVENTS_CHANNEL: self._on_event, CONTROL_CHANNEL: self._on_control},
            self._listening_on,
            self._lost,
        )

    def _listening_on(self, connection: Any) -> None:
        self._connection = connection
        self.connections += 1
        self._listening.set()
        # Whatever was notified while not listening is unknown: everyone re-reads.
        self._latest.clear()
        self._wake_all()
        if self.connections > 1:
            for callback in self._reconnect:
                self._call(callback)

    def _lost(self) -> None:
        self._connection = None
        self._listening.clear()

    def _on_event(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        run_text, _, seq_text = payload.rpartition(":")
        try:
            run_id, last_seq = uuid.UUID(run_text), int(seq_text)
        except ValueError:
            log.warning("run notifications: bad event payload", extra={"payload": payload})
            return
        if last_seq > self._latest.get(run_id, 0):
            self._latest[run_id] = last_seq
            self._latest.move_to_end(run_id)
            if len(self._latest) > REMEMBERED_RUNS:
                self._latest.popitem(last=False)
        for future, after_seq in (self._waiters.get(run_id) or {}).items():
            if last_seq > after_seq and not future.done():
                future.set_result(None)

    def _on_control(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, run_text = payload.partition(":")
        try:
            run_id = uuid.UUID(run_text)
        except ValueError:
            log.warning("run notifications: bad control payload", extra={"payload": payload})
            return
        for callback in self._control:
            self._call(callback, kind, run_id)

    @staticmethod
    def _call(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("run notification listener failed")

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
