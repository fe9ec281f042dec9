"""The project access rule, applied to artifacts: a caller who may not see an artifact's
project gets the same NOT_FOUND as for an artifact that does not exist."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import build_store, store
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import NotFound
from server.db.artifact_models import ArtifactRow
from server.db.build_models import BuildRow

ARTIFACT_NOT_FOUND = "ARTIFACT_NOT_FOUND"
VERSION_NOT_FOUND = "ARTIFACT_VERSION_NOT_FOUND"
BUILD_NOT_FOUND = "BUILD_NOT_FOUND"


def artifact_not_found() -> NotFound:
    return NotFound("artifact not found", ARTIFACT_NOT_FOUND)


def build_not_found() -> NotFound:
    return NotFound("build not found", BUILD_NOT_FOUND)


def version_not_found(version: int) -> NotFound:
    return NotFound(
        f"the artifact has no version {version}", VERSION_NOT_FOUND, {"version": str(version)}
    )


async def artifact_for(
    db: AsyncSession,
    caller: Caller,
    artifact_id: uuid.UUID,
    needed: ProjectRole,
    *,
    lock: bool = False,
) -> ArtifactRow:
    """The artifact, if the caller has at least `needed` in its project; `lock` locks the
    row for update until the transaction ends."""
    row = await store.get(db, artifact_id, lock=lock)
    if row is None:
        raise artifact_not_found()
    try:
        await require_project_role(db, caller, row.project_id, needed)
    except NotFound:
        raise artifact_not_found() from None
    return row


async def artifact_in_project(
    db: AsyncSession,
    caller: Caller,
    artifact_id: uuid.UUID,
    project_id: uuid.UUID,
    needed: ProjectRole,
) -> ArtifactRow:
    """As `artifact_for`, for a call made in `project_id` (a port's): another project's
    artifact is NOT_FOUND too."""
    row = await artifact_for(db, caller, artifact_id, needed)
    if row.project_id != project_id:
        raise artifact_not_found()
    return row


async def build_for(
    db: AsyncSession, caller: Caller, build_id: uuid.UUID, needed: ProjectRole
) -> tuple[BuildRow, ArtifactRow]:
    """The build and its artifact, if the caller has at least `needed` in its project; the
    same NOT_FOUND as for a build that does not exist otherwise."""
    row = await build_store.get(db, build_id)
    if row is None:
        raise build_not_found()
    try:
        return row, await artifact_for(db, caller, row.artifact_id, needed)
    except NotFound:
        raise build_not_found() from None
