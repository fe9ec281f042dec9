"""Alembic environment. The server passes an open connection in `config.attributes`;
the `alembic` command line connects with FORGE_DATABASE_URL instead."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import server.db.all_models  # noqa: F401 - registers every table
from server.config import Settings
from server.db.engine import make_engine
from server.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    url = Settings().database_url
    if url is None:
        raise SystemExit("set FORGE_DATABASE_URL to run alembic from the command line")
    engine = make_engine(url.get_secret_value())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")

given: Connection | None = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_with_own_engine())
