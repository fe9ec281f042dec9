"""Making the database and the engine agree, for one Docker host (`host_id`); only the
process holding the host's duties (duties.py) runs these.

When a process takes the duties over (`reconcile_on_start`: at start-up, or when the previous
holder died), before its warm pool starts: every managed container of this namespace without
a live row is removed (crash leftovers, old warm pools); every live row whose container is
gone or stopped is marked lost; executions whose process died (their lease expired) are
marked lost and what they left running is killed (`orphaned_executions`, which the duty
holder also runs on every heartbeat). A sandbox still being created may belong to another
live process: its container is kept, and only once it is older than ORPHAN_GRACE is it failed.

While serving, a container that stops or is removed marks its sandbox lost at once
(`container_ended`, fed by the engine's event stream). `sweep` catches up with whatever
that missed, more carefully, since creations are in flight: rows whose container vanished
are marked lost, containers of rows that ended are removed, and containers with no row at
all only once they are older than a grace period.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.sandbox_models import SandboxPoolRow, SandboxRow
from server.sandbox import pool_store, store
from server.sandbox.backend import (
    LABEL_SANDBOX_ID,
    BackendError,
    ContainerInfo,
    ContainerStatus,
    SandboxBackend,
)

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(minutes=2)
_ALIVE = (ContainerStatus.RUNNING, ContainerStatus.PAUSED)
_STOPPED_CREATING = "the server stopped while creating it"


@dataclass
class Report:
    removed_containers: list[str] = field(default_factory=list)
    lost_sandboxes: list[str] = field(default_factory=list)
    failed_sandboxes: list[str] = field(default_factory=list)
    lost_executions: int = 0


async def reconcile_on_start(
    backend: SandboxBackend,
    sessions: async_sessionmaker[AsyncSession],
    namespace: str,
    host_id: str,
    pool_accepts: Callable[[SandboxPoolRow], bool],
) -> Report:
    """`pool_accepts` says which warm containers still fit their runtime's configuration."""
    report = Report()
    # Containers first, rows second: a sandbox being created commits its row before its
    # container exists, so a container listed here of a row created since is impossible.
    containers = await backend.list_managed(namespace)
    by_id = {container.id: container for container in containers}
    by_label = {c.labels.get(LABEL_SANDBOX_ID, ""): c for c in containers}
    keep: set[str] = set()
    async with sessions() as db:
        stale = await _database_now(db) - ORPHAN_GRACE
        dropped: list[str] = []
        for ready in await pool_store.on_host(db, host_id):
            container = by_id.get(ready.container_id)
            alive = container is not None and container.status is ContainerStatus.RUNNING
            if alive and pool_accepts(ready):
                keep.add(ready.container_id)
                continue
            dropped.append(ready.container_id)
        await pool_store.remove(db, dropped)
        for row in await store.live(db, host_id):
            container = by_id.get(row.container_id or "")
            if row.state == "creating":
                if row.create_time < stale:
                    await store.set_state(db, row.id, "failed", _STOPPED_CREATING)
                    report.failed_sandboxes.append(str(row.id))
                elif (being_made := by_label.get(str(row.id))) is not None:
                    keep.add(being_made.id)  # perhaps another process is creating it
                continue
            if container is None or container.status not in _ALIVE:
                why = "container vanished" if container is None else "container stopped"
                await store.set_state(db, row.id, "lost", why)
                report.lost_sandboxes.append(str(row.id))
                continue
            keep.add(container.id)
            await _mirror(db, row, container)
        await db.commit()
    report.lost_executions = await orphaned_executions(backend, sessions, host_id)
    report.removed_containers = [c.id for c in containers if c.id not in keep]
    await _remove(backend, report.removed_containers)
    if report.removed_containers or report.lost_sandboxes or report.failed_sandboxes:
        log.info(
            "sandboxes reconciled",
            extra={
                "removed_containers": len(report.removed_containers),
                "lost_sandboxes": len(report.lost_sandboxes),
                "failed_sandboxes": len(report.failed_sandboxes),
                "lost_executions": report.lost_executions,
            },
        )
    return report


async def orphaned_executions(
    backend: SandboxBackend, sessions: async_sessionmaker[AsyncSession], host_id: str
) -> int:
    """Executions on the host whose process died (lease expired) are marked lost, and what
    they left running in live containers is killed; answers how many."""
    async with sessions() as db:
        count, orphaned = await store.mark_orphaned_executions_lost(db, host_id)
        await db.commit()
    await _kill_groups(backend, orphaned)
    if count:
        log.info("executions of a stopped server marked lost", extra={"count": count})
    return count


async def _database_now(db: AsyncSession) -> datetime:
    value = await db.scalar(select(func.now()))
    assert isinstance(value, datetime)
    return value


async def _kill_groups(backend: SandboxBackend, orphaned: list[store.Orphaned]) -> None:
    """Kills what executions of a dead server left running in containers that survived."""

    async def one(item: store.Orphaned) -> None:
        try:
            await backend.kill_process_group(item.container_id, item.process_group)
        except BackendError as error:
            log.warning("could not kill a lost execution", extra={"error": str(error)})

    await asyncio.gather(*(one(item) for item in orphaned))


async def _mirror(db: AsyncSession, row: SandboxRow, container: ContainerInfo) -> None:
    """The row follows the container's paused/running state."""
    if container.status is ContainerStatus.PAUSED and row.state == "running":
        await store.set_state(db, row.id, "paused", "found paused", only_from=("running",))
    elif container.status is ContainerStatus.RUNNING and row.state == "paused":
        await store.set_state(db, row.id, "running", "found running", only_from=("paused",))


async def sweep(
    backend: SandboxBackend,
    sessions: async_sessionmaker[AsyncSession],
    namespace: str,
    host_id: str,
    now: datetime,
) -> Report:
    """One pass while serving."""
    report = Report()
    containers = await backend.list_managed(namespace)
    by_container = {container.id: container for container in containers}
    labelled: dict[uuid.UUID, ContainerInfo] = {}
    for info in containers:
        try:
            labelled[uuid.UUID(info.labels.get(LABEL_SANDBOX_ID, ""))] = info
        except ValueError:
            continue
    async with sessions() as db:
        pooled: set[str] = set()
        vanished: list[str] = []
        for ready in await pool_store.on_host(db, host_id):
            container = by_container.get(ready.container_id)
            if container is not None and container.status is ContainerStatus.RUNNING:
                pooled.add(ready.container_id)
            else:
                vanished.append(ready.container_id)
        await pool_store.remove(db, vanished)
        for row in await store.live(db, host_id):
            if row.state == "creating" and row.create_time < now - ORPHAN_GRACE:
                # Its process died while creating it (the container, if any, is removed
                # below once the row has ended).
                failed = await store.set_state(
                    db, row.id, "failed", _STOPPED_CREATING, only_from=("creating",)
                )
                if failed is not None:
                    report.failed_sandboxes.append(str(row.id))
                continue
            if row.state == "creating" or not row.container_id:
                continue
            container = by_container.get(row.container_id)
            if container is None or container.status not in _ALIVE:
                # Only from a live state: a sandbox deleted a moment ago is not lost.
                why = "container vanished" if container is None else "container stopped"
                changed = await store.set_state(
                    db, row.id, "lost", why, only_from=("running", "paused")
                )
                if changed is not None:
                    report.lost_sandboxes.append(str(row.id))
                    if container is not None:
                        report.removed_containers.append(container.id)
        query = select(SandboxRow.id, SandboxRow.state).where(SandboxRow.id.in_(list(labelled)))
        states = {sandbox_id: state for sandbox_id, state in await db.execute(query)}
        await db.commit()
    for sandbox_id, labelled_container in labelled.items():
        state = states.get(sandbox_id)
        ended = state in ("deleted", "lost", "failed")
        stray = (
            state is None
            and labelled_container.id not in pooled
            and labelled_container.created is not None
            and now - labelled_container.created > ORPHAN_GRACE
        )
        if ended or stray:
            report.removed_containers.append(labelled_container.id)
    report.removed_containers = sorted(set(report.removed_containers))
    await _remove(backend, report.removed_containers)
    return report


async def container_ended(
    backend: SandboxBackend, sessions: async_sessionmaker[AsyncSession], container_id: str
) -> str | None:
    """A managed container stopped or was removed: its live sandbox (if any) is marked lost,
    as the sweep would, and the container removed. Answers the sandbox's id if it was."""
    async with sessions() as db:
        query = select(SandboxRow.id).where(
            SandboxRow.container_id == container_id, SandboxRow.state.in_(("running", "paused"))
        )
        sandbox_id = (await db.execute(query)).scalar_one_or_none()
        if sandbox_id is None:
            return None
        # Only from a live state: a sandbox being deleted right now is not lost.
        changed = await store.set_state(
            db, sandbox_id, "lost", "container stopped", only_from=("running", "paused")
        )
        await db.commit()
    if changed is None:
        return None
    await _remove(backend, [container_id])
    log.info("sandbox lost: its container stopped", extra={"sandbox_id": str(sandbox_id)})
    return str(sandbox_id)


async def _remove(backend: SandboxBackend, container_ids: Iterable[str]) -> None:
    async def one(container_id: str) -> None:
        try:
            await backend.destroy(container_id)
        except BackendError as error:
            log.warning("could not remove a container", extra={"error": str(error)})

    await asyncio.gather(*(one(container_id) for container_id in container_ids))
