"""Engine and session factory (SQLAlchemy 2.0 async over asyncpg)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from server.db.reads import close_read_lane, open_read_lane
from server.db.reads import engine_of as engine_of

# A pooled connection idle for longer than this is pinged before use (see _check_out).
PING_IDLE_SECONDS = 10.0
POOL_RECYCLE_SECONDS = 1800
_CHECKED_IN = "forge_checked_in"


def to_async_url(url: str) -> str:
    """Accepts postgres://, postgresql:// or postgresql+asyncpg:// and answers the asyncpg form."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("the database URL must be a postgresql:// URL")


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, read_lane: int = 0
) -> AsyncEngine:
    """With `read_lane`, that many of the pool's connections serve DirectReads
    (server/db/reads.py); close the engine with `dispose` then."""
    engine = create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )
    event.listen(engine.sync_engine.pool, "checkin", _checked_in)
    event.listen(engine.sync_engine.pool, "checkout", _check_out)
    if read_lane > 0:
        open_read_lane(engine, min(read_lane, pool_size))
    return engine


async def dispose(engine: AsyncEngine) -> None:
    """Gives back what the read lane holds, then closes every pooled connection."""
    await close_read_lane(engine)
    await engine.dispose()


def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _check_out(
    dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection
) -> None:
    """A lazier pool_pre_ping. SQLAlchemy's pings every checkout, and under asyncpg outside
    autocommit that is BEGIN, `;`, ROLLBACK: three round trips before each session's first
    query. A connection the server closed (restart, terminated backend) is already marked
    closed by asyncpg, which costs nothing to ask; only one idle long enough for something
    on the way to have dropped it silently is pinged. A connection found dead is replaced
    (the pool retries the checkout)."""
    connection = getattr(dbapi_connection, "_connection", None)
    if connection is not None and connection.is_closed():
        raise exc.DisconnectionError("the database closed the connection")
    checked_in = record.info.get(_CHECKED_IN)
    if checked_in is not None and time.monotonic() - checked_in > PING_IDLE_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise exc.DisconnectionError("the pooled connection does not answer") from error


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads that need no transaction: its connection is in autocommit, so
    there is no BEGIN before the first query and no ROLLBACK after the last (two round trips
    saved). Each statement sees the data committed when it starts, exactly as under READ
    COMMITTED inside a transaction; use a transaction when several reads must agree."""
    async with sessions() as db:
        await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield db
