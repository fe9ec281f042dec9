"""Queries on the sandbox tables. Callers own the session and the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ProjectMember
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxExecution, SandboxRow

# Statements on the path of every exec and file call, built once: constructing a statement
# costs more than running it.
_WITH_ROLE = (
    select(SandboxRow, ProjectMember.role)
    .outerjoin(
        ProjectMember,
        and_(
            ProjectMember.project_id == SandboxRow.project_id,
            ProjectMember.user_id == bindparam("user_id"),
        ),
    )
    .where(SandboxRow.id == bindparam("sandbox_id"))
)
_TOUCH = (
    update(SandboxRow)
    .where(SandboxRow.id == bindparam("sandbox_id"))
    .values(last_active_time=bindparam("now"))
    .execution_options(synchronize_session=False)
)


async def get(db: AsyncSession, sandbox_id: uuid.UUID, *, lock: bool = False) -> SandboxRow | None:
    query = select(SandboxRow).where(SandboxRow.id == sandbox_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def get_with_role(
    db: AsyncSession, sandbox_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[SandboxRow, str | None] | None:
    """The sandbox and the user's role in its project (None: not a member), in one query."""
    found = (
        await db.execute(_WITH_ROLE, {"sandbox_id": sandbox_id, "user_id": user_id})
    ).one_or_none()
    if found is None:
        return None
    row, role = found
    return row, role


async def count_live(db: AsyncSession, project_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(SandboxRow)
        .where(SandboxRow.project_id == project_id, SandboxRow.state.in_(LIVE_SANDBOX_STATES))
    )
    return int(count or 0)


async def count_live_of_user(db: AsyncSession, user_id: uuid.UUID) -> int:
    """The user's live sandboxes in every project, RunCode's throwaway ones not counted."""
    count = await db.scalar(
        select(func.count())
        .select_from(SandboxRow)
        .where(
            SandboxRow.creator_id == user_id,
            SandboxRow.state.in_(LIVE_SANDBOX_STATES),
            ~SandboxRow.ephemeral,
        )
    )
    return int(count or 0)


async def lock_user_sandboxes(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialises the user's sandbox creations until the transaction ends, so two
    concurrent ones cannot both take the last place of the user's share."""
    await db.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"sandboxes:{user_id}"))))


async def list_page(
    db: AsyncSession,
    project_id: uuid.UUID,
    states: Sequence[str],
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[SandboxRow]:
    """Newest first, `limit` rows strictly after the (create_time, id) key `before`."""
    query = select(SandboxRow).where(
        SandboxRow.project_id == project_id, SandboxRow.state.in_(states)
    )
    if before is not None:
        query = query.where(tuple_(SandboxRow.create_time, SandboxRow.id) < tuple_(*before))
    query = query.order_by(SandboxRow.create_time.desc(), SandboxRow.id.desc()).limit(limit)
    return list((await db.execute(query)).scalars())


def on_host(host_id: str) -> ColumnElement[bool]:
    """Rows of sandboxes on the Docker host `host_id`."""
    return SandboxRow.host_id == host_id


async def adopt_unplaced(db: AsyncSession, host_id: str) -> int:
    """Sandboxes recorded before hosts were (host_id NULL) are on the first engine: how many
    were adopted."""
    query = (
        update(SandboxRow)
        .where(SandboxRow.host_id.is_(None))
        .values(host_id=host_id)
        .execution_options(synchronize_session=False)
    )
    result = await db.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


async def census(db: AsyncSession, host_id: str) -> dict[str, int]:
    """How many sandboxes on the host are in each live state."""
    query = (
        select(SandboxRow.state, func.count())
        .where(on_host(host_id), SandboxRow.state.in_(LIVE_SANDBOX_STATES))
        .group_by(SandboxRow.state)
    )
    counts = {state: 0 for state in LIVE_SANDBOX_STATES}
    counts.update({str(state): int(n) for state, n in await db.execute(query)})
    return counts


async def mark_host_down(db: AsyncSession, host_id: str, message: str) -> list[uuid.UUID]:
    """Every live sandbox on a host that stopped answering is lost: their ids."""
    query = (
        update(SandboxRow)
        .where(on_host(host_id), SandboxRow.state.in_(LIVE_SANDBOX_STATES))
        .values(state="lost", state_message=message[:200], end_time=func.now())
        .returning(SandboxRow.id)
        .execution_options(synchronize_session=False)
    )
    return list((await db.execute(query)).scalars())


async def live(db: AsyncSession, host_id: str) -> list[SandboxRow]:
    """The live sandboxes on the Docker host `host_id`."""
    query = select(SandboxRow).where(SandboxRow.state.in_(LIVE_SANDBOX_STATES), on_host(host_id))
    return list((await db.execute(query)).scalars())


async def live_in_project(db: AsyncSession, project_id: uuid.UUID) -> list[SandboxRow]:
    query = select(SandboxRow).where(
        SandboxRow.project_id == project_id, SandboxRow.state.in_(LIVE_SANDBOX_STATES)
    )
    return list((await db.execute(query)).scalars())


@dataclass(frozen=True)
class Expired:
    row: SandboxRow
    why: str


async def expired(
    db: AsyncSession, host_id: str, now: datetime, idle_ttl: timedelta, max_lifetime: timedelta
) -> list[Expired]:
    query = select(SandboxRow).where(
        SandboxRow.state.in_(("running", "paused")),
        on_host(host_id),
        or_(
            SandboxRow.last_active_time < now - idle_ttl,
            SandboxRow.create_time < now - max_lifetime,
        ),
    )
    found = []
    for row in (await db.execute(query)).scalars():
        if row.create_time < now - max_lifetime:
            why = f"reached the maximum lifetime of {_human(max_lifetime)}"
        else:
            why = f"idle for {_human(idle_ttl)}"
        found.append(Expired(row, why))
    return found


def _human(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


async def set_state(
    db: AsyncSession,
    sandbox_id: uuid.UUID,
    state: str,
    message: str,
    *,
    only_from: Sequence[str] = LIVE_SANDBOX_STATES,
    now: datetime | None = None,
    **values: Any,
) -> SandboxRow | None:
    """Moves a sandbox to `state` if it is in one of `only_from`; the updated row, or None."""
    changes: dict[str, Any] = {"state": state, "state_message": message[:200], **values}
    if state not in LIVE_SANDBOX_STATES:
        changes["end_time"] = now or func.now()
    query = (
        update(SandboxRow)
        .where(SandboxRow.id == sandbox_id, SandboxRow.state.in_(only_from))
        .values(**changes)
        .returning(SandboxRow)
        .execution_options(synchronize_session=False)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def touch(db: AsyncSession, sandbox_id: uuid.UUID, now: datetime) -> None:
    await db.execute(_TOUCH, {"sandbox_id": sandbox_id, "now": now})


async def start_execution(
    db: AsyncSession,
    *,
    execution_id: uuid.UUID,
    sandbox_id: uuid.UUID,
    user_id: uuid.UUID | None,
    command: dict[str, Any],
    working_dir: str,
    start_time: datetime,
    owner: str,
    lease: timedelta,
) -> None:
    """Records an execution relayed by the process `owner`, leased to it for `lease`."""
    db.add(
        SandboxExecution(
            id=execution_id,
            sandbox_id=sandbox_id,
            user_id=user_id,
            command=command,
            working_dir=working_dir,
            state="running",
            start_time=start_time,
            owner=owner,
            lease_expires_at=func.now() + lease,
        )
    )
    await touch(db, sandbox_id, start_time)


async def finish_execution(
    db: AsyncSession, execution_id: uuid.UUID, sandbox_id: uuid.UUID, **values: Any
) -> None:
    await db.execute(
        update(SandboxExecution)
        .where(SandboxExecution.id == execution_id)
        .values(state="finished", **values)
        .execution_options(synchronize_session=False)
    )
    end_time = values.get("end_time")
    if isinstance(end_time, datetime):
        await touch(db, sandbox_id, end_time)


async def set_process_group(db: AsyncSession, execution_id: uuid.UUID, group: int) -> None:
    await db.execute(
        update(SandboxExecution)
        .where(SandboxExecution.id == execution_id)
        .values(process_group=group)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Orphaned:
    """An execution left running by a dead server, in a container that is still there."""

    container_id: str
    process_group: int


_MARK_ORPHANS_LOST = text(
    """
    UPDATE sandbox_executions AS e SET state = 'lost', end_time = now()
    FROM sandboxes AS s
    WHERE e.sandbox_id = s.id AND e.state = 'running'
      AND (e.lease_expires_at IS NULL OR e.lease_expires_at < now())
      AND s.host_id = :host_id
    RETURNING s.container_id, s.state, e.process_group
    """
)


async def mark_orphaned_executions_lost(
    db: AsyncSession, host_id: str
) -> tuple[int, list[Orphaned]]:
    """Executions on the host whose process died (their lease expired) are marked lost:
    how many, and what they may have left running in live containers."""
    rows = list(await db.execute(_MARK_ORPHANS_LOST, {"host_id": host_id}))
    orphaned = [
        Orphaned(str(container), int(group))
        for container, state, group in rows
        if container is not None and group is not None and state in ("running", "paused")
    ]
    return len(rows), orphaned


async def has_running_executions(
    db: AsyncSession, sandbox_id: uuid.UUID, *, other_than: str
) -> bool:
    """Whether an execution in the sandbox is running, relayed by a live process (its lease
    not expired) other than `other_than`."""
    query = select(SandboxExecution.id).where(
        SandboxExecution.sandbox_id == sandbox_id,
        SandboxExecution.state == "running",
        SandboxExecution.owner != other_than,
        SandboxExecution.lease_expires_at > func.now(),
    )
    return (await db.execute(query.limit(1))).first() is not None


async def get_execution(db: AsyncSession, execution_id: uuid.UUID) -> SandboxExecution | None:
    return await db.get(SandboxExecution, execution_id)


async def mark_running_executions_lost(
    db: AsyncSession, sandbox_ids: Sequence[uuid.UUID] | None = None
) -> int:
    """Executions still 'running' (their server died): marked lost. All, or those of
    `sandbox_ids`."""
    query = update(SandboxExecution).where(SandboxExecution.state == "running")
    if sandbox_ids is not None:
        query = query.where(SandboxExecution.sandbox_id.in_(sandbox_ids))
    result = await db.execute(
        query.values(state="lost", end_time=func.now()).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def system_counters() -> dict[str, ScalarSelect[int]]:
    """What GetSystemStats counts of sandboxes: those not deleted."""
    live = select(func.count()).select_from(SandboxRow)
    return {
        "live_sandboxes": live.where(SandboxRow.state.in_(LIVE_SANDBOX_STATES)).scalar_subquery()
    }
