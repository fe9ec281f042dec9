"""Two server processes' places on one database (server/core/holds.py), as tests need them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.holds import Holds


@asynccontextmanager
async def two_processes_places(
    sessions: async_sessionmaker[AsyncSession], lease_seconds: float
) -> AsyncIterator[tuple[Holds, Holds]]:
    """Two processes' places (each its own owner and lease), started; stopped at the end
    (stopping one twice changes nothing)."""
    first, second = Holds(sessions, lease_seconds), Holds(sessions, lease_seconds)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await second.stop()
        await first.stop()
