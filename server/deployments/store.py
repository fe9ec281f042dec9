"""Queries on deploy targets and deployments. Callers own the session and the transaction
and check the caller's project role (access.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.pagination import Page, keyset
from server.db.deployment_models import DeploymentRow, DeployTargetRow

IN_PROGRESS = ("queued", "uploading")


async def get_target(db: AsyncSession, target_id: uuid.UUID) -> DeployTargetRow | None:
    return await db.get(DeployTargetRow, target_id)


async def list_targets(
    db: AsyncSession, project_id: uuid.UUID, page: Page
) -> Sequence[DeployTargetRow]:
    """Newest first; one row more than the page holds."""
    query = select(DeployTargetRow).where(DeployTargetRow.project_id == project_id)
    query = keyset(query, DeployTargetRow.id, page, descending=True)
    return (await db.execute(query)).scalars().all()


async def target_in_use(db: AsyncSession, target_id: uuid.UUID) -> bool:
    query = select(exists().where(DeploymentRow.target_id == target_id))
    return bool(await db.scalar(query))


async def get_deployment(
    db: AsyncSession, deployment_id: uuid.UUID, *, lock: bool = False
) -> DeploymentRow | None:
    query = select(DeploymentRow).where(DeploymentRow.id == deployment_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def list_deployments(
    db: AsyncSession, project_id: uuid.UUID, target_id: uuid.UUID | None, page: Page
) -> Sequence[DeploymentRow]:
    """Newest first; one row more than the page holds."""
    query = select(DeploymentRow).where(DeploymentRow.project_id == project_id)
    if target_id is not None:
        query = query.where(DeploymentRow.target_id == target_id)
    query = keyset(query, DeploymentRow.id, page, descending=True)
    return (await db.execute(query)).scalars().all()


async def set_progress(db: AsyncSession, deployment_id: uuid.UUID, **values: Any) -> bool:
    """Updates a deployment still in progress (and says it is alive); False when it is not
    in progress any more (the sweeper settled it, or it was deleted)."""
    statement = (
        update(DeploymentRow)
        .where(DeploymentRow.id == deployment_id, DeploymentRow.status.in_(IN_PROGRESS))
        .values(heartbeat_time=func.now(), **values)
        .returning(DeploymentRow.id)
    )
    return (await db.execute(statement)).scalar_one_or_none() is not None


async def supersede_live(db: AsyncSession, target_id: uuid.UUID, keep: uuid.UUID) -> None:
    """The target's LIVE deployments other than `keep` become SUPERSEDED."""
    await db.execute(
        update(DeploymentRow)
        .where(
            DeploymentRow.target_id == target_id,
            DeploymentRow.status == "live",
            DeploymentRow.id != keep,
        )
        .values(status="superseded")
    )


async def lock_target(db: AsyncSession, target_id: uuid.UUID) -> None:
    """Serializes the switches of one target's live deployment."""
    await db.execute(
        select(DeployTargetRow.id).where(DeployTargetRow.id == target_id).with_for_update()
    )


async def beat(db: AsyncSession, deployment_ids: Sequence[uuid.UUID]) -> None:
    """These deployments' process is alive."""
    await db.execute(
        update(DeploymentRow)
        .where(DeploymentRow.id.in_(deployment_ids), DeploymentRow.status.in_(IN_PROGRESS))
        .values(heartbeat_time=func.now())
    )


async def fail_stale(db: AsyncSession, older_than: timedelta, reason: str, message: str) -> int:
    """Deployments in progress whose process has not said so for `older_than`: FAILED."""
    statement = (
        update(DeploymentRow)
        .where(
            DeploymentRow.status.in_(IN_PROGRESS),
            DeploymentRow.heartbeat_time < func.now() - older_than,
        )
        .values(status="failed", error_reason=reason, error_message=message)
        .returning(DeploymentRow.id)
    )
    return len((await db.execute(statement)).scalars().all())
