"""SandboxManager: the sandbox domain behind SandboxService.

It owns the backend connection (and its availability), the warm pool, the reaper, and the
sandbox lifecycle with its access rule: viewers of a project may get, list and read files;
editors and owners create, exec, write, pause, resume and delete. Executions are started by
launcher.py, the file calls live in file_calls.py; both reach the engine through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    QuotaViolation,
    ResourceExhausted,
    Violations,
)
from server.core.hooks import AfterCommit
from server.core.ids import new_id, parse_id
from server.core.timestamps import utcnow
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow
from server.sandbox import store
from server.sandbox.access import sandbox_for
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
    SandboxBackend,
)
from server.sandbox.docker_backend import DockerBackend
from server.sandbox.engine import Engine
from server.sandbox.executions import Execution, OomCounter
from server.sandbox.failures import (
    BACKEND_UNAVAILABLE,
    backend_unavailable,
    failure,
    require_state,
    sandbox_not_found,
    sid,
)
from server.sandbox.file_calls import FileCalls
from server.sandbox.files import SandboxFiles
from server.sandbox.launcher import ExecLauncher, ExecParams, RunCodeParams
from server.sandbox.limits import LimitRequest, Limits, resolve_limits
from server.sandbox.pool import WarmPool
from server.sandbox.reaper import Reaper
from server.sandbox.reconcile import reconcile_on_start
from server.sandbox.runtimes import Runtime, Runtimes, default_limits
from server.sandbox.views import (
    FileInfo,
    FilePage,
    Lifetimes,
    RuntimeView,
    SandboxPage,
    SandboxState,
    SandboxView,
)

# Re-exported: callers know these as the manager's.
__all__ = [
    "BACKEND_UNAVAILABLE",
    "ExecParams",
    "RunCodeParams",
    "SandboxManager",
    "backend_unavailable",
    "sandbox_not_found",
]

log = logging.getLogger(__name__)

BackendFactory = Callable[[], Awaitable[SandboxBackend]]
AvailabilityListener = Callable[[bool], Awaitable[None]]

_STOP_WAIT_SECONDS = 10.0


class SandboxManager:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        backend_factory: BackendFactory | None = None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self.runtimes = Runtimes.from_settings(settings)
        self.lifetimes = Lifetimes(
            idle_ttl=timedelta(seconds=settings.sandbox_idle_ttl_seconds),
            max_lifetime=timedelta(seconds=settings.sandbox_max_lifetime_seconds),
        )
        self._default_limits = default_limits(settings)
        self._factory = backend_factory or self._connect_docker
        self._backend: SandboxBackend | None = None
        self._engine: Engine | None = None
        self._pool: WarmPool | None = None
        self._reaper: Reaper | None = None
        self._available = False
        # What listeners were last told (None: nothing yet, before start()).
        self._reported: bool | None = None
        self._listeners: list[AvailabilityListener] = []
        self._retry_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._launcher = ExecLauncher(
            settings,
            sessions,
            self.runtimes,
            self._default_limits,
            engine=self._require_engine,
            current_backend=lambda: self._backend,
            provision=self._provision,
            retire=self._retire,
            spawn=self._spawn,
        )
        self._files = FileCalls(sessions, self._require_engine)

    # --- lifecycle -----------------------------------------------------------------------

    async def _connect_docker(self) -> SandboxBackend:
        return await DockerBackend.connect(self.settings)

    @property
    def available(self) -> bool:
        return self._available

    @property
    def pool(self) -> WarmPool | None:
        return self._pool

    @property
    def reaper(self) -> Reaper | None:
        return self._reaper

    def add_availability_listener(self, listener: AvailabilityListener) -> None:
        """`listener(available)` runs now (if started) and whenever availability changes."""
        self._listeners.append(listener)
        if self._reported is not None:
            self._spawn(listener(self._available))

    async def _set_available(self, available: bool) -> None:
        self._available = available
        if available == self._reported or self._stopped:
            return
        self._reported = available
        log.log(
            logging.INFO if available else logging.WARNING,
            "sandbox backend available" if available else "sandbox backend unavailable",
        )
        for listener in self._listeners:
            try:
                await listener(available)
            except Exception:
                log.exception("sandbox availability listener failed")

    async def start(self) -> None:
        """Connects to the engine, reconciles, starts the warm pool and the reaper. Without an
        engine the server still starts: every RPC answers UNAVAILABLE until one answers."""
        if await self._connect():
            return
        self._retry_task = asyncio.create_task(self._retry_connect(), name="sandbox-connect")
        await self._set_available(False)

    async def _connect(self, quiet: bool = False) -> bool:
        try:
            backend = await self._factory()
        except BackendError as error:
            if not quiet:
                log.warning(
                    "sandboxes unavailable: no Docker engine",
                    extra={"reason": BACKEND_UNAVAILABLE, "error": str(error)},
                )
            return False
        try:
            await reconcile_on_start(backend, self._sessions, self.settings.sandbox_namespace)
        except BackendError as error:
            log.warning("sandbox reconciliation failed", extra={"error": str(error)})
            await backend.close()
            return False
        await self._bring_up(backend)
        return True

    async def _retry_connect(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sandbox_backend_retry_seconds)
            if await self._connect(quiet=True):
                return

    async def _bring_up(self, backend: SandboxBackend) -> None:
        self._backend = backend
        self._engine = Engine(
            backend,
            SandboxFiles(backend, self.settings.sandbox_max_file_bytes),
            OomCounter(backend),
        )
        self._pool = WarmPool(backend, self.runtimes, self._container_spec)
        await self._pool.start()
        self._reaper = Reaper(
            backend=backend,
            sessions=self._sessions,
            pool=self._pool,
            namespace=self.settings.sandbox_namespace,
            lifetimes=self.lifetimes,
            interval_seconds=self.settings.sandbox_reaper_interval_seconds,
            retire=self._retire,
            availability=self._set_available,
        )
        self._reaper.start()
        await self._set_available(True)

    async def stop(self) -> None:
        """Stops the pool (removing its containers) and the reaper; sandboxes keep running
        (the next start reconciles them)."""
        self._stopped = True
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        if self._reaper is not None:
            await self._reaper.stop()
        if self._pool is not None:
            await self._pool.stop()
        if self._background:
            await asyncio.wait(self._background, timeout=_STOP_WAIT_SECONDS)
        if self._backend is not None:
            await self._backend.close()
            self._backend = None
            self._engine = None
        self._available = False

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("sandbox background task failed")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _require_engine(self) -> Engine:
        if self._engine is None or not self._available:
            raise backend_unavailable()
        return self._engine

    def _require_backend(self) -> SandboxBackend:
        return self._require_engine().backend

    def _container_spec(
        self, runtime: Runtime, sandbox_id: uuid.UUID, limits: Limits, project_id: str
    ) -> ContainerSpec:
        labels = {
            LABEL_MANAGED: "true",
            LABEL_NAMESPACE: self.settings.sandbox_namespace,
            LABEL_SANDBOX_ID: str(sandbox_id),
            LABEL_PROJECT_ID: project_id,
            LABEL_RUNTIME: runtime.name,
        }
        if not project_id:
            labels[LABEL_POOL] = runtime.name
        return ContainerSpec(
            name=f"forge-sbx-{sandbox_id}", image=runtime.image, labels=labels, limits=limits
        )

    # --- views ---------------------------------------------------------------------------

    def _view(self, row: SandboxRow) -> SandboxView:
        return SandboxView.of(row, self._default_limits, self.lifetimes)

    # --- runtimes ------------------------------------------------------------------------

    def list_runtimes(self) -> list[RuntimeView]:
        self._require_backend()
        pool = self._pool
        return [
            RuntimeView(runtime, pool.ready(runtime.name) if pool else 0)
            for runtime in self.runtimes.all()
        ]

    def _runtime(self, name: str, field: str) -> Runtime:
        if not name:
            raise InvalidArgument.of([FieldViolation(field, "is required")])
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise InvalidArgument.of(
                [FieldViolation(field, f"must be one of {', '.join(self.runtimes.names())}")]
            )
        return runtime

    # --- lifecycle RPCs ------------------------------------------------------------------

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
        self._require_backend()
        row = await self._provision(
            caller, project_id, runtime, effective, ephemeral=False, started=started
        )
        return self._view(row)

    async def _provision(
        self,
        caller: Caller,
        project_id: str,
        runtime: Runtime,
        limits: Limits,
        *,
        ephemeral: bool,
        started: float,
    ) -> SandboxRow:
        """A running sandbox for the caller in the project: warm when the pool has one."""
        backend = self._require_backend()
        async with self._sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
            pid = uuid.UUID(str(parse_id(project_id)))
            if not ephemeral:
                live = await store.count_live(db, pid)
                quota = self.settings.sandbox_max_per_project
                if live >= quota:
                    raise ResourceExhausted(
                        f"the project already has {live} live sandboxes (at most {quota})",
                        "SANDBOX_QUOTA_EXCEEDED",
                        quota_violations=[
                            QuotaViolation(f"projects/{pid}", f"at most {quota} live sandboxes")
                        ],
                    )
            warm = self._pool.take(runtime, limits) if self._pool else None
            row = SandboxRow(
                id=warm.sandbox_id if warm else new_id(),
                project_id=pid,
                creator_id=caller.user_id,
                runtime=runtime.name,
                image=runtime.image,
                state="running" if warm else "creating",
                state_message="",
                container_id=warm.container_id if warm else None,
                warm=warm is not None,
                ephemeral=ephemeral,
                limits=limits.to_json(),
                last_active_time=utcnow(),
            )
            if warm:
                row.start_duration = timedelta(seconds=time.perf_counter() - started)
            db.add(row)
            try:
                await db.commit()
            except BaseException:
                if warm:
                    self._spawn(self._destroy_quietly(warm.container_id))
                raise
        if warm:
            return row
        return await self._start_cold(backend, row, runtime, limits, started)

    async def _start_cold(
        self,
        backend: SandboxBackend,
        row: SandboxRow,
        runtime: Runtime,
        limits: Limits,
        started: float,
    ) -> SandboxRow:
        spec = self._container_spec(runtime, row.id, limits, str(row.project_id))
        creating = asyncio.ensure_future(backend.create(spec))
        try:
            info = await asyncio.shield(creating)
        except asyncio.CancelledError:
            self._spawn(self._abandon_cold(creating, row.id))
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
            await self._destroy_quietly(info.id)
            raise sandbox_not_found()
        return updated

    async def _abandon_cold(
        self, creating: asyncio.Future[ContainerInfo], sandbox_id: uuid.UUID
    ) -> None:
        info: ContainerInfo | None = None
        with contextlib.suppress(Exception):
            info = await creating
        async with self._sessions() as db:
            await store.set_state(db, sandbox_id, "failed", "creation was cancelled")
            await db.commit()
        if info is not None:
            await self._destroy_quietly(info.id)

    async def _destroy_quietly(self, container_id: str) -> None:
        if self._backend is None:
            return
        try:
            await self._backend.destroy(container_id)
        except BackendError as error:
            log.warning("could not remove a container", extra={"error": str(error)})
        if self._engine is not None:
            self._engine.oom.forget(container_id)

    async def get(self, caller: Caller, sandbox_id: str) -> SandboxView:
        self._require_backend()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.VIEWER)
        return self._view(row)

    async def list_sandboxes(
        self,
        caller: Caller,
        project_id: str,
        state: SandboxState | None,
        after: tuple[str, ...] | None,
        page_size: int,
    ) -> SandboxPage:
        if not project_id:
            raise InvalidArgument.of([FieldViolation("project_id", "is required")])
        self._require_backend()
        states = (
            [state.value]
            if state is not None
            else [s.value for s in SandboxState if s is not SandboxState.DELETED]
        )
        before = _listing_key(after) if after else None
        async with self._sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.VIEWER)
            pid = uuid.UUID(str(parse_id(project_id)))
            rows = await store.list_page(db, pid, states, before, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        last = rows[-1] if more and rows else None
        return SandboxPage(
            [self._view(row) for row in rows],
            (last.create_time.isoformat(), str(last.id)) if last is not None else None,
        )

    async def pause(self, caller: Caller, sandbox_id: str) -> SandboxView:
        backend = self._require_backend()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state == "paused":
            return self._view(row)
        require_state(row, ("running",))
        if self._launcher.busy(row.id):
            raise FailedPrecondition(
                "the sandbox has executions running; cancel them or wait for them to end",
                "SANDBOX_BUSY",
                metadata=sid(row),
            )
        assert row.container_id is not None
        try:
            await backend.pause(row.container_id)
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        return await self._transition(row, "paused", "paused", ("running",))

    async def resume(self, caller: Caller, sandbox_id: str) -> SandboxView:
        backend = self._require_backend()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state == "running":
            return self._view(row)
        require_state(row, ("paused",))
        assert row.container_id is not None
        try:
            await backend.resume(row.container_id)
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
        self._require_backend()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state not in LIVE_SANDBOX_STATES:
            return
        await self._retire(row.id, row.container_id, "deleted", "deleted")

    async def _retire(
        self, sandbox_id: uuid.UUID, container_id: str | None, state: str, message: str
    ) -> None:
        """Ends a sandbox: the row first (so nothing else uses it), then its container."""
        async with self._sessions() as db:
            await store.set_state(db, sandbox_id, state, message)
            await db.commit()
        if container_id:
            await self._destroy_quietly(container_id)

    # --- project deletion --------------------------------------------------------------

    async def project_deletion_hook(
        self, db: AsyncSession, project_id: uuid.UUID
    ) -> AfterCommit | None:
        """For ProjectDeletionHooks: ends the project's sandboxes with the project."""
        rows = await store.live_in_project(db, project_id)
        for row in rows:
            await store.set_state(db, row.id, "deleted", "its project was deleted")
        containers = [row.container_id for row in rows if row.container_id]
        if not containers:
            return None

        async def remove_containers() -> None:
            await asyncio.gather(*(self._destroy_quietly(c) for c in containers))

        return remove_containers

    # --- executions and files ----------------------------------------------------------

    async def start_exec(
        self, caller: Caller, sandbox_id: str, params: ExecParams, deadline: float | None
    ) -> Execution:
        """Checks, records and starts an execution; raises before anything ran if it cannot."""
        return await self._launcher.start_exec(caller, sandbox_id, params, deadline)

    async def start_run_code(
        self, caller: Caller, project_id: str, params: RunCodeParams, deadline: float | None
    ) -> Execution:
        """Runs code in a fresh sandbox (warm when possible) that is destroyed afterwards."""
        return await self._launcher.start_run_code(caller, project_id, params, deadline)

    async def write_file(
        self, caller: Caller, sandbox_id: str, path: str, content: bytes, mode: int
    ) -> FileInfo:
        return await self._files.write(caller, sandbox_id, path, content, mode)

    async def read_file(self, caller: Caller, sandbox_id: str, path: str) -> tuple[FileInfo, bytes]:
        return await self._files.read(caller, sandbox_id, path)

    async def list_files(
        self,
        caller: Caller,
        sandbox_id: str,
        path: str,
        recursive: bool,
        after: str | None,
        page_size: int,
    ) -> FilePage:
        return await self._files.list(caller, sandbox_id, path, recursive, after, page_size)

    async def delete_file(
        self, caller: Caller, sandbox_id: str, path: str, recursive: bool
    ) -> None:
        await self._files.delete(caller, sandbox_id, path, recursive)


def _listing_key(after: tuple[str, ...]) -> tuple[datetime, uuid.UUID] | None:
    """The (create time, id) key of a page token (already checked as ours by PageTokens)."""
    try:
        created, sandbox_id = after
        return datetime.fromisoformat(created), uuid.UUID(sandbox_id)
    except ValueError:
        return None
