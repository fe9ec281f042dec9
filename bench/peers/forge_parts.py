"""Forge's own parts, set up as its server sets them up, for the GetProject peers that do
Forge's work on another framework (`unary_fastapi.py`) or on a bare grpc.aio server
(`unary_grpc_project.py`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth.tokens import AccessTokens
from server.config import Settings
from server.db.engine import make_engine, make_session_factory


def access_tokens(secret: str) -> AccessTokens:
    """Access tokens checked as Forge checks them, under the default issuer and audience."""
    defaults = Settings()
    return AccessTokens(
        secret.encode(),
        defaults.jwt_issuer,
        defaults.jwt_audience,
        timedelta(seconds=defaults.access_token_ttl_seconds),
    )


def sessions(database_url: str) -> async_sessionmaker[AsyncSession]:
    """Sessions over an engine with Forge's default pool and read lane."""
    defaults = Settings()
    engine = make_engine(
        database_url,
        pool_size=defaults.database_pool_size,
        max_overflow=defaults.database_max_overflow,
        read_lane=defaults.read_lane_connections,
    )
    return make_session_factory(engine)
