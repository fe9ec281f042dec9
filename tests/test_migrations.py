"""Alembic migrations apply, revert and re-apply cleanly on an empty database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

import server.db.all_models  # noqa: F401 - registers every table
from server.db import migrate
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine
from server.db.models import Base


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_upgrade_downgrade_upgrade(postgres: EmbeddedPostgres) -> None:
    engine = make_engine(await postgres.ensure_database("forge_migrations"))
    try:
        assert await _tables(engine) == set()
        model_tables = set(Base.metadata.tables)

        assert await migrate.stored_revision(engine) is None  # not even Alembic's table
        await migrate.upgrade_if_behind(engine)
        assert await _tables(engine) == model_tables | {"alembic_version"}
        head = await migrate.current_revision(engine)
        assert head is not None
        # Read without Alembic (a server at head skips importing it): the same revision.
        assert migrate.head_revision() == head
        assert await migrate.stored_revision(engine) == head

        await migrate.downgrade(engine, "base")
        assert await _tables(engine) == {"alembic_version"}
        assert await migrate.current_revision(engine) is None
        assert await migrate.stored_revision(engine) is None

        await migrate.upgrade_if_behind(engine)
        assert await _tables(engine) == model_tables | {"alembic_version"}
        assert await migrate.current_revision(engine) == head
    finally:
        await engine.dispose()


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from server.db.migrate import REPO_ROOT, alembic_config

    config = alembic_config(None)  # type: ignore[arg-type]  # (no connection needed here)
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    assert migrate.head_revision() == ScriptDirectory.from_config(config).get_current_head()


async def test_models_match_migrations(database_url: str, forge: object) -> None:
    """Alembic's autogenerate finds nothing to add: no model change lacks its migration."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert diffs == []
    finally:
        await engine.dispose()
