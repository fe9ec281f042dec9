"""The connection to the container engine: connecting (or retrying until it answers), bringing
the engine up in order, following whether it answers, and tearing down.

Bringing up is: connect, learn the engine's host id, start the host's heartbeat (duties.py:
the process holding the host's lease reconciles the database with what the engine runs,
refills the warm pool and follows the engine's events, a container that stops or is removed
marking its sandbox lost at once), then every reaper interval check the engine and, while
holding the duties, reap. Without an engine the server still starts: every sandbox call
answers UNAVAILABLE until one answers. The engine found is put into the shared
EngineProvider, through which every other part reaches it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.tasks import TaskSupervisor
from server.sandbox.backend import BackendError, BackendUnavailable, SandboxBackend
from server.sandbox.docker_backend import DockerBackend
from server.sandbox.duties import HostDuties, HostIdentity
from server.sandbox.engine import Engine, EngineProvider
from server.sandbox.executions import OomCounter
from server.sandbox.failures import BACKEND_UNAVAILABLE
from server.sandbox.files import SandboxFiles
from server.sandbox.pool import WarmPool
from server.sandbox.provision import container_spec
from server.sandbox.reaper import Reaper
from server.sandbox.retire import Retirer
from server.sandbox.runtimes import Runtimes
from server.sandbox.views import Lifetimes

log = logging.getLogger(__name__)

AvailabilityListener = Callable[[bool], Awaitable[None]]

_STOP_WAIT_SECONDS = 10.0


class BackendConnection:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        engine: EngineProvider,
        *,
        runtimes: Runtimes,
        lifetimes: Lifetimes,
        retirer: Retirer,
        work: TaskSupervisor,
        owner: str,
    ) -> None:
        """`work` runs the sandbox's one-shot tasks (recording executions, clean-ups); they
        use the engine, so stopping waits for them before it closes the engine. `owner`
        names this process in leases."""
        self._settings = settings
        self._owner = owner
        self._sessions = sessions
        self._engine = engine
        self._runtimes = runtimes
        self._lifetimes = lifetimes
        self._retirer = retirer
        self._work = work
        self._tasks = TaskSupervisor("sandbox-connection")
        self._reaper: Reaper | None = None
        self._duties: HostDuties | None = None
        self._listeners: list[AvailabilityListener] = []
        # What listeners were last told (None: nothing yet, before start()).
        self._reported: bool | None = None
        self._stopped = False

    @property
    def available(self) -> bool:
        return self._engine.available

    @property
    def reaper(self) -> Reaper | None:
        """The reaper, once the engine is up."""
        return self._reaper

    @property
    def duties(self) -> HostDuties | None:
        """The Docker host's duties (held by this process or another), once the engine is up."""
        return self._duties

    def follow(self, listener: AvailabilityListener) -> None:
        """`listener(available)` runs now (if started) and whenever availability changes
        (the health of SandboxService follows it)."""
        self._listeners.append(listener)
        if self._reported is not None:
            self._tasks.spawn(_tell(listener, self._engine.available), name="availability")

    async def start(self) -> None:
        if await self._connect():
            return
        self._tasks.spawn(self._keep_connecting(), name="connect")
        await self._set_available(False)

    async def stop(self) -> None:
        """Stops the reaper and the warm pool (removing its containers), waits for the
        sandbox work in flight, and closes the engine; sandboxes keep running (the next
        start reconciles them)."""
        self._stopped = True
        await self._tasks.stop()
        if self._duties is not None:
            await self._duties.stop()
        await self._work.drain(_STOP_WAIT_SECONDS)
        await self._work.stop()
        engine = self._engine.detach()
        if engine is not None:
            await engine.backend.close()

    async def _connect(self, quiet: bool = False) -> bool:
        try:
            backend: SandboxBackend = await DockerBackend.connect(self._settings)
        except BackendError as error:
            if not quiet:
                log.warning(
                    "sandboxes unavailable: no Docker engine",
                    extra={"reason": BACKEND_UNAVAILABLE, "error": str(error)},
                )
            return False
        try:
            host_id = self._settings.sandbox_host_id or (
                f"{self._settings.sandbox_namespace}@{await backend.engine_id()}"
            )
        except BackendError as error:
            log.warning("cannot identify the Docker engine", extra={"error": str(error)})
            await backend.close()
            return False
        await self._bring_up(backend, host_id)
        return True

    async def _keep_connecting(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sandbox_backend_retry_seconds)
            if await self._connect(quiet=True):
                return

    async def _bring_up(self, backend: SandboxBackend, host_id: str) -> None:
        settings = self._settings
        make_spec = partial(container_spec, settings.sandbox_namespace)
        pool = WarmPool(backend, self._runtimes, make_spec)
        self._engine.attach(
            Engine(
                backend=backend,
                files=SandboxFiles(backend, settings.sandbox_max_file_bytes),
                oom=OomCounter(backend),
                pool=pool,
                host_id=host_id,
            )
        )
        self._reaper = Reaper(
            backend=backend,
            sessions=self._sessions,
            pool=pool,
            namespace=settings.sandbox_namespace,
            host_id=host_id,
            lifetimes=self._lifetimes,
            retirer=self._retirer,
        )
        identity = HostIdentity(
            host_id=host_id,
            namespace=settings.sandbox_namespace,
            owner=self._owner,
            lease_seconds=settings.sandbox_host_lease_seconds,
        )
        self._duties = HostDuties(identity, self._sessions, backend, pool)
        await self._duties.start()
        self._tasks.every("reaper", settings.sandbox_reaper_interval_seconds, self._check_and_reap)
        await self._set_available(True)

    async def _check_and_reap(self) -> None:
        """Notices the engine going and coming back; reaps while it answers and this process
        holds the host's duties."""
        engine, reaper, duties = self._engine.current, self._reaper, self._duties
        assert engine is not None
        assert reaper is not None
        assert duties is not None
        try:
            await engine.backend.ping()
        except BackendUnavailable:
            await self._set_available(False)
            return
        await self._set_available(True)
        if duties.held:
            await reaper.tick()

    async def _set_available(self, available: bool) -> None:
        self._engine.set_available(available)
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


async def _tell(listener: AvailabilityListener, available: bool) -> None:
    await listener(available)
