"""Queries on the shared warm pool (sandbox_pool). Callers own the session and transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.sandbox_models import SandboxPoolRow
from server.sandbox.limits import Limits

_CLAIM = text(
    """
    DELETE FROM sandbox_pool
    WHERE container_id = (
        SELECT container_id FROM sandbox_pool
        WHERE host_id = :host AND runtime = :runtime AND image = :image
          AND limits_key = :limits_key
        ORDER BY create_time
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING sandbox_id, container_id
    """
)


@dataclass(frozen=True)
class WarmContainer:
    sandbox_id: uuid.UUID
    container_id: str


def limits_key(limits: Limits) -> str:
    """The limits fixed when a container is created, as the pool records them."""
    return ":".join(str(value) for value in limits.container_key())


async def claim(
    db: AsyncSession, host_id: str, runtime: str, image: str, limits: Limits
) -> WarmContainer | None:
    """Takes a ready container of the host for a sandbox with `limits` (None: none ready);
    the claim stands once the transaction commits, and is undone if it rolls back."""
    params = {"host": host_id, "runtime": runtime, "image": image, "limits_key": limits_key(limits)}
    found = (await db.execute(_CLAIM, params)).first()
    if found is None:
        return None
    return WarmContainer(sandbox_id=found.sandbox_id, container_id=found.container_id)


async def add(
    db: AsyncSession, host_id: str, runtime: str, image: str, limits: Limits, made: WarmContainer
) -> None:
    db.add(
        SandboxPoolRow(
            container_id=made.container_id,
            sandbox_id=made.sandbox_id,
            host_id=host_id,
            runtime=runtime,
            image=image,
            limits_key=limits_key(limits),
        )
    )


async def count(db: AsyncSession, host_id: str, runtime: str) -> int:
    query = select(func.count()).where(
        SandboxPoolRow.host_id == host_id, SandboxPoolRow.runtime == runtime
    )
    return int(await db.scalar(query) or 0)


async def ready_by_runtime(db: AsyncSession, host_ids: Iterable[str]) -> dict[str, int]:
    """Ready containers per runtime on the hosts `host_ids`."""
    query = (
        select(SandboxPoolRow.runtime, func.count())
        .where(SandboxPoolRow.host_id.in_(list(host_ids)))
        .group_by(SandboxPoolRow.runtime)
    )
    return {runtime: int(n) for runtime, n in await db.execute(query)}


async def on_host(db: AsyncSession, host_id: str) -> list[SandboxPoolRow]:
    query = select(SandboxPoolRow).where(SandboxPoolRow.host_id == host_id)
    return list((await db.execute(query)).scalars())


async def remove(db: AsyncSession, container_ids: Iterable[str]) -> None:
    ids = list(container_ids)
    if ids:
        await db.execute(delete(SandboxPoolRow).where(SandboxPoolRow.container_id.in_(ids)))


async def empty_host(db: AsyncSession, host_id: str) -> None:
    """Forgets every ready container of a host (it went down)."""
    await db.execute(delete(SandboxPoolRow).where(SandboxPoolRow.host_id == host_id))
