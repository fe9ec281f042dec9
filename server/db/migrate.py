"""Runs Alembic migrations from inside the (async) server. Alembic (with Mako and Pygments,
~14 MB) is imported only when a migration runs: a server starting on a database that is
already at the newest revision (read from the migration files, not through Alembic) does
not carry it, and worker processes (server/workers.py) never migrate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.engine import dispose, make_engine

if TYPE_CHECKING:
    from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS = REPO_ROOT / "migrations" / "versions"
_REVISION = re.compile(r'^revision\b[^=]*=\s*"([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision\b[^=]*=\s*"([^"]+)"', re.MULTILINE)


def alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def head_revision() -> str | None:
    """The newest migration's revision, from the files' `revision` and `down_revision`
    lines; None unless there is exactly one head."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        source = path.read_text()
        if found := _REVISION.search(source):
            revisions.add(found.group(1))
        if parent := _DOWN_REVISION.search(source):
            revised.add(parent.group(1))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


async def stored_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (Alembic's table), without Alembic."""
    async with engine.connect() as conn:
        if not await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
            return None
        stored = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    return str(stored[0][0]) if len(stored) == 1 else None


async def upgrade_if_behind(engine: AsyncEngine) -> None:
    """Migrates to the newest revision, unless the database is already there."""
    head = head_revision()
    if head is None or await stored_revision(engine) != head:
        await upgrade(engine)


async def upgrade_database(url: str) -> None:
    """Migrates the database at `url` to the newest revision, unless it is already there."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        await upgrade_if_behind(engine)
    finally:
        await dispose(engine)
