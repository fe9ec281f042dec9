"""Provisioning: a running sandbox for a caller in a project, from the warm pool when it has
one that fits, otherwise started cold. Used by CreateSandbox and by RunCode (ephemeral)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import QuotaViolation, ResourceExhausted
from server.core.ids import new_id, parse_id
from server.core.limits import DefaultLimits, LimitsPort, quota_exceeded
from server.core.tasks import TaskSupervisor
from server.core.timestamps import utcnow
from server.db.sandbox_models import SandboxRow
from server.sandbox import pool_store, store
from server.sandbox.backend import (
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_POOL,
    LABEL_PROJECT_ID,
    LABEL_RUNTIME,
    LABEL_SANDBOX_ID,
    BackendError,
    ContainerInfo,
    ContainerSpec,
)
from server.sandbox.engine import Engine, EngineProvider
from server.sandbox.failures import failure, sandbox_not_found
from server.sandbox.limits import Limits
from server.sandbox.placement import place
from server.sandbox.pool_store import WarmContainer
from server.sandbox.retire import Retirer
from server.sandbox.runtimes import Runtime


def container_spec(
    namespace: str, runtime: Runtime, sandbox_id: uuid.UUID, limits: Limits, project_id: str
) -> ContainerSpec:
    """The container of a sandbox; with no project, a warm pool container."""
    labels = {
        LABEL_MANAGED: "true",
        LABEL_NAMESPACE: namespace,
        LABEL_SANDBOX_ID: str(sandbox_id),
        LABEL_PROJECT_ID: project_id,
        LABEL_RUNTIME: runtime.name,
    }
    if not project_id:
        labels[LABEL_POOL] = runtime.name
    return ContainerSpec(
        name=f"forge-sbx-{sandbox_id}", image=runtime.image, labels=labels, limits=limits
    )


async def _check_user_share(db: AsyncSession, user_id: uuid.UUID, allowed: int) -> None:
    """The user's live sandboxes across projects stay within their share (held until the
    new sandbox's row commits)."""
    await store.lock_user_sandboxes(db, user_id)
    live = await store.count_live_of_user(db, user_id)
    if live >= allowed:
        raise quota_exceeded(
            limit="max_sandboxes",
            user_id=user_id,
            allowed=allowed,
            used=live,
            reason="USER_SANDBOX_LIMIT_REACHED",
            message=f"you already have {live} live sandboxes across your projects (at most "
            f"{allowed}); delete one first",
            what="live sandboxes",
        )


class Provisioner:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        engine: EngineProvider,
        retirer: Retirer,
        tasks: TaskSupervisor,
        shares: LimitsPort | None = None,
    ) -> None:
        self._settings = settings
        self._shares = shares or DefaultLimits(settings)
        self._sessions = sessions
        self._engine = engine
        self._retirer = retirer
        self._tasks = tasks

    async def provision(
        self,
        caller: Caller,
        project_id: str,
        runtime: Runtime,
        limits: Limits,
        *,
        ephemeral: bool,
        started: float,
    ) -> SandboxRow:
        """A running sandbox for the caller (an editor) in the project; an ephemeral one
        (RunCode's) does not count against the project's quota. `started` is when the
        request began (perf_counter), for the sandbox's start duration."""
        self._engine.require()
        allowed = 0 if ephemeral else (await self._shares.limits_of(caller.user_id)).max_sandboxes
        async with self._sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
            pid = uuid.UUID(str(parse_id(project_id)))
            if not ephemeral:
                await _check_user_share(db, caller.user_id, allowed)
                live = await store.count_live(db, pid)
                quota = self._settings.sandbox_max_per_project
                if live >= quota:
                    raise ResourceExhausted(
                        f"the project already has {live} live sandboxes (at most {quota})",
                        "SANDBOX_QUOTA_EXCEEDED",
                        quota_violations=[
                            QuotaViolation(f"projects/{pid}", f"at most {quota} live sandboxes")
                        ],
                    )
            engine = await place(db, self._engine.answering(), limits)
            warm = await self._claim_warm(db, engine, runtime, limits)
            row = SandboxRow(
                id=warm.sandbox_id if warm else new_id(),
                project_id=pid,
                creator_id=caller.user_id,
                runtime=runtime.name,
                image=runtime.image,
                state="running" if warm else "creating",
                state_message="",
                container_id=warm.container_id if warm else None,
                host_id=engine.host_id,
                warm=warm is not None,
                ephemeral=ephemeral,
                limits=limits.to_json(),
                last_active_time=utcnow(),
            )
            if warm:
                row.start_duration = timedelta(seconds=time.perf_counter() - started)
            db.add(row)
            # A failed commit undoes the claim too: the warm container stays in the pool.
            await db.commit()
        if warm:
            engine.pool.claimed(runtime.name)
            return row
        return await self._start_cold(engine, row, runtime, limits, started)

    async def _claim_warm(
        self, db: AsyncSession, engine: Engine, runtime: Runtime, limits: Limits
    ) -> WarmContainer | None:
        if limits.container_key() != runtime.default_limits.container_key():
            return None
        return await pool_store.claim(db, engine.host_id, runtime.name, runtime.image, limits)

    async def _start_cold(
        self,
        engine: Engine,
        row: SandboxRow,
        runtime: Runtime,
        limits: Limits,
        started: float,
    ) -> SandboxRow:
        spec = container_spec(
            self._settings.sandbox_namespace, runtime, row.id, limits, str(row.project_id)
        )
        creating = asyncio.ensure_future(engine.backend.create(spec))
        try:
            info = await asyncio.shield(creating)
        except asyncio.CancelledError:
            self._tasks.spawn(
                self._abandon_cold(creating, row.id, engine.host_id), name="abandon-create"
            )
            raise
        except BackendError as error:
            async with self._sessions() as db:
                await store.set_state(db, row.id, "failed", "the container could not be started")
                await db.commit()
            raise await failure(self._sessions, error) from error
        async with self._sessions() as db:
            updated = await store.set_state(
                db,
                row.id,
                "running",
                "",
                only_from=("creating",),
                container_id=info.id,
                start_duration=timedelta(seconds=time.perf_counter() - started),
            )
            await db.commit()
        if updated is None:  # deleted (e.g. with its project) while starting
            await self._retirer.destroy(engine.host_id, info.id)
            raise sandbox_not_found()
        return updated

    async def _abandon_cold(
        self, creating: asyncio.Future[ContainerInfo], sandbox_id: uuid.UUID, host_id: str
    ) -> None:
        """The caller went away while its container was being created: the sandbox fails,
        and the container is removed once it exists."""
        info: ContainerInfo | None = None
        with contextlib.suppress(Exception):
            info = await creating
        async with self._sessions() as db:
            await store.set_state(db, sandbox_id, "failed", "creation was cancelled")
            await db.commit()
        if info is not None:
            await self._retirer.destroy(host_id, info.id)
