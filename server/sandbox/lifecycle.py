"""The life of a sandbox: create, get, list, pause, resume, delete, and ending a deleted
project's sandboxes; also which runtimes can be created.

The access rule is the project's: viewers may get and list; editors and owners create,
pause, resume and delete.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument, Violations
from server.core.hooks import AfterCommit
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.core.timestamps import utcnow
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow
from server.sandbox import pool_store, store
from server.sandbox.access import sandbox_for
from server.sandbox.backend import BackendError
from server.sandbox.engine import EngineProvider
from server.sandbox.executions import ExecutionSlots
from server.sandbox.failures import failure, require_state, sandbox_not_found, sid
from server.sandbox.limits import LimitRequest, Limits, resolve_limits
from server.sandbox.provision import Provisioner
from server.sandbox.retire import Retirer
from server.sandbox.runtimes import Runtime, Runtimes
from server.sandbox.views import Lifetimes, RuntimeView, SandboxState, SandboxView


class SandboxLifecycle:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        engine: EngineProvider,
        *,
        runtimes: Runtimes,
        default_limits: Limits,
        lifetimes: Lifetimes,
        provisioner: Provisioner,
        retirer: Retirer,
        slots: ExecutionSlots,
        owner: str,
    ) -> None:
        """`owner` names this process in executions' leases: its own running executions are
        `slots`, other processes' are found in the database."""
        self._sessions = sessions
        self._owner = owner
        self._engine = engine
        self._runtimes = runtimes
        self._default_limits = default_limits
        self.lifetimes = lifetimes
        self._provisioner = provisioner
        self._retirer = retirer
        self._slots = slots

    def _view(self, row: SandboxRow) -> SandboxView:
        return SandboxView.of(row, self._default_limits, self.lifetimes)

    # --- runtimes ------------------------------------------------------------------------

    async def list_runtimes(self, page: Page) -> Listed[RuntimeView]:
        """By name, with how many warm containers each has ready on the answering hosts."""
        self._engine.require()
        hosts = [engine.host_id for engine in self._engine.answering()]
        async with self._sessions() as db:
            ready = await pool_store.ready_by_runtime(db, hosts)
        views = [
            RuntimeView(runtime, ready.get(runtime.name, 0)) for runtime in self._runtimes.all()
        ]
        if page.after:
            views = [view for view in views if view.runtime.name > page.after[0]]
        return listed(views, page, lambda view: [view.runtime.name])

    def _runtime(self, name: str, field: str) -> Runtime:
        if not name:
            raise InvalidArgument.of([FieldViolation(field, "is required")])
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise InvalidArgument.of(
                [FieldViolation(field, f"must be one of {', '.join(self._runtimes.names())}")]
            )
        return runtime

    # --- sandboxes -----------------------------------------------------------------------

    async def create(
        self, caller: Caller, project_id: str, runtime_name: str, limits: LimitRequest
    ) -> SandboxView:
        started = time.perf_counter()
        violations = Violations()
        violations.check(bool(project_id), "project_id", "is required")
        violations.raise_if_any()
        runtime = self._runtime(runtime_name, "sandbox.runtime")
        effective = resolve_limits(
            limits, runtime.default_limits, runtime.max_limits, "sandbox.limits"
        )
        row = await self._provisioner.provision(
            caller, project_id, runtime, effective, ephemeral=False, started=started
        )
        return self._view(row)

    async def get(self, caller: Caller, sandbox_id: str) -> SandboxView:
        self._engine.require()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.VIEWER)
        return self._view(row)

    async def list(
        self, caller: Caller, project_id: str, state: SandboxState | None, page: Page
    ) -> Listed[SandboxView]:
        """Newest first; every state but DELETED unless `state` asks for one."""
        if not project_id:
            raise InvalidArgument.of([FieldViolation("project_id", "is required")])
        self._engine.require()
        states = (
            [state.value]
            if state is not None
            else [s.value for s in SandboxState if s is not SandboxState.DELETED]
        )
        before = _listing_key(page.after) if page.after else None
        async with self._sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.VIEWER)
            pid = uuid.UUID(str(parse_id(project_id)))
            rows = await store.list_page(db, pid, states, before, page.size + 1)
        found = listed(rows, page, lambda row: [row.create_time.isoformat(), str(row.id)])
        return Listed([self._view(row) for row in found.items], found.next_key)

    async def pause(self, caller: Caller, sandbox_id: str) -> SandboxView:
        self._engine.require()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
            # Those another server process relays count too.
            elsewhere = await store.has_running_executions(db, row.id, other_than=self._owner)
        if row.state == "paused":
            return self._view(row)
        require_state(row, ("running",))
        if elsewhere or self._slots.busy(row.id):
            raise FailedPrecondition(
                "the sandbox has executions running; cancel them or wait for them to end",
                "SANDBOX_BUSY",
                metadata=sid(row),
            )
        assert row.container_id is not None
        try:
            await self._engine.for_row(row).backend.pause(row.container_id)
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        return await self._transition(row, "paused", "paused", ("running",))

    async def resume(self, caller: Caller, sandbox_id: str) -> SandboxView:
        self._engine.require()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state == "running":
            return self._view(row)
        require_state(row, ("paused",))
        assert row.container_id is not None
        try:
            await self._engine.for_row(row).backend.resume(row.container_id)
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        return await self._transition(row, "running", "resumed", ("paused",))

    async def _transition(
        self, row: SandboxRow, state: str, message: str, only_from: tuple[str, ...]
    ) -> SandboxView:
        async with self._sessions() as db:
            updated = await store.set_state(
                db, row.id, state, message, only_from=only_from, last_active_time=utcnow()
            )
            await db.commit()
            if updated is None:
                current = await store.get(db, row.id)
                if current is None:
                    raise sandbox_not_found()
                return self._view(current)
        return self._view(updated)

    async def delete(self, caller: Caller, sandbox_id: str) -> None:
        self._engine.require()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state not in LIVE_SANDBOX_STATES:
            return
        await self._retirer.retire(row.id, row.host_id, row.container_id, "deleted", "deleted")

    async def project_deletion_hook(
        self, db: AsyncSession, project_id: uuid.UUID
    ) -> AfterCommit | None:
        """For ProjectDeletionHooks: ends the project's sandboxes with the project."""
        rows = await store.live_in_project(db, project_id)
        for row in rows:
            await store.set_state(db, row.id, "deleted", "its project was deleted")
        containers = [(row.host_id, row.container_id) for row in rows if row.container_id]
        if not containers:
            return None

        async def remove_containers() -> None:
            await asyncio.gather(*(self._retirer.destroy(h, c) for h, c in containers))

        return remove_containers


def _listing_key(after: Sequence[str]) -> tuple[datetime, uuid.UUID] | None:
    """The (create time, id) key of a page token (already checked as ours by PageTokens)."""
    try:
        created, sandbox_id = after
        return datetime.fromisoformat(created), uuid.UUID(sandbox_id)
    except ValueError:
        return None
