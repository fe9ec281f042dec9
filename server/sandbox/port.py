"""The sandbox as agent runs use it (core/ports.py SandboxPort), over the same parts as the
RPCs: the same access rule, limits and errors, and Exec's kill-on-close.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import timedelta

from server.core.context import Caller
from server.core.errors import ForgeError
from server.core.ports import ExecBegan, ExecChunk, ExecEnded, ExecPortEvent, ExitReasonName
from server.sandbox.backend import Stream
from server.sandbox.failures import execution_lost, sandbox_not_found
from server.sandbox.file_calls import FileCalls
from server.sandbox.launcher import ExecLauncher, ExecParams
from server.sandbox.lifecycle import SandboxLifecycle
from server.sandbox.limits import LimitRequest
from server.sandbox.views import ExecEvent, ExecOutput, ExecStarted, ExitReason

log = logging.getLogger(__name__)

RUNTIME = "python"
FILE_MODE = 0o644

_REASONS: dict[ExitReason, ExitReasonName] = {
    ExitReason.EXITED: "exited",
    ExitReason.TIMEOUT: "timeout",
    ExitReason.IDLE_TIMEOUT: "idle_timeout",
    ExitReason.CANCELLED: "cancelled",
    ExitReason.OOM_KILLED: "oom_killed",
    ExitReason.KILLED: "killed",
    ExitReason.SANDBOX_LOST: "sandbox_lost",
}


class SandboxForRuns:
    """Offered as `Offers.sandbox`; also a ScratchSandboxPort (builds)."""

    def __init__(
        self, lifecycle: SandboxLifecycle, executions: ExecLauncher, files: FileCalls
    ) -> None:
        self._lifecycle = lifecycle
        self._executions = executions
        self._files = files

    async def ensure_sandbox(
        self, caller: Caller, project_id: uuid.UUID, sandbox_id: uuid.UUID | None
    ) -> uuid.UUID:
        if sandbox_id is None:
            # As CreateSandbox: warm pool first, the project's quota applies.
            view = await self._lifecycle.create(caller, str(project_id), RUNTIME, LimitRequest())
            return uuid.UUID(view.id)
        seen = await self._lifecycle.get(caller, str(sandbox_id))
        if seen.project_id != str(project_id):
            raise sandbox_not_found()
        # Editors only; a paused sandbox is resumed, one that is not live is refused.
        await self._lifecycle.resume(caller, str(sandbox_id))
        return sandbox_id

    async def create_sandbox(
        self, caller: Caller, project_id: uuid.UUID, runtime: str
    ) -> uuid.UUID:
        view = await self._lifecycle.create(caller, str(project_id), runtime, LimitRequest())
        return uuid.UUID(view.id)

    async def delete_sandbox(self, caller: Caller, sandbox_id: uuid.UUID) -> None:
        await self._lifecycle.delete(caller, str(sandbox_id))

    async def exec(
        self, caller: Caller, sandbox_id: uuid.UUID, command: str, timeout: timedelta
    ) -> AsyncGenerator[ExecPortEvent, None]:
        # `timeout` is the only time limit: a command may stay silent while it works.
        params = ExecParams(
            argv=["bash", "-lc", command],
            shell="",
            stdin=b"",
            env={},
            timeout=timeout,
            idle_timeout=timeout,
            working_dir="",
        )
        execution = await self._executions.start_exec(caller, str(sandbox_id), params, None)
        # Closing `events` early (our own close or cancellation) kills the process group and
        # records the execution as cancelled, as for an Exec call that ends early.
        async with aclosing(execution.events()) as events:
            try:
                async for event in events:
                    yield _to_port(event)
            except ForgeError:
                raise
            except Exception as error:
                log.exception("execution stream failed")
                raise execution_lost() from error

    async def read_file(self, caller: Caller, sandbox_id: uuid.UUID, path: str) -> bytes:
        _, content = await self._files.read(caller, str(sandbox_id), path)
        return content

    async def write_file(
        self, caller: Caller, sandbox_id: uuid.UUID, path: str, content: bytes
    ) -> None:
        await self._files.write(caller, str(sandbox_id), path, content, FILE_MODE)

    async def read_tree(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        path: str,
        *,
        max_files: int,
        max_bytes: int,
    ) -> dict[str, bytes]:
        seen = await self._lifecycle.get(caller, str(sandbox_id))
        if seen.project_id != str(project_id):
            raise sandbox_not_found()
        return await self._files.read_tree(
            caller, str(sandbox_id), path, max_files=max_files, max_bytes=max_bytes
        )


def _to_port(event: ExecEvent) -> ExecPortEvent:
    if isinstance(event, ExecStarted):
        return ExecBegan(event.execution_id, event.sandbox_id, event.start_time)
    if isinstance(event, ExecOutput):
        return ExecChunk("stdout" if event.stream is Stream.STDOUT else "stderr", event.data)
    return ExecEnded(
        exit_code=event.exit_code,
        signal=event.signal,
        duration=event.duration,
        timed_out=event.timed_out,
        oom_killed=event.oom_killed,
        output_truncated=event.output_truncated,
        reason=_REASONS[event.reason],
        stdout_bytes=event.stdout_bytes,
        stderr_bytes=event.stderr_bytes,
    )
