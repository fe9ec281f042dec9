"""Queries on builds and their output files. Callers own the session and the transaction,
and check the caller's project role before calling (see access.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.pagination import Page, keyset
from server.db.build_models import BuildFileRow, BuildRow


async def get(db: AsyncSession, build_id: uuid.UUID) -> BuildRow | None:
    return await db.get(BuildRow, build_id)


async def latest(
    db: AsyncSession, artifact_id: uuid.UUID, version: int, requested_entry: str
) -> BuildRow | None:
    """The newest build of the version made for the same request (what a rebuild reuses)."""
    return await _newest(db, artifact_id, version, BuildRow.requested_entry == requested_entry)


async def latest_succeeded(
    db: AsyncSession, artifact_id: uuid.UUID, version: int
) -> BuildRow | None:
    """The newest build of the version that succeeded (what a preview shows)."""
    return await _newest(db, artifact_id, version, BuildRow.status == "succeeded")


async def _newest(
    db: AsyncSession, artifact_id: uuid.UUID, version: int, condition: ColumnElement[bool]
) -> BuildRow | None:
    query = (
        select(BuildRow)
        .where(BuildRow.artifact_id == artifact_id, BuildRow.version == version, condition)
        .order_by(BuildRow.id.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def list_page(db: AsyncSession, artifact_id: uuid.UUID, page: Page) -> Sequence[BuildRow]:
    """Newest first; one row more than the page holds."""
    query = select(BuildRow).where(BuildRow.artifact_id == artifact_id)
    query = keyset(query, BuildRow.id, page, descending=True)
    return (await db.execute(query)).scalars().all()


async def files_of(db: AsyncSession, build_ids: Sequence[uuid.UUID]) -> list[BuildFileRow]:
    """The output files of the builds, in path order per build."""
    if not build_ids:
        return []
    query = (
        select(BuildFileRow)
        .where(BuildFileRow.build_id.in_(build_ids))
        .order_by(BuildFileRow.build_id, BuildFileRow.path)
    )
    return list((await db.execute(query)).scalars().all())


async def get_file(db: AsyncSession, build_id: uuid.UUID, path: str) -> BuildFileRow | None:
    return await db.get(BuildFileRow, (build_id, path))


async def insert(db: AsyncSession, row: BuildRow, files: Sequence[BuildFileRow]) -> None:
    """The build, then its output files (`build_id` set here)."""
    db.add(row)
    await db.flush()
    for file in files:
        file.build_id = row.id
    db.add_all(files)
    await db.flush()
