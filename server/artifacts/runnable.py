"""A code artifact's version as the source RunCode runs (the artifact port's `source_code`):
how a Python artifact is "previewed", by its output."""

from __future__ import annotations

import uuid

from server.artifacts import store
from server.artifacts.access import artifact_for, artifact_not_found, version_not_found
from server.artifacts.core import ArtifactsCore
from server.artifacts.extract import language_of
from server.artifacts.kinds import Kind
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import FailedPrecondition
from server.core.ports import ArtifactSource
from server.db.engine import reading

NOT_RUNNABLE = "NOT_RUNNABLE"


async def source_code(
    core: ArtifactsCore,
    caller: Caller,
    project_id: uuid.UUID,
    artifact_id: uuid.UUID,
    version: int,
) -> ArtifactSource:
    async with reading(core.sessions) as db:
        artifact = await artifact_for(db, caller, artifact_id, ProjectRole.VIEWER)
        if artifact.project_id != project_id:
            raise artifact_not_found()
        number = version or artifact.latest_version
        row = await store.get_version(db, artifact.id, number)
        if row is None:
            raise version_not_found(number)
    if artifact.kind == Kind.TREE.value:
        raise FailedPrecondition(
            "a tree artifact is not one program: build it, or run one of its files",
            NOT_RUNNABLE,
        )
    try:
        code = (await core.blobs.read(row.sha256)).decode()
    except UnicodeDecodeError:
        raise FailedPrecondition("the artifact is not UTF-8 text", NOT_RUNNABLE) from None
    return ArtifactSource(number, artifact.language or language_of(artifact.filename), code)
