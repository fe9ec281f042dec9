"""Warm pool: per runtime, N containers started ahead of demand with the default limits.

A pool container is created with the id its sandbox will have (label forge.sandbox_id), so
claiming one is a dictionary pop; a background task per runtime refills the pool (restarted
by its supervisor should it ever crash). Labels
cannot change after creation, so a claimed container's forge.project_id label stays empty:
the sandbox row (same id) says whose it is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from server.core.ids import new_id
from server.core.tasks import TaskSupervisor
from server.sandbox.backend import BackendError, ContainerSpec, SandboxBackend
from server.sandbox.limits import Limits
from server.sandbox.runtimes import Runtime, Runtimes

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0

SpecFactory = Callable[[Runtime, uuid.UUID, Limits, str], ContainerSpec]


@dataclass(frozen=True)
class WarmContainer:
    sandbox_id: uuid.UUID
    container_id: str
    runtime: str


class WarmPool:
    def __init__(self, backend: SandboxBackend, runtimes: Runtimes, make_spec: SpecFactory) -> None:
        self._backend = backend
        self._runtimes = runtimes
        self._make_spec = make_spec
        self._ready: dict[str, collections.deque[WarmContainer]] = {
            runtime.name: collections.deque() for runtime in runtimes.all()
        }
        self._wake = {runtime.name: asyncio.Event() for runtime in runtimes.all()}
        self._grown = asyncio.Event()
        self._tasks = TaskSupervisor("sandbox-pool")

    def ready(self, runtime: str) -> int:
        return len(self._ready.get(runtime, ()))

    def owns(self, container_id: str) -> bool:
        return any(c.container_id == container_id for q in self._ready.values() for c in q)

    def take(self, runtime: Runtime, limits: Limits) -> WarmContainer | None:
        """A ready container for a sandbox with `limits`, or None (then start one cold)."""
        if limits.container_key() != runtime.default_limits.container_key():
            return None
        ready = self._ready.get(runtime.name)
        if not ready:
            return None
        container = ready.popleft()
        self._wake[runtime.name].set()
        return container

    def drop(self, alive: Iterable[str]) -> None:
        """Forgets ready containers that are no longer running (e.g. removed behind our back)."""
        alive_ids = set(alive)
        for name, ready in self._ready.items():
            kept = [c for c in ready if c.container_id in alive_ids]
            if len(kept) != len(ready):
                self._ready[name] = collections.deque(kept)
                self._wake[name].set()

    def start(self) -> None:
        for runtime in self._runtimes.all():
            if runtime.pool_size > 0:
                self._tasks.forever(
                    runtime.name,
                    partial(self._refill, runtime),
                    first_delay=RETRY_FIRST_SECONDS,
                    max_delay=RETRY_MAX_SECONDS,
                )

    async def wait_ready(self, timeout: float) -> None:
        """Waits until every pool is full (tests, warm-up); TimeoutError after `timeout`."""

        async def full() -> None:
            while any(self.ready(r.name) < r.pool_size for r in self._runtimes.all()):
                self._grown.clear()
                await self._grown.wait()

        await asyncio.wait_for(full(), timeout)

    async def stop(self) -> None:
        """Stops refilling and removes the ready containers."""
        await self._tasks.stop()
        leftovers = [c for ready in self._ready.values() for c in ready]
        for ready in self._ready.values():
            ready.clear()
        await asyncio.gather(
            *(self._destroy(c.container_id) for c in leftovers), return_exceptions=True
        )

    async def _destroy(self, container_id: str) -> None:
        try:
            await self._backend.destroy(container_id)
        except BackendError as error:
            log.warning("could not remove a warm container", extra={"error": str(error)})

    async def _refill(self, runtime: Runtime) -> None:
        wake = self._wake[runtime.name]
        delay = RETRY_FIRST_SECONDS
        while True:
            if len(self._ready[runtime.name]) >= runtime.pool_size:
                wake.clear()
                await wake.wait()
                continue
            try:
                container = await self._create(runtime)
            except BackendError as error:
                log.warning(
                    "could not start a warm container",
                    extra={"runtime": runtime.name, "error": str(error), "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            delay = RETRY_FIRST_SECONDS
            self._ready[runtime.name].append(container)
            self._grown.set()

    async def _create(self, runtime: Runtime) -> WarmContainer:
        sandbox_id = new_id()
        spec = self._make_spec(runtime, sandbox_id, runtime.default_limits, "")
        creating = asyncio.ensure_future(self._backend.create(spec))
        try:
            info = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # Stopping: let the creation finish, then remove what it made.
            with contextlib.suppress(Exception):
                made = await creating
                await self._destroy(made.id)
            raise
        return WarmContainer(sandbox_id, info.id, runtime.name)
