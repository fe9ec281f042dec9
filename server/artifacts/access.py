"""The project access rule, applied to artifacts: a caller who may not see an artifact's
project gets the same NOT_FOUND as for an artifact that does not exist."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import store
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import NotFound
from server.db.artifact_models import ArtifactRow

ARTIFACT_NOT_FOUND = "ARTIFACT_NOT_FOUND"
VERSION_NOT_FOUND = "ARTIFACT_VERSION_NOT_FOUND"


def artifact_not_found() -> NotFound:
    return NotFound("artifact not found", ARTIFACT_NOT_FOUND)


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
