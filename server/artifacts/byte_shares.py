"""Each user's share of artifact storage: the bytes of every artifact version they wrote
(CreateArtifact, UpdateArtifact, UploadArtifact, GenerateImage, a run's save_artifact),
counted until the artifact is deleted. Identical content is stored once, but each version
counts with its size: what a user pays does not depend on what others stored.

Versions extracted from chat answers are counted but never refused: the answer has already
been produced and paid for in tokens (the daily token quota bounds them).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.limits import LimitsPort, quota_exceeded
from server.db.artifact_models import ArtifactVersionRow

ARTIFACT_STORAGE_LIMIT_REACHED = "ARTIFACT_STORAGE_LIMIT_REACHED"


async def bytes_of_user(db: AsyncSession, user_id: uuid.UUID) -> int:
    total = await db.scalar(
        select(func.coalesce(func.sum(ArtifactVersionRow.size_bytes), 0)).where(
            ArtifactVersionRow.creator_id == user_id
        )
    )
    return int(total or 0)


class ByteShares:
    """Checks a write of `adding` bytes against the writer's `max_artifact_bytes`. None:
    no limit (a core built without the limits port, e.g. in unit tests)."""

    def __init__(self, limits: LimitsPort | None = None) -> None:
        self._limits = limits

    async def precheck(self, db: AsyncSession, user_id: uuid.UUID, adding: int) -> None:
        """Refuses early, before the bytes are stored (the check that counts is `check`)."""
        await self._check(db, user_id, adding)

    async def check(self, db: AsyncSession, user_id: uuid.UUID, adding: int) -> None:
        """In the transaction that records the version: serialised per user, so two
        concurrent writes cannot both take the last bytes of the share."""
        if self._limits is None:
            return
        await db.execute(
            select(func.pg_advisory_xact_lock(func.hashtext(f"artifact-bytes:{user_id}")))
        )
        await self._check(db, user_id, adding)

    async def _check(self, db: AsyncSession, user_id: uuid.UUID, adding: int) -> None:
        if self._limits is None:
            return
        allowed = (await self._limits.limits_of(user_id)).max_artifact_bytes
        used = await bytes_of_user(db, user_id)
        if used + adding <= allowed:
            return
        raise quota_exceeded(
            limit="max_artifact_bytes",
            user_id=user_id,
            allowed=allowed,
            used=used,
            reason=ARTIFACT_STORAGE_LIMIT_REACHED,
            message=f"your artifacts already hold {used} bytes; {adding} more would pass your "
            f"share of {allowed} bytes: delete artifacts you no longer need",
            what="bytes of artifact versions stored",
        )
