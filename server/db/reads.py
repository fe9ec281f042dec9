"""Reads made on every call (the caller's state, a project with the caller's role), run
straight on asyncpg connections rather than through an ORM Session.

Measured in the server under load (bench/bench_unary.py): a read through a Session costs
about 200 µs of CPU, and even a raw connection checked out of SQLAlchemy's pool and back in
costs about 60 µs (greenlet switches, pool events, reset on return) — more than the query.
A DirectRead is compiled by SQLAlchemy once and runs on a connection of the engine's read
lane: a few of the pool's connections kept out of it and handed from read to read. A
DirectWrite (one statement, autocommit) runs the same way on a lane of its own, so that
writes waiting on their commit's flush never hold up the reads every call makes.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.util import greenlet_spawn

# A lane connection idle this long is pinged before its next read (as the pool does, see
# engine._check_out), and one held this long goes back to the pool (so that the pool's
# recycling applies to it as to any other connection).
LANE_IDLE_SECONDS = 10.0
LANE_HOLD_SECONDS = 60.0

_LANES: weakref.WeakKeyDictionary[Engine, Lane] = weakref.WeakKeyDictionary()
_WRITE_LANES: weakref.WeakKeyDictionary[Engine, Lane] = weakref.WeakKeyDictionary()


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    bind = sessions.kw["bind"]
    assert isinstance(bind, AsyncEngine)
    return bind


class DirectRead:
    """A SELECT built with SQLAlchemy and compiled once, run on one asyncpg connection
    outside a transaction (autocommit): for a read that need not agree with other
    statements. Parameters go by their bindparam names (values bound in the statement are
    used as they are); no SQLAlchemy type processing runs either way, so parameters and
    results are asyncpg's own types. A row is an asyncpg Record whose keys are the selected
    columns' labels."""

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        self._compiled: _Compiled | None = None

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled
        if compiled is None or compiled.dialect is not dialect:
            done = self._statement.compile(dialect=dialect)
            compiled = self._compiled = _Compiled(
                dialect, str(done), tuple(done.positiontup or ()), dict(done.params)
            )
        return compiled

    async def first(self, sessions: async_sessionmaker[AsyncSession], **params: Any) -> Any:
        """The first row (an asyncpg Record), or None."""
        engine, sql, args = self._bound(sessions, params)
        return await _run(_LANES, engine, lambda driver: driver.fetchrow(sql, *args))

    async def all(self, sessions: async_sessionmaker[AsyncSession], **params: Any) -> list[Any]:
        """Every row (asyncpg Records)."""
        engine, sql, args = self._bound(sessions, params)
        rows: list[Any] = await _run(_LANES, engine, lambda driver: driver.fetch(sql, *args))
        return rows

    def _bound(
        self, sessions: async_sessionmaker[AsyncSession], params: dict[str, Any]
    ) -> tuple[AsyncEngine, str, list[Any]]:
        """The engine to run on, the statement's SQL and its arguments in order."""
        engine = engine_of(sessions)
        compiled = self._compile(engine.dialect)
        bound = compiled.bound
        args = [params[name] if name in params else bound[name] for name in compiled.names]
        return engine, compiled.sql, args


@dataclass(frozen=True)
class _Compiled:
    dialect: Dialect
    sql: str
    names: tuple[str, ...]  # of $1, $2, …
    bound: dict[str, Any]  # values bound in the statement itself


Statement = Callable[[Any], Awaitable[Any]]
"""One statement, given the asyncpg connection to run it on."""


async def _run(
    lanes: weakref.WeakKeyDictionary[Engine, Lane], engine: AsyncEngine, statement: Statement
) -> Any:
    """`statement` on a connection of the engine's lane in `lanes`, or of the pool when it
    has none (or it is closed)."""
    lane = lanes.get(engine.sync_engine)
    held = await lane.acquire() if lane is not None else None
    if lane is not None and held is not None:
        healthy = False
        try:
            result = await statement(held.driver)
            healthy = True
            return result
        except asyncpg.exceptions.InternalClientError:
            # The server ended this idle connection (e.g. it is shutting down: its FATAL
            # arrived, the close has not yet), so asyncpg refused to send the statement.
            # Not a bug of ours: it goes to a fresh connection, which tells the truth.
            pass
        except asyncpg.PostgresError:
            healthy = True  # refused by the server; the connection is as good as before
            raise
        finally:
            await lane.release(held, healthy=healthy)
    return await _pooled(engine, statement)


async def _pooled(engine: AsyncEngine, statement: Statement) -> Any:
    """The statement on a connection checked out of the pool for it; on a second one when
    the server had already ended the first (as on a lane, see `_run`)."""
    for attempt in (1, 2):
        pooled = await engine.raw_connection()
        try:
            driver = pooled.driver_connection
            assert driver is not None
            return await statement(driver)
        except asyncpg.exceptions.InternalClientError:
            await greenlet_spawn(pooled.invalidate)
            if attempt == 2:
                raise
        except BaseException:
            # Interrupted mid-query (cancelled, or the connection failed): not fit for reuse.
            await greenlet_spawn(pooled.invalidate)
            raise
        finally:
            await greenlet_spawn(pooled.close)
    raise AssertionError("unreachable")


@dataclass
class _Held:
    pooled: PoolProxiedConnection
    driver: Any  # asyncpg.Connection
    taken: float
    used: float


class Lane:
    """Up to `size` connections taken from the engine's pool and lent to one statement
    after another (DirectReads, or DirectWrites on the write lane); a statement waits (first
    come, first served) while all are lent."""

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self._engine = weakref.ref(engine)
        self._size = size
        self._held = 0  # taken from the pool: idle + lent
        self._idle: list[_Held] = []
        self._waiters: deque[asyncio.Future[_Held | None]] = deque()
        self.closed = False

    async def acquire(self) -> _Held | None:
        """A connection, or None once the lane is closed (read from the pool then)."""
        while not self.closed:
            if self._idle:
                held = self._idle.pop()
                if await self._usable(held):
                    return held
            elif self._held < self._size:
                return await self._take()
            else:
                waiter: asyncio.Future[_Held | None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    handed = await waiter
                except asyncio.CancelledError:
                    woken = waiter.done() and not waiter.cancelled()
                    handed = waiter.result() if woken else None
                    if handed is not None:
                        await self.release(handed, healthy=True)  # pass it on
                    elif woken:
                        self._wake(None)  # pass on the free slot
                    raise
                if handed is not None:
                    return handed
                # None: a connection left the lane; take its place on the next turn.
        return None

    async def _usable(self, held: _Held) -> bool:
        """Whether an idle connection may serve the next read; if not, it leaves the lane."""
        now = time.monotonic()
        if held.driver.is_closed():  # the server ended it (restart, terminated backend)
            await self._give_back(held, healthy=False)
            return False
        if now - held.taken > LANE_HOLD_SECONDS:
            await self._give_back(held, healthy=True)
            return False
        if now - held.used > LANE_IDLE_SECONDS:
            try:
                await held.driver.fetchrow(";")  # the pool's ping
            except Exception:
                await self._give_back(held, healthy=False)
                return False
            except BaseException:
                await self._give_back(held, healthy=False)
                raise
        return True

    async def release(self, held: _Held, *, healthy: bool) -> None:
        if not healthy or self.closed:
            await self._give_back(held, healthy=healthy)
            self._wake(None)
            return
        held.used = time.monotonic()
        if not self._wake(held):
            self._idle.append(held)

    def _wake(self, handed: _Held | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    async def _take(self) -> _Held:
        engine = self._engine()
        if engine is None:
            raise RuntimeError("the engine of this read lane is gone")
        self._held += 1
        try:
            pooled = await engine.raw_connection()
        except BaseException:
            self._held -= 1
            self._wake(None)  # the slot is free again: a queued read may try it
            raise
        now = time.monotonic()
        return _Held(pooled, pooled.driver_connection, now, now)

    async def _give_back(self, held: _Held, *, healthy: bool) -> None:
        """Back to the pool; one interrupted mid-query or found closed is discarded."""
        self._held -= 1
        if not healthy:
            await greenlet_spawn(held.pooled.invalidate)
        await greenlet_spawn(held.pooled.close)

    async def close(self) -> None:
        self.closed = True
        while self._waiters:
            self._wake(None)
        while self._idle:
            held = self._idle.pop()
            await self._give_back(held, healthy=not held.driver.is_closed())


def open_read_lane(engine: AsyncEngine, size: int) -> None:
    """The engine's read lane, and its write lane of the same size."""
    _LANES[engine.sync_engine] = Lane(engine, size)
    _WRITE_LANES[engine.sync_engine] = Lane(engine, size)


async def close_read_lane(engine: AsyncEngine) -> None:
    """Connections lent at this moment go back to the pool as their statements end."""
    for lanes in (_LANES, _WRITE_LANES):
        lane = lanes.pop(engine.sync_engine, None)
        if lane is not None:
            await lane.close()


class DirectWrite:
    """A statement compiled once, run outside a transaction (autocommit) on a connection of
    the engine's write lane (or, without one, on a pooled connection's driver). Parameters
    go by their bindparam names; JSONB parameters are passed as JSON text (no SQLAlchemy
    bind processing here)."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: tuple[Dialect, str, tuple[str, ...]] | None = None

    def _sql(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        compiled = self._compiled
        if compiled is None or compiled[0] is not dialect:
            done = self._statement.compile(dialect=dialect)
            names = tuple(getattr(done, "positiontup", None) or ())
            compiled = self._compiled = (dialect, str(done), names)
        return compiled[1], compiled[2]

    async def execute(self, sessions: async_sessionmaker[AsyncSession], **params: Any) -> None:
        engine = engine_of(sessions)
        sql, names = self._sql(engine.dialect)
        args = [params[name] for name in names]
        await _run(_WRITE_LANES, engine, lambda driver: driver.execute(sql, *args))
