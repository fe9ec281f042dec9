"""Starting executions: Exec in a sandbox, and RunCode in a fresh one that ends with it.

Each is checked, recorded and started here; `executions.Execution` then relays it. The
number of executions streaming at once per server is capped (`ExecutionSlots`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.access import ProjectRole
from server.core.cancels import Cancels
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, Violations
from server.core.ids import new_id, parse_id
from server.core.tasks import TaskSupervisor
from server.core.timestamps import utcnow
from server.db.sandbox_models import SandboxRow
from server.sandbox import store
from server.sandbox.access import sandbox_for
from server.sandbox.backend import WORKSPACE, BackendError, ExecProcess, ExecSpec, NewFile
from server.sandbox.engine import Engine, EngineProvider
from server.sandbox.exec_shares import ExecShare, ExecShares
from server.sandbox.executions import ExecTimes, Execution, ExecutionSlots
from server.sandbox.failures import failure, require_state
from server.sandbox.leftovers import MARKER, kill_leftovers
from server.sandbox.limits import Limits
from server.sandbox.paths import confine
from server.sandbox.provision import Provisioner
from server.sandbox.retire import Retirer
from server.sandbox.runtimes import Runtimes
from server.sandbox.validation import check_env, check_timeout

# RunCode sources up to this size travel in the command itself, which writes them and then
# becomes the interpreter: Docker's archive API (put) takes tens of milliseconds (the engine
# re-executes itself to unpack into the container), longer than the rest of a hello-world
# RunCode together. One argument may hold up to 128 KiB (the kernel's MAX_ARG_STRLEN).
INLINE_SOURCE_BYTES = 64 * 1024
_WRITE_AND_RUN = 'printf "%s" "$1" > "$2" && shift 2 && exec "$@"'


@dataclass(frozen=True)
class ExecParams:
    argv: list[str]
    shell: str
    stdin: bytes
    env: Mapping[str, str]
    timeout: timedelta | None
    idle_timeout: timedelta | None
    working_dir: str
    # Whether what the command leaves behind may outlive the execution.
    background: bool = False


@dataclass(frozen=True)
class RunCodeParams:
    language: str
    code: str
    stdin: bytes
    env: Mapping[str, str]
    timeout: timedelta | None


class ExecLauncher:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        runtimes: Runtimes,
        default_limits: Limits,
        *,
        engine: EngineProvider,
        provisioner: Provisioner,
        retirer: Retirer,
        slots: ExecutionSlots,
        exec_shares: ExecShares,
        tasks: TaskSupervisor,
        owner: str,
        cancels: Cancels | None = None,
    ) -> None:
        """`owner` names this process in executions' leases (leases.py); `cancels` brings
        CancelExecution's requests to the executions relayed here (cancel.py)."""
        self._settings = settings
        self._cancels = cancels
        self._owner = owner
        self._sessions = sessions
        self._runtimes = runtimes
        self._default_limits = default_limits
        self._engine = engine
        self._provisioner = provisioner
        self._retirer = retirer
        self._slots = slots
        self._exec_shares = exec_shares
        self._tasks = tasks

    async def start_exec(
        self, caller: Caller, sandbox_id: str, params: ExecParams, deadline: float | None
    ) -> Execution:
        """Checks, records and starts an execution; raises before anything ran if it cannot."""
        settings = self._settings
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
        if len(params.stdin) > settings.sandbox_max_stdin_bytes:
            violations.add("stdin", f"must be at most {settings.sandbox_max_stdin_bytes} bytes")
        check_env(params.env, "env", violations)
        self._engine.require()
        async with self._sessions() as db:
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
            runtime = self._runtimes.get(row.runtime)
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
            require_state(row, ("running",))
            engine = self._engine.for_row(row)
            if working_dir != WORKSPACE:
                await self._require_directory(engine, row, working_dir)
            argv = params.argv or ["/bin/sh", "-c", params.shell]
            command: dict[str, object] = (
                {"argv": list(params.argv)} if params.argv else {"shell": params.shell}
            )
            return await self._launch(
                db,
                engine,
                caller,
                row,
                argv=argv,
                command=command,
                params=params,
                working_dir=working_dir,
                deadline=deadline,
            )

    async def _require_directory(self, engine: Engine, row: SandboxRow, directory: str) -> None:
        assert row.container_id is not None
        try:
            is_directory = await engine.files.is_directory(
                row.container_id, directory, "working_dir"
            )
        except BackendError as error:
            raise await failure(self._sessions, error, row) from error
        if not is_directory:
            raise InvalidArgument.of(
                [FieldViolation("working_dir", f"{directory} is not an existing directory")]
            )

    async def _launch(
        self,
        db: AsyncSession,
        engine: Engine,
        caller: Caller,
        row: SandboxRow,
        *,
        argv: list[str],
        command: dict[str, object],
        params: ExecParams,
        working_dir: str,
        deadline: float | None,
        on_end: Callable[[], Awaitable[None]] | None = None,
        share: ExecShare | None = None,
    ) -> Execution:
        """Starts the command; `share` is the caller's place in the fair shares, if taken
        already (RunCode takes it before it starts a sandbox)."""
        backend = engine.backend
        limits = Limits.from_json(row.limits, self._default_limits)
        assert row.container_id is not None
        execution_id = new_id()
        start_time = utcnow()
        spec = ExecSpec(
            argv=argv,
            env={**params.env, MARKER: str(execution_id)},
            working_dir=working_dir,
            stdin=params.stdin or None,
            output_limit_bytes=limits.output_limit_bytes,
        )
        if share is None:
            share = await self._exec_shares.take(caller.user_id, row.project_id)
        try:
            self._slots.take(row.id)
        except BaseException:
            share.release()
            raise
        taken = share

        def release() -> None:
            self._slots.release(row.id)
            taken.release()

        # Start the command and record it at the same time.
        starting = asyncio.ensure_future(backend.exec(row.container_id, spec))
        try:
            await store.start_execution(
                db,
                execution_id=execution_id,
                sandbox_id=row.id,
                user_id=caller.user_id,
                command=command,
                working_dir=working_dir,
                start_time=start_time,
                owner=self._owner,
                lease=timedelta(seconds=self._settings.sandbox_host_lease_seconds),
            )
            await db.commit()
        except BaseException:
            release()
            discard = self._discard(engine, row.container_id, starting, execution_id, row.id)
            self._tasks.spawn(discard, name="discard-execution")
            raise
        try:
            process = await starting
        except asyncio.CancelledError:
            release()
            discard = self._discard(engine, row.container_id, starting, execution_id, row.id)
            self._tasks.spawn(discard, name="discard-execution")
            raise
        except BackendError as error:
            release()
            await store.finish_execution(
                db, execution_id, row.id, end_time=utcnow(), reason="killed", exit_code=None
            )
            await db.commit()
            raise await failure(self._sessions, error, row) from error

        async def ended() -> None:
            release()
            if on_end is not None:
                await on_end()

        return Execution(
            backend=backend,
            sessions=self._sessions,
            oom=engine.oom,
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
            tasks=self._tasks,
            background=params.background,
            cancels=self._cancels,
        )

    async def _discard(
        self,
        engine: Engine,
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
                if group is not None:
                    await engine.backend.kill_process_group(container_id, group)
                await kill_leftovers(engine.backend, container_id, str(execution_id))
            finally:
                await process.close()
        async with self._sessions() as db:
            await store.finish_execution(
                db, execution_id, sandbox_id, end_time=utcnow(), reason="cancelled"
            )
            await db.commit()

    async def start_run_code(
        self, caller: Caller, project_id: str, params: RunCodeParams, deadline: float | None
    ) -> Execution:
        """Runs code in a fresh sandbox (warm when possible) that is destroyed afterwards."""
        settings = self._settings
        started = time.perf_counter()
        violations = Violations()
        violations.check(bool(project_id), "project_id", "is required")
        runtime = self._runtimes.for_language(params.language) if params.language else None
        if not params.language:
            violations.add("language", "is required")
        elif runtime is None:
            violations.add("language", f"must be one of {', '.join(self._runtimes.languages())}")
        code = params.code.encode()
        if not code:
            violations.add("code", "is required")
        elif len(code) > settings.sandbox_max_code_bytes:
            violations.add("code", f"must be at most {settings.sandbox_max_code_bytes} bytes")
        if len(params.stdin) > settings.sandbox_max_stdin_bytes:
            violations.add("stdin", f"must be at most {settings.sandbox_max_stdin_bytes} bytes")
        check_env(params.env, "env", violations)
        if runtime is not None:
            check_timeout(params.timeout, "timeout", runtime.max_limits.exec_timeout, violations)
        violations.raise_if_any()
        assert runtime is not None
        self._engine.require()
        # The user's share is taken first: a refused call starts no sandbox.
        project = parse_id(project_id)
        share = await self._exec_shares.take(caller.user_id, project) if project else None
        try:
            row = await self._provisioner.provision(
                caller,
                project_id,
                runtime,
                runtime.default_limits,
                ephemeral=True,
                started=started,
            )
        except BaseException:
            if share is not None:
                share.release()
            raise
        assert row.container_id is not None
        container_id = row.container_id
        engine = self._engine.for_row(row)

        async def finished() -> None:
            retire = self._retirer.retire(
                row.id, row.host_id, container_id, "deleted", "RunCode finished"
            )
            self._tasks.spawn(retire, name="retire-run-code")

        argv = list(runtime.run_argv)
        try:
            if len(code) <= INLINE_SOURCE_BYTES and b"\x00" not in code:
                source = f"{WORKSPACE}/{runtime.source_file}"
                argv = ["/bin/sh", "-c", _WRITE_AND_RUN, "sh", params.code, source, *argv]
            else:
                await engine.backend.write_file(
                    container_id, WORKSPACE, runtime.source_file, NewFile(code, 0o644)
                )
            async with self._sessions() as db:
                return await self._launch(
                    db,
                    engine,
                    caller,
                    row,
                    argv=argv,
                    command={"language": params.language, "run_code": True},
                    params=ExecParams(
                        argv=list(runtime.run_argv),
                        shell="",
                        stdin=params.stdin,
                        env=params.env,
                        timeout=params.timeout,
                        idle_timeout=None,
                        working_dir=WORKSPACE,
                        # Nothing to clean up: its sandbox is destroyed when it ends.
                        background=True,
                    ),
                    working_dir=WORKSPACE,
                    deadline=deadline,
                    on_end=finished,
                    share=share,
                )
        except BaseException as error:
            if share is not None:
                share.release()
            retire = self._retirer.retire(
                row.id, row.host_id, container_id, "deleted", "RunCode could not start"
            )
            self._tasks.spawn(retire, name="retire-run-code")
            if isinstance(error, BackendError):
                raise await failure(self._sessions, error, row) from error
            raise
