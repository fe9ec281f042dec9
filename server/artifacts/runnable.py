"""A code artifact's version as the source RunCode runs (the artifact port's `source_code`):
how a Python artifact is "previewed", by its output."""

from __future__ import annotations

import uuid

from server.artifacts.access import (
    artifact_in_project,
)
from server.artifacts.core import ArtifactsCore, version_of
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
        artifact = await artifact_in_project(
            db, caller, artifact_id, project_id, ProjectRole.VIEWER
        )
        row = await version_of(db, artifact, version)
    if artifact.kind == Kind.TREE.value:
        raise FailedPrecondition(
            "a tree artifact is not one program: build it, or run one of its files",
            NOT_RUNNABLE,
        )
    try:
        code = (await core.blobs.read(row.sha256)).decode()
    except UnicodeDecodeError:
        raise FailedPrecondition("the artifact is not UTF-8 text", NOT_RUNNABLE) from None
    return ArtifactSource(row.version, artifact.language or language_of(artifact.filename), code)
