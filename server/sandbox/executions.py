"""One running execution: relays its output as events, enforces its time limits, and records
how it ended.

The wall-clock timeout, the idle (no output) timeout and the caller's deadline each kill the
command's whole process group inside the container; so does the caller going away (the
consumer of `events()` being cancelled or closing it early), and CancelExecution from any
server process (cancel.py). The `exit` event says which.
However it ends, every process it started is then killed (leftovers.py), unless it was
started as a background execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.cancels import Cancels
from server.core.errors import ResourceExhausted
from server.core.metrics import execution_ended
from server.core.tasks import TaskSupervisor
from server.core.timestamps import utcnow
from server.sandbox import store
from server.sandbox.backend import (
    BackendError,
    ContainerGone,
    ContainerPaused,
    ExecProcess,
    ResourceLimit,
    SandboxBackend,
    Stream,
)
from server.sandbox.cancel import EXECUTION
from server.sandbox.leftovers import kill_leftovers
from server.sandbox.views import ExecEvent, ExecExited, ExecOutput, ExecStarted, ExitReason

log = logging.getLogger(__name__)

# Before the caller's deadline, so the `exit` event can still reach it.
DEADLINE_MARGIN_SECONDS = 0.2
# After a kill, how long to wait for the streams to close (a process that left the group
# and holds them open is abandoned after this).
DRAIN_AFTER_KILL_SECONDS = 3.0
# A command still running after this long has its process group written down, so a
# restarted server can kill what a crashed one left behind (shorter ones cost no write).
RECORD_GROUP_AFTER_SECONDS = 0.25
KILL_ATTEMPTS = 40
KILL_RETRY_SECONDS = 0.05
SIGKILL_EXIT = 128 + 9
# How long a SIGKILLed execution's container is watched for its end (see _container_lost).
LOST_CHECK_SECONDS = 0.5
LOST_CHECK_INTERVAL_SECONDS = 0.05


class OomCounter:
    """The kernel's OOM kill count per container, as last seen; tells whether a SIGKILLed
    execution was killed by the kernel for memory."""

    def __init__(self, backend: SandboxBackend) -> None:
        self._backend = backend
        self._seen: dict[str, int] = {}

    async def killed_since_last_look(self, container_id: str) -> bool:
        try:
            count = await self._backend.oom_kill_count(container_id)
        except BackendError:
            return False
        if count is None:
            return False
        before = self._seen.get(container_id, 0)
        self._seen[container_id] = count
        return count > before

    def forget(self, container_id: str) -> None:
        self._seen.pop(container_id, None)


class ExecutionSlots:
    """The executions streaming now, per sandbox, capped per server (one reader each)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: dict[uuid.UUID, int] = {}

    def busy(self, sandbox_id: uuid.UUID) -> bool:
        """Whether the sandbox has executions running (it cannot be paused then)."""
        return bool(self._running.get(sandbox_id))

    def take(self, sandbox_id: uuid.UUID) -> None:
        """A slot for one execution in the sandbox; RESOURCE_EXHAUSTED when none is free."""
        if sum(self._running.values()) >= self._limit:
            raise ResourceExhausted(
                "too many executions are running on this server; try again shortly",
                "SANDBOX_EXEC_LIMIT",
                retry_after=timedelta(seconds=1),
            )
        self._running[sandbox_id] = self._running.get(sandbox_id, 0) + 1

    def release(self, sandbox_id: uuid.UUID) -> None:
        left = self._running.get(sandbox_id, 0) - 1
        if left > 0:
            self._running[sandbox_id] = left
        else:
            self._running.pop(sandbox_id, None)


@dataclass(frozen=True)
class ExecTimes:
    timeout: timedelta
    idle_timeout: timedelta
    # The caller's deadline on the event loop's clock, if it has one.
    deadline: float | None


class Execution:
    """Created by the launcher once the command has started; `events()` drives it.

    Work that may outlive the call runs on `tasks` (drained when the server stops):
    recording the end after the caller has its `exit` event, winding up after the caller
    went away, and noting the process group. The kill task stays a plain one: it is always
    awaited to its end before the execution ends, so it needs no other owner."""

    def __init__(
        self,
        *,
        backend: SandboxBackend,
        sessions: async_sessionmaker[AsyncSession],
        oom: OomCounter,
        process: ExecProcess,
        container_id: str,
        sandbox_id: uuid.UUID,
        execution_id: uuid.UUID,
        start_time: datetime,
        times: ExecTimes,
        on_end: Callable[[], Awaitable[None]],
        tasks: TaskSupervisor,
        background: bool = False,
        cancels: Cancels | None = None,
    ) -> None:
        self._backend = backend
        self._cancels = cancels
        self._sessions = sessions
        self._oom = oom
        self._process = process
        self._container_id = container_id
        self._sandbox_id = sandbox_id
        self.execution_id = execution_id
        self._start_time = start_time
        self._times = times
        self._on_end = on_end
        self._tasks = tasks
        self._background = background
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        self._stdout_bytes = 0
        self._stderr_bytes = 0
        self._truncated = False
        self._kill_reason: ExitReason | None = None
        self._kill_task: asyncio.Task[None] | None = None
        self._killed_at: float | None = None
        self._last_output = self._started_at
        self._ended = False
        self._group_recorder: asyncio.Task[None] | None = None
        self._group_timer = self._loop.call_later(
            RECORD_GROUP_AFTER_SECONDS, self._start_group_recorder
        )

    async def events(self) -> AsyncGenerator[ExecEvent, None]:
        """`started`, output chunks in order, then `exit`. Raises BackendError if the engine
        fails mid-way (the execution is then recorded as lost)."""
        concluded = False
        # CancelExecution, from any process (cancel.py): killed like a caller going away.
        unwatch = (
            self._cancels.watch(EXECUTION, self.execution_id, self._cancel)
            if self._cancels is not None
            else None
        )
        try:
            yield ExecStarted(str(self.execution_id), str(self._sandbox_id), self._start_time)
            while True:
                batch_events = await self._next_output()
                if batch_events is None:
                    break
                for event in batch_events:
                    yield event
            exited = await self._conclude()
            concluded = True
            yield exited
        finally:
            if unwatch is not None:
                unwatch()
            if not concluded:
                await self._tasks.shielded(self._abandon(), name="abandon-execution")

    def _cancel(self) -> None:
        """Kills the process group; the streams then close and `exit` says CANCELLED."""
        if not self._ended:
            self._kill(ExitReason.CANCELLED)

    # --- output and limits -------------------------------------------------------------

    def _next_wake(self) -> tuple[float, ExitReason]:
        times = self._times
        candidates = [
            (self._started_at + times.timeout.total_seconds(), ExitReason.TIMEOUT),
            (self._last_output + times.idle_timeout.total_seconds(), ExitReason.IDLE_TIMEOUT),
        ]
        if times.deadline is not None:
            candidates.append((times.deadline - DEADLINE_MARGIN_SECONDS, ExitReason.CANCELLED))
        return min(candidates, key=lambda item: item[0])

    async def _next_output(self) -> list[ExecOutput] | None:
        """The events of the next output batch; None once the streams have ended."""
        while True:
            now = self._loop.time()
            if self._kill_reason is None:
                when, why = self._next_wake()
                if now >= when:
                    self._kill(why)
                    continue
                wait = when - now
            else:
                assert self._killed_at is not None
                wait = self._killed_at + DRAIN_AFTER_KILL_SECONDS - now
                if wait <= 0:
                    log.warning("execution streams stayed open after its process group was killed")
                    return None
            try:
                batch = await asyncio.wait_for(self._process.next_batch(), wait)
            except TimeoutError:
                continue
            if batch is None:
                return None
            self._last_output = self._loop.time()
            self._stdout_bytes += batch.stdout_seen
            self._stderr_bytes += batch.stderr_seen
            kept = {Stream.STDOUT: 0, Stream.STDERR: 0}
            for stream, data in batch.segments:
                kept[stream] += len(data)
            if kept[Stream.STDOUT] < batch.stdout_seen or kept[Stream.STDERR] < batch.stderr_seen:
                self._truncated = True
            if batch.segments:
                return [ExecOutput(stream, data) for stream, data in batch.segments]

    def _kill(self, why: ExitReason) -> None:
        if self._kill_reason is not None:
            return
        self._kill_reason = why
        self._killed_at = self._loop.time()
        self._kill_task = asyncio.create_task(self._kill_group())

    async def _kill_group(self) -> None:
        try:
            group = await asyncio.wait_for(asyncio.shield(self._process.process_group), 5.0)
        except TimeoutError:
            group = None
        if group is None:
            return
        for _ in range(KILL_ATTEMPTS):
            try:
                await self._backend.kill_process_group(self._container_id, group)
                return
            except ResourceLimit:
                # No process slot for the kill itself (e.g. a fork bomb): try again.
                await asyncio.sleep(KILL_RETRY_SECONDS)
            except (ContainerGone, ContainerPaused):
                return
            except BackendError as error:
                log.warning("could not kill an execution", extra={"error": str(error)})
                return
        log.warning("gave up killing an execution's process group")

    # --- the end -------------------------------------------------------------------------

    async def _conclude(self) -> ExecExited:
        if self._kill_task is not None:
            await self._kill_task
        await self._process.close()
        try:
            code = await self._process.exit_code()
        except BackendError:
            code = None
        reason = self._kill_reason or ExitReason.EXITED
        oom = False
        if code in (None, SIGKILL_EXIT) and self._kill_reason is None:
            # Killed, or lost by the engine: by the kernel for memory, with the whole
            # container (stopped or removed under it), or by something else.
            if code is not None:
                oom = await self._oom.killed_since_last_look(self._container_id)
            if oom:
                reason = ExitReason.OOM_KILLED
            elif await self._container_lost():
                reason = ExitReason.SANDBOX_LOST
            else:
                reason = ExitReason.KILLED
        if code is None:
            # The engine lost track of the execution (its container was removed under it).
            code = SIGKILL_EXIT
        exited = ExecExited(
            exit_code=code,
            signal=code - 128 if 128 < code <= 128 + 64 else 0,
            duration=timedelta(seconds=self._loop.time() - self._started_at),
            timed_out=reason in (ExitReason.TIMEOUT, ExitReason.IDLE_TIMEOUT),
            oom_killed=oom,
            output_truncated=self._truncated,
            reason=reason,
            stdout_bytes=self._stdout_bytes,
            stderr_bytes=self._stderr_bytes,
        )
        await self._end()
        # The caller gets the exit event now; the row is written right after.
        self._tasks.spawn(self._record(exited), name="record-execution")
        return exited

    async def _container_lost(self) -> bool:
        """Whether the container stopped or went behind our back (not by the sandbox
        being deleted). The engine closes an execution's streams a moment before it records
        its container's end, so a container still alive is asked again for a short while
        (only SIGKILLs nobody here sent pay that wait)."""
        deadline = self._loop.time() + LOST_CHECK_SECONDS
        while True:
            try:
                if not await self._backend.is_alive(self._container_id):
                    break
            except BackendError:
                return False
            if self._loop.time() >= deadline:
                return False
            await asyncio.sleep(LOST_CHECK_INTERVAL_SECONDS)
        try:
            async with self._sessions() as db:
                row = await store.get(db, self._sandbox_id)
        except Exception:
            log.exception("could not read an execution's sandbox")
            return True
        # Deleting (or failing) a sandbox marks its row before removing its container.
        return row is None or row.state not in ("deleted", "failed")

    async def _abandon(self) -> None:
        """The consumer went away (cancel, deadline, error): kill, then record what we know."""
        try:
            self._kill(ExitReason.CANCELLED)
            if self._kill_task is not None:
                with contextlib.suppress(Exception):
                    await self._kill_task
            await self._process.close()
            code = None
            with contextlib.suppress(Exception):
                code = await asyncio.wait_for(self._process.exit_code(), 2.0)
            reason = self._kill_reason or ExitReason.CANCELLED
            exited = ExecExited(
                exit_code=code if code is not None else SIGKILL_EXIT,
                signal=9 if code in (None, SIGKILL_EXIT) else 0,
                duration=timedelta(seconds=self._loop.time() - self._started_at),
                timed_out=reason in (ExitReason.TIMEOUT, ExitReason.IDLE_TIMEOUT),
                oom_killed=False,
                output_truncated=self._truncated,
                reason=reason,
                stdout_bytes=self._stdout_bytes,
                stderr_bytes=self._stderr_bytes,
            )
            await self._record(exited)
        except Exception:
            log.exception("could not wind up an abandoned execution")
        finally:
            await self._end()

    def _start_group_recorder(self) -> None:
        if not self._ended:
            self._group_recorder = self._tasks.spawn(
                self._record_process_group(), name="record-process-group"
            )

    async def _record_process_group(self) -> None:
        """Remembers the process group, so a restarted server can kill what a dead one left."""
        group = await asyncio.shield(self._process.process_group)
        if group is None or self._ended:
            return
        try:
            async with self._sessions() as db:
                await store.set_process_group(db, self.execution_id, group)
                await db.commit()
        except Exception:
            log.exception("could not record an execution's process group")

    async def _record(self, exited: ExecExited) -> None:
        execution_ended(exited.reason.value, exited.duration.total_seconds())
        try:
            async with self._sessions() as db:
                await store.finish_execution(
                    db,
                    self.execution_id,
                    self._sandbox_id,
                    reason=exited.reason.value,
                    exit_code=exited.exit_code,
                    signal=exited.signal,
                    timed_out=exited.timed_out,
                    oom_killed=exited.oom_killed,
                    output_truncated=exited.output_truncated,
                    stdout_bytes=exited.stdout_bytes,
                    stderr_bytes=exited.stderr_bytes,
                    end_time=utcnow(),
                    duration=exited.duration,
                )
                await db.commit()
        except Exception:
            log.exception("could not record the end of an execution")

    async def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._group_timer.cancel()
        if not self._background:
            leftovers = kill_leftovers(self._backend, self._container_id, str(self.execution_id))
            self._tasks.spawn(leftovers, name="kill-leftovers")
        if self._group_recorder is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._group_recorder), 2.0)
        try:
            await self._on_end()
        except Exception:
            log.exception("execution end hook failed")
