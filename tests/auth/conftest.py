from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.engine import make_engine, make_session_factory


@pytest.fixture(scope="module")
async def auth_db(
    database_url: str, forge: object
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Straight to the database the test server uses."""
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    yield make_session_factory(engine)
    await engine.dispose()
