"""Health follows the database: `SELECT 1` every `interval` seconds (and at once when a
call found the database gone), reported to whoever follows, only when the answer changes."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.core.probed_health import ProbedHealth


class DatabaseHealth(ProbedHealth):
    """Assumed up until a probe says otherwise; the first probe is one interval in."""

    def __init__(self, engine: AsyncEngine, interval: float, timeout: float | None = None) -> None:
        async def select_one() -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        super().__init__(
            "the database",
            select_one,
            interval,
            timeout if timeout is not None else max(interval, 1.0),
            assumed=True,
            probe_first=False,
        )
