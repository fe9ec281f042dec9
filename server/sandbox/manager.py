"""SandboxManager: the sandbox domain behind SandboxService.

It owns the backend connection (and its availability), the warm pool, the reaper, and every
sandbox operation with its access rule: viewers of a project may get, list and read files;
editors and owners create, exec, write, pause, resume and delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.context import Caller
from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    ForgeError,
    InvalidArgument,
    NotFound,
    QuotaViolation,
    ResourceExhausted,
    Unavailable,
    Violations,
)
from server.core.ids import new_id, parse_id
from server.core.timestamps import utcnow
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow
from server.projects.access import ProjectRole, require_project_role
from server.projects.cleanup import AfterCommit
from server.sandbox import store
from server.sandbox.backend import (
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_POOL,
    LABEL_PROJECT_ID,
    LABEL_RUNTIME,
    LABEL_SANDBOX_ID,
    WORKSPACE,
    BackendError,
    BackendUnavailable,
    ContainerGone,
    ContainerInfo,
    ContainerNotRunning,
    ContainerPaused,
    ContainerSpec,
    ExecProcess,
    ExecSpec,
    NewFile,
    NoSpace,
    ResourceLimit,
    SandboxBackend,
)
from server.sandbox.docker_backend import DockerBackend
from server.sandbox.executions import ExecTimes, Execution, OomCounter
from server.sandbox.files import SandboxFiles
from server.sandbox.limits import LimitRequest, Limits, resolve_limits
from server.sandbox.paths import confine
from server.sandbox.pool import WarmPool
from server.sandbox.reaper import Reaper
from server.sandbox.reconcile import reconcile_on_start
from server.sandbox.runtimes import Runtime, Runtimes, default_limits
from server.sandbox.validation import check_env, check_timeout
from server.sandbox.views import (
    FileInfo,
    FilePage,
    Lifetimes,
    RuntimeView,
    SandboxPage,
    SandboxState,
    SandboxView,
)

log = logging.getLogger(__name__)

BackendFactory = Callable[[], Awaitable[SandboxBackend]]
AvailabilityListener = Callable[[bool], Awaitable[None]]

BACKEND_UNAVAILABLE = "SANDBOX_BACKEND_UNAVAILABLE"
_STOP_WAIT_SECONDS = 10.0


def backend_unavailable() -> Unavailable:
    return Unavailable(
        "the sandbox backend (Docker engine) is unavailable",
        BACKEND_UNAVAILABLE,
        retry_after=timedelta(seconds=30),
    )


def sandbox_not_found() -> NotFound:
    return NotFound("sandbox not found", "SANDBOX_NOT_FOUND")


@dataclass(frozen=True)
class ExecParams:
    argv: list[str]
    shell: str
    stdin: bytes
    env: Mapping[str, str]
    timeout: timedelta | None
    idle_timeout: timedelta | None
    working_dir: str


@dataclass(frozen=True)
class RunCodeParams:
    language: str
    code: str
    stdin: bytes
    env: Mapping[str, str]
    timeout: timedelta | None


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
        self._pool: WarmPool | None = None
        self._reaper: Reaper | None = None
        self._files: SandboxFiles | None = None
        self._oom: OomCounter | None = None
        self._available = False
        # What listeners were last told (None: nothing yet, before start()).
        self._reported: bool | None = None
        self._listeners: list[AvailabilityListener] = []
        self._retry_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._executing: dict[uuid.UUID, int] = {}
        self._exec_slots = settings.sandbox_max_concurrent_execs
        self._stopped = False

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
        self._files = SandboxFiles(backend, self.settings.sandbox_max_file_bytes)
        self._oom = OomCounter(backend)
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

    def _require_backend(self) -> SandboxBackend:
        if self._backend is None or not self._available:
            raise backend_unavailable()
        return self._backend

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

    # --- errors --------------------------------------------------------------------------

    async def _failure(self, error: BackendError, row: SandboxRow | None = None) -> ForgeError:
        """The error a client sees for a backend failure; a vanished container marks its
        sandbox lost."""
        if isinstance(error, BackendUnavailable):
            return backend_unavailable()
        if isinstance(error, ContainerGone | ContainerNotRunning):
            if row is not None:
                async with self._sessions() as db:
                    why = (
                        "container vanished"
                        if isinstance(error, ContainerGone)
                        else ("container stopped")
                    )
                    await store.set_state(db, row.id, "lost", why)
                    await db.commit()
            return FailedPrecondition(
                "the sandbox's container is gone", "SANDBOX_LOST", metadata=_sid(row)
            )
        if isinstance(error, ContainerPaused):
            return FailedPrecondition("the sandbox is paused", "SANDBOX_PAUSED", metadata=_sid(row))
        if isinstance(error, NoSpace):
            return ResourceExhausted(
                f"no space left in {WORKSPACE}",
                "SANDBOX_DISK_FULL",
                quota_violations=[
                    QuotaViolation("sandbox.limits.disk_bytes", "the workspace is full")
                ],
            )
        if isinstance(error, ResourceLimit):
            return ResourceExhausted(
                "the sandbox has no process slot left",
                "SANDBOX_PIDS_EXHAUSTED",
                quota_violations=[QuotaViolation("sandbox.limits.pids", "process limit reached")],
            )
        log.warning("sandbox backend error", extra={"error": str(error)})
        return Unavailable("the sandbox backend failed; try again", "SANDBOX_BACKEND_ERROR")

    # --- access --------------------------------------------------------------------------

    async def _sandbox_for(
        self, db: AsyncSession, caller: Caller, sandbox_id: str, needed: ProjectRole
    ) -> SandboxRow:
        if not sandbox_id:
            raise InvalidArgument.of([FieldViolation("sandbox_id", "is required")])
        sid = parse_id(sandbox_id)
        row = await store.get(db, sid) if sid is not None else None
        if row is None:
            raise sandbox_not_found()
        try:
            await require_project_role(db, caller, row.project_id, needed)
        except NotFound as error:
            raise sandbox_not_found() from error
        return row

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
                creator_id=uuid.UUID(caller.user_id),
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
            raise await self._failure(error) from error
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
        if self._oom is not None:
            self._oom.forget(container_id)

    async def get(self, caller: Caller, sandbox_id: str) -> SandboxView:
        self._require_backend()
        async with self._sessions() as db:
            row = await self._sandbox_for(db, caller, sandbox_id, ProjectRole.VIEWER)
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
            row = await self._sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state == "paused":
            return self._view(row)
        self._require_state(row, ("running",))
        if self._executing.get(row.id):
            raise FailedPrecondition(
                "the sandbox has executions running; cancel them or wait for them to end",
                "SANDBOX_BUSY",
                metadata=_sid(row),
            )
        assert row.container_id is not None
        try:
            await backend.pause(row.container_id)
        except BackendError as error:
            raise await self._failure(error, row) from error
        return await self._transition(row, "paused", "paused", ("running",))

    async def resume(self, caller: Caller, sandbox_id: str) -> SandboxView:
        backend = self._require_backend()
        async with self._sessions() as db:
            row = await self._sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
        if row.state == "running":
            return self._view(row)
        self._require_state(row, ("paused",))
        assert row.container_id is not None
        try:
            await backend.resume(row.container_id)
        except BackendError as error:
            raise await self._failure(error, row) from error
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

    def _require_state(self, row: SandboxRow, allowed: tuple[str, ...]) -> None:
        if row.state in allowed:
            return
        if row.state == "paused":
            raise FailedPrecondition(
                "the sandbox is paused; resume it first", "SANDBOX_PAUSED", metadata=_sid(row)
            )
        raise FailedPrecondition(
            f"the sandbox is {row.state}"
            + (f" ({row.state_message})" if row.state_message else ""),
            "SANDBOX_NOT_RUNNING",
            metadata={**_sid(row), "state": row.state},
        )

    async def delete(self, caller: Caller, sandbox_id: str) -> None:
        self._require_backend()
        async with self._sessions() as db:
            row = await self._sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
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

    # --- executions ----------------------------------------------------------------------

    async def start_exec(
        self, caller: Caller, sandbox_id: str, params: ExecParams, deadline: float | None
    ) -> Execution:
        """Checks, records and starts an execution; raises before anything ran if it cannot."""
        violations = Violations()
        if bool(params.argv) == bool(params.shell):
            violations.add("argv", "exactly one of argv and shell must be set")
        if params.argv:
            if not params.argv[0]:
                violations.add("argv[0]", "must name a program")
            for index, arg in enumerate(params.argv):
                if "\x00" in arg:
                    violations.add(f"argv[{index}]", "must not contain NUL characters")
        if "\x00" in params.shell:
            violations.add("shell", "must not contain NUL characters")
        if len(params.stdin) > self.settings.sandbox_max_stdin_bytes:
            violations.add(
                "stdin", f"must be at most {self.settings.sandbox_max_stdin_bytes} bytes"
            )
        check_env(params.env, "env", violations)
        backend = self._require_backend()
        async with self._sessions() as db:
            row = await self._sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
            runtime = self.runtimes.get(row.runtime)
            maximum = runtime.max_limits if runtime else self._default_limits
            check_timeout(params.timeout, "timeout", maximum.exec_timeout, violations)
            check_timeout(params.idle_timeout, "idle_timeout", maximum.idle_timeout, violations)
            working_dir = WORKSPACE
            if params.working_dir:
                try:
                    working_dir = confine(params.working_dir, "working_dir", allow_root=True)
                except InvalidArgument as error:
                    for violation in error.violations:
                        violations.add(violation.field, violation.description)
            violations.raise_if_any()
            self._require_state(row, ("running",))
            if working_dir != WORKSPACE:
                await self._require_directory(row, working_dir)
            argv = params.argv or ["/bin/sh", "-c", params.shell]
            command: dict[str, object] = (
                {"argv": list(params.argv)} if params.argv else {"shell": params.shell}
            )
            return await self._launch(
                db,
                backend,
                caller,
                row,
                argv=argv,
                command=command,
                params=params,
                working_dir=working_dir,
                deadline=deadline,
            )

    async def _require_directory(self, row: SandboxRow, directory: str) -> None:
        assert self._files is not None
        assert row.container_id is not None
        try:
            resolved = await self._files.resolve(row.container_id, directory, "working_dir")
        except BackendError as error:
            raise await self._failure(error, row) from error
        if resolved.stat is None or not resolved.stat.is_dir:
            raise InvalidArgument.of(
                [FieldViolation("working_dir", f"{directory} is not an existing directory")]
            )

    async def _launch(
        self,
        db: AsyncSession,
        backend: SandboxBackend,
        caller: Caller,
        row: SandboxRow,
        *,
        argv: list[str],
        command: dict[str, object],
        params: ExecParams,
        working_dir: str,
        deadline: float | None,
        on_end: Callable[[], Awaitable[None]] | None = None,
    ) -> Execution:
        if sum(self._executing.values()) >= self._exec_slots:
            raise ResourceExhausted(
                "too many executions are running on this server; try again shortly",
                "SANDBOX_EXEC_LIMIT",
                retry_after=timedelta(seconds=1),
            )
        limits = Limits.from_json(row.limits, self._default_limits)
        assert row.container_id is not None
        assert self._oom is not None
        execution_id = new_id()
        start_time = utcnow()
        spec = ExecSpec(
            argv=argv,
            env=dict(params.env),
            working_dir=working_dir,
            stdin=params.stdin or None,
            output_limit_bytes=limits.output_limit_bytes,
        )
        self._executing[row.id] = self._executing.get(row.id, 0) + 1
        # Start the command and record it at the same time.
        starting = asyncio.ensure_future(backend.exec(row.container_id, spec))
        try:
            await store.start_execution(
                db,
                execution_id=execution_id,
                sandbox_id=row.id,
                user_id=uuid.UUID(caller.user_id),
                command=command,
                working_dir=working_dir,
                start_time=start_time,
            )
            await db.commit()
        except BaseException:
            self._exec_done(row.id)
            self._spawn(self._discard(row.container_id, starting, execution_id, row.id))
            raise
        try:
            process = await starting
        except asyncio.CancelledError:
            self._exec_done(row.id)
            self._spawn(self._discard(row.container_id, starting, execution_id, row.id))
            raise
        except BackendError as error:
            self._exec_done(row.id)
            await store.finish_execution(
                db, execution_id, row.id, end_time=utcnow(), reason="killed", exit_code=None
            )
            await db.commit()
            raise await self._failure(error, row) from error

        async def ended() -> None:
            self._exec_done(row.id)
            if on_end is not None:
                await on_end()

        return Execution(
            backend=backend,
            sessions=self._sessions,
            oom=self._oom,
            process=process,
            container_id=row.container_id,
            sandbox_id=row.id,
            execution_id=execution_id,
            start_time=start_time,
            times=ExecTimes(
                timeout=params.timeout or limits.exec_timeout,
                idle_timeout=params.idle_timeout or limits.idle_timeout,
                deadline=deadline,
            ),
            on_end=ended,
            spawn=self._spawn,
        )

    async def _discard(
        self,
        container_id: str,
        starting: asyncio.Future[ExecProcess],
        execution_id: uuid.UUID,
        sandbox_id: uuid.UUID,
    ) -> None:
        """Stops a command whose caller went away (or whose record failed) as it started."""
        try:
            process = await starting
        except BackendError:
            process = None
        if process is not None:
            try:
                group = await asyncio.wait_for(asyncio.shield(process.process_group), 5.0)
                if group is not None and self._backend is not None:
                    await self._backend.kill_process_group(container_id, group)
            finally:
                await process.close()
        async with self._sessions() as db:
            await store.finish_execution(
                db, execution_id, sandbox_id, end_time=utcnow(), reason="cancelled"
            )
            await db.commit()

    def _exec_done(self, sandbox_id: uuid.UUID) -> None:
        left = self._executing.get(sandbox_id, 0) - 1
        if left > 0:
            self._executing[sandbox_id] = left
        else:
            self._executing.pop(sandbox_id, None)

    async def start_run_code(
        self, caller: Caller, project_id: str, params: RunCodeParams, deadline: float | None
    ) -> Execution:
        """Runs code in a fresh sandbox (warm when possible) that is destroyed afterwards."""
        started = time.perf_counter()
        violations = Violations()
        violations.check(bool(project_id), "project_id", "is required")
        runtime = self.runtimes.for_language(params.language) if params.language else None
        if not params.language:
            violations.add("language", "is required")
        elif runtime is None:
            violations.add("language", f"must be one of {', '.join(self.runtimes.languages())}")
        code = params.code.encode()
        if not code:
            violations.add("code", "is required")
        elif len(code) > self.settings.sandbox_max_code_bytes:
            violations.add("code", f"must be at most {self.settings.sandbox_max_code_bytes} bytes")
        if len(params.stdin) > self.settings.sandbox_max_stdin_bytes:
            violations.add(
                "stdin", f"must be at most {self.settings.sandbox_max_stdin_bytes} bytes"
            )
        check_env(params.env, "env", violations)
        if runtime is not None:
            check_timeout(params.timeout, "timeout", runtime.max_limits.exec_timeout, violations)
        violations.raise_if_any()
        assert runtime is not None
        backend = self._require_backend()
        row = await self._provision(
            caller, project_id, runtime, runtime.default_limits, ephemeral=True, started=started
        )
        assert row.container_id is not None
        container_id = row.container_id

        async def finished() -> None:
            self._spawn(self._retire(row.id, container_id, "deleted", "RunCode finished"))

        try:
            await backend.write_file(
                container_id, WORKSPACE, runtime.source_file, NewFile(code, 0o644)
            )
            async with self._sessions() as db:
                return await self._launch(
                    db,
                    backend,
                    caller,
                    row,
                    argv=list(runtime.run_argv),
                    command={"language": params.language, "run_code": True},
                    params=ExecParams(
                        argv=list(runtime.run_argv),
                        shell="",
                        stdin=params.stdin,
                        env=params.env,
                        timeout=params.timeout,
                        idle_timeout=None,
                        working_dir=WORKSPACE,
                    ),
                    working_dir=WORKSPACE,
                    deadline=deadline,
                    on_end=finished,
                )
        except BaseException as error:
            self._spawn(self._retire(row.id, container_id, "deleted", "RunCode could not start"))
            if isinstance(error, BackendError):
                raise await self._failure(error, row) from error
            raise

    # --- files ---------------------------------------------------------------------------

    async def _file_target(
        self, caller: Caller, sandbox_id: str, needed: ProjectRole
    ) -> tuple[SandboxRow, SandboxFiles]:
        self._require_backend()
        async with self._sessions() as db:
            row = await self._sandbox_for(db, caller, sandbox_id, needed)
        self._require_state(row, ("running", "paused"))
        assert self._files is not None
        assert row.container_id is not None
        return row, self._files

    async def _touch(self, row: SandboxRow) -> None:
        async with self._sessions() as db:
            await store.touch(db, row.id, utcnow())
            await db.commit()

    async def write_file(
        self, caller: Caller, sandbox_id: str, path: str, content: bytes, mode: int
    ) -> FileInfo:
        violations = Violations()
        violations.check(bool(path), "path", "is required")
        violations.check(0 <= mode <= 0o7777, "mode", "must be Unix permission bits (0 to 07777)")
        violations.raise_if_any()
        confined = confine(path, "path")
        row, files = await self._file_target(caller, sandbox_id, ProjectRole.EDITOR)
        assert row.container_id is not None
        try:
            info = await files.write(row.container_id, confined, content, mode, "path")
        except BackendError as error:
            raise await self._failure(error, row) from error
        await self._touch(row)
        return info

    async def read_file(self, caller: Caller, sandbox_id: str, path: str) -> tuple[FileInfo, bytes]:
        if not path:
            raise InvalidArgument.of([FieldViolation("path", "is required")])
        confined = confine(path, "path")
        row, files = await self._file_target(caller, sandbox_id, ProjectRole.VIEWER)
        assert row.container_id is not None
        try:
            return await files.read(row.container_id, confined, "path")
        except BackendError as error:
            raise await self._failure(error, row) from error

    async def list_files(
        self,
        caller: Caller,
        sandbox_id: str,
        path: str,
        recursive: bool,
        after: str | None,
        page_size: int,
    ) -> FilePage:
        confined = confine(path, "path", allow_root=True)
        row, files = await self._file_target(caller, sandbox_id, ProjectRole.VIEWER)
        assert row.container_id is not None
        try:
            entries = await files.list(row.container_id, confined, recursive, "path")
        except BackendError as error:
            raise await self._failure(error, row) from error
        if after is not None:
            entries = [entry for entry in entries if entry.path > after]
        page = entries[:page_size]
        more = len(entries) > page_size
        return FilePage(page, page[-1].path if more and page else None)

    async def delete_file(
        self, caller: Caller, sandbox_id: str, path: str, recursive: bool
    ) -> None:
        if not path:
            raise InvalidArgument.of([FieldViolation("path", "is required")])
        confined = confine(path, "path", allow_root=True)
        row, files = await self._file_target(caller, sandbox_id, ProjectRole.EDITOR)
        self._require_state(row, ("running",))
        assert row.container_id is not None
        try:
            await files.delete(row.container_id, confined, recursive, "path")
        except BackendError as error:
            raise await self._failure(error, row) from error
        await self._touch(row)


def _sid(row: SandboxRow | None) -> dict[str, str]:
    return {"sandbox_id": str(row.id)} if row is not None else {}


def _listing_key(after: tuple[str, ...]) -> tuple[datetime, uuid.UUID] | None:
    """The (create time, id) key of a page token (already checked as ours by PageTokens)."""
    try:
        created, sandbox_id = after
        return datetime.fromisoformat(created), uuid.UUID(sandbox_id)
    except ValueError:
        return None
