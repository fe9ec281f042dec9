"""Warm pool of one Docker host: per runtime, N containers started ahead of demand with the
runtime's default limits, recorded in sandbox_pool so any server process claims them
(pool_store.claim, in the transaction that creates the sandbox's row).

Only the process holding the host's duties refills (duties.py starts and stops this): a
task per runtime tops the pool up whenever a look at the database finds it short, looking
at once when this process claimed one and otherwise every CHECK_SECONDS (other processes'
claims). A pool container is created with the id its sandbox will have (label
forge.sandbox_id); labels cannot change after creation, so a claimed container's
forge.project_id label stays empty: the sandbox row (same id) says whose it is. Stopping
leaves the ready containers running: they are the host's, not this process's, and the next
holder (or this server's next start) keeps serving them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.ids import new_id
from server.core.tasks import TaskSupervisor
from server.db.sandbox_models import SandboxPoolRow
from server.sandbox import pool_store
from server.sandbox.backend import BackendError, ContainerSpec, SandboxBackend
from server.sandbox.limits import Limits
from server.sandbox.pool_store import WarmContainer
from server.sandbox.runtimes import Runtime, Runtimes

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
CHECK_SECONDS = 1.0

SpecFactory = Callable[[Runtime, uuid.UUID, Limits, str], ContainerSpec]


class WarmPool:
    def __init__(
        self,
        backend: SandboxBackend,
        runtimes: Runtimes,
        make_spec: SpecFactory,
        sessions: async_sessionmaker[AsyncSession],
        host_id: str,
    ) -> None:
        self._backend = backend
        self._runtimes = runtimes
        self._make_spec = make_spec
        self._sessions = sessions
        self.host_id = host_id
        self._wake = {runtime.name: asyncio.Event() for runtime in runtimes.all()}
        self._tasks = TaskSupervisor("sandbox-pool")

    def accepts(self, ready: SandboxPoolRow) -> bool:
        """Whether a ready container still fits its runtime as configured now (image and
        default limits); reconciliation removes those that do not."""
        runtime = self._runtimes.get(ready.runtime)
        return (
            runtime is not None
            and runtime.pool_size > 0
            and ready.image == runtime.image
            and ready.limits_key == pool_store.limits_key(runtime.default_limits)
        )

    def claimed(self, runtime: str) -> None:
        """A container of `runtime` was claimed in this process: refill now, if refilling."""
        event = self._wake.get(runtime)
        if event is not None:
            event.set()

    def start(self) -> None:
        for runtime in self._runtimes.all():
            if runtime.pool_size > 0:
                self._tasks.forever(
                    runtime.name,
                    partial(self._refill, runtime),
                    first_delay=RETRY_FIRST_SECONDS,
                    max_delay=RETRY_MAX_SECONDS,
                )

    async def stop(self) -> None:
        """Stops refilling (a container being made is removed); ready ones stay."""
        await self._tasks.stop()

    async def wait_ready(self, timeout: float) -> None:
        """Waits until every runtime's pool on this host is full (tests, warm-up);
        TimeoutError after `timeout`."""

        async def full() -> None:
            while True:
                async with self._sessions() as db:
                    counts = [
                        (await pool_store.count(db, self.host_id, r.name), r.pool_size)
                        for r in self._runtimes.all()
                    ]
                if all(ready >= size for ready, size in counts):
                    return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(full(), timeout)

    async def _refill(self, runtime: Runtime) -> None:
        wake = self._wake[runtime.name]
        delay = RETRY_FIRST_SECONDS
        while True:
            async with self._sessions() as db:
                ready = await pool_store.count(db, self.host_id, runtime.name)
            if ready >= runtime.pool_size:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), CHECK_SECONDS)
                continue
            try:
                await self._add(runtime)
            except BackendError as error:
                log.warning(
                    "could not start a warm container",
                    extra={"runtime": runtime.name, "error": str(error), "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            delay = RETRY_FIRST_SECONDS

    async def _add(self, runtime: Runtime) -> None:
        sandbox_id = new_id()
        spec = self._make_spec(runtime, sandbox_id, runtime.default_limits, "")
        creating = asyncio.ensure_future(self._backend.create(spec))
        try:
            info = await asyncio.shield(creating)
            made = WarmContainer(sandbox_id, info.id)
            async with self._sessions() as db:
                await pool_store.add(
                    db, self.host_id, runtime.name, runtime.image, runtime.default_limits, made
                )
                await db.commit()
        except BaseException:
            # Stopping, or the database failed: remove what was made.
            with contextlib.suppress(Exception):
                made_info = await creating
                await self._destroy(made_info.id)
            raise

    async def _destroy(self, container_id: str) -> None:
        try:
            await self._backend.destroy(container_id)
        except BackendError as error:
            log.warning("could not remove a warm container", extra={"error": str(error)})
