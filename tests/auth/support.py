"""Reaching past the API into the auth tables, for what a client cannot do: let time pass."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth.tokens import digest
from server.db.models import RefreshToken


async def outlive_reuse_grace(
    sessions: async_sessionmaker[AsyncSession], refresh_token: str
) -> None:
    """Moves the rotation of `refresh_token` an hour back, well past the reuse grace window,
    as if its holder presented it again much later."""
    async with sessions() as db, db.begin():
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest(refresh_token))
            .values(rotate_time=RefreshToken.rotate_time - timedelta(hours=1))
        )
