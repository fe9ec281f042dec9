"""Who runs a run: the lease columns of `runs`, compared with the database clock only.

A process owns a run while `owner` is its id and `lease_expires_at` is in the future; every
takeover increments `lease_token`, and the event log appends only with the current token
(fencing), so a process that lost its lease cannot write another event. A run waiting for
approval holds no lease; approving it makes it `queued` and so claimable.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.run_models import RunRow


@dataclass(frozen=True, slots=True)
class Lease:
    run_id: uuid.UUID
    token: int


_CLAIM = text(
    """
    UPDATE runs SET owner = :owner, lease_token = lease_token + 1,
        lease_expires_at = now() + make_interval(secs => :lease_seconds)
    WHERE id IN (
        SELECT id FROM runs
        WHERE status IN ('queued', 'running')
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY id
        FOR UPDATE SKIP LOCKED
        LIMIT :limit
    )
    RETURNING id, lease_token
    """
)

_CLAIM_ONE = text(
    """
    UPDATE runs SET owner = :owner, lease_token = lease_token + 1,
        lease_expires_at = now() + make_interval(secs => :lease_seconds)
    WHERE id = :run_id
      AND status IN ('queued', 'running', 'waiting_for_approval')
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    RETURNING id, lease_token
    """
)

_RENEW = text(
    """
    UPDATE runs AS r SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS held(id, token)
    WHERE r.id = held.id AND r.lease_token = held.token AND r.owner = :owner
      AND r.status IN ('queued', 'running')
    RETURNING r.id
    """
)

_RELEASE = text(
    """
    UPDATE runs AS r SET owner = NULL, lease_expires_at = now() - interval '1 second'
    FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS held(id, token)
    WHERE r.id = held.id AND r.lease_token = held.token
      AND r.status IN ('queued', 'running')
    RETURNING r.id
    """
)

_NOW = text("SELECT now()")


async def claim_runs(db: AsyncSession, owner: str, lease_seconds: float, limit: int) -> list[Lease]:
    """Takes up to `limit` runs that should be running but whose owner is gone (or that
    were never started, or were approved)."""
    rows = await db.execute(
        _CLAIM, {"owner": owner, "lease_seconds": lease_seconds, "limit": limit}
    )
    return [Lease(row.id, row.lease_token) for row in rows]


async def claim_run(
    db: AsyncSession, owner: str, lease_seconds: float, run_id: uuid.UUID
) -> Lease | None:
    """Takes one run that has not ended and that no live process owns (a waiting run
    included: CancelRun ends it this way)."""
    row = (
        await db.execute(
            _CLAIM_ONE, {"owner": owner, "lease_seconds": lease_seconds, "run_id": run_id}
        )
    ).first()
    return Lease(row.id, row.lease_token) if row is not None else None


async def renew(
    db: AsyncSession, owner: str, lease_seconds: float, held: Sequence[Lease]
) -> set[uuid.UUID]:
    """Extends every lease in `held` still ours, in one statement; answers the runs renewed
    (the others were lost: taken over, or ended)."""
    if not held:
        return set()
    rows = await db.execute(
        _RENEW,
        {
            "owner": owner,
            "lease_seconds": lease_seconds,
            "ids": [lease.run_id for lease in held],
            "tokens": [lease.token for lease in held],
        },
    )
    return {row.id for row in rows}


async def release(db: AsyncSession, held: Sequence[Lease]) -> list[uuid.UUID]:
    """Gives the leases up (expired now), so any process may claim the runs at once."""
    if not held:
        return []
    rows = await db.execute(
        _RELEASE,
        {"ids": [lease.run_id for lease in held], "tokens": [lease.token for lease in held]},
    )
    return [row.id for row in rows]


async def database_now(db: AsyncSession) -> datetime:
    value = await db.scalar(_NOW)
    assert isinstance(value, datetime)
    return value


async def run_and_now(db: AsyncSession, run_id: uuid.UUID) -> tuple[RunRow | None, datetime]:
    """The run's row, fresh from the database, and the database clock."""
    now = await database_now(db)
    row = await db.get(RunRow, run_id, populate_existing=True)
    return row, now


def lease_values(owner: str, lease_seconds: float) -> Mapping[str, Any]:
    """Columns of a row inserted already leased to `owner` (StartRun)."""
    return {
        "owner": owner,
        "lease_token": 1,
        "lease_expires_at": func.now() + timedelta(seconds=lease_seconds),
    }
