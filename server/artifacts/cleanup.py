"""What deleting a project does to its artifacts: the rows go in the project-deleting
transaction; the blobs nothing references any more go once it has committed."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import store
from server.artifacts.blobrefs import BlobKeeper
from server.core.hooks import AfterCommit


class ProjectArtifactsCleanup:
    def __init__(self, keeper: BlobKeeper) -> None:
        self._keeper = keeper

    async def __call__(self, db: AsyncSession, project_id: uuid.UUID) -> AfterCommit | None:
        shas = await store.shas_of_project(db, project_id)
        await store.delete_project_artifacts(db, project_id)
        if not shas:
            return None

        async def remove_blobs() -> None:
            await self._keeper.release(shas)

        return remove_blobs
