"""The connection to one container engine (Docker host): connecting (or retrying until it
answers), bringing it up in order, following whether it answers, and tearing down.

Bringing up is: connect, learn the engine's id and capacity (its host id is
'<namespace>@<engine id>', the same from every process), start the host's heartbeat
(duties.py: the process holding the host's lease reconciles the database with what the
engine runs, refills the host's warm pool and follows the engine's events), then every
reaper interval check the engine and, while holding the duties, reap. An engine that has not
answered for sandbox_host_down_after_seconds is down: the duty holder reports its sandboxes
lost; new sandboxes go to the engines that answer (placement.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.config_docker import DockerHostAddress
from server.core.tasks import TaskSupervisor
from server.sandbox import pool_store, store
from server.sandbox.backend import (
    BackendError,
    BackendUnavailable,
    EngineDescription,
    SandboxBackend,
)
from server.sandbox.docker_connect import connect_docker
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

HOST_DOWN_MESSAGE = "its Docker host stopped answering"


@dataclass(frozen=True)
class HostCensus:
    """What the host holds, as its duty holder last counted (empty elsewhere)."""

    sandboxes: dict[str, int] = field(default_factory=dict)
    """Live sandboxes by state."""
    ready: dict[str, int] = field(default_factory=dict)
    """Warm containers by runtime."""


class HostConnection:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        engines: EngineProvider,
        address: DockerHostAddress | None,
        *,
        first: bool,
        runtimes: Runtimes,
        lifetimes: Lifetimes,
        retirer: Retirer,
        owner: str,
        changed: Callable[[], Awaitable[None]],
    ) -> None:
        """`first`: the first engine configured (it adopts sandboxes recorded before hosts
        were); `changed()` runs whenever this engine starts or stops answering."""
        self._settings = settings
        self._sessions = sessions
        self._engines = engines
        self._address = address
        self._first = first
        self._runtimes = runtimes
        self._lifetimes = lifetimes
        self._retirer = retirer
        self._owner = owner
        self._changed = changed
        self._tasks = TaskSupervisor("sandbox-host")
        self.host_id: str | None = None
        self.reaper: Reaper | None = None
        self.duties: HostDuties | None = None
        self._answering = False
        self.census = HostCensus()
        self._silent_since: float | None = None
        self._reported_down = False

    @property
    def answering(self) -> bool:
        return self._answering

    @property
    def name(self) -> str:
        return self._address.display if self._address is not None else "default"

    async def start(self) -> None:
        if not await self._connect():
            self._tasks.spawn(self._keep_connecting(), name="connect")

    async def stop_duties(self) -> None:
        await self._tasks.stop()
        if self.duties is not None:
            await self.duties.stop()

    async def close(self) -> None:
        """Closes the engine (after stop_duties and the sandbox work in flight)."""
        engine = self._engines.detach(self.host_id) if self.host_id is not None else None
        if engine is not None:
            await engine.backend.close()

    async def _connect(self, quiet: bool = False) -> bool:
        try:
            backend: SandboxBackend = await connect_docker(self._settings, self._address)
        except BackendError as error:
            if not quiet:
                log.warning(
                    "sandboxes unavailable: a Docker engine does not answer",
                    extra={"reason": BACKEND_UNAVAILABLE, "engine": self.name, "error": str(error)},
                )
            return False
        try:
            description = await backend.describe()
        except BackendError as error:
            log.warning("cannot identify the Docker engine", extra={"error": str(error)})
            await backend.close()
            return False
        single = len(self._settings.docker_hosts) <= 1
        host_id = (self._settings.sandbox_host_id if single else "") or description.host_id(
            self._settings.sandbox_namespace
        )
        if self._engines.of_host(host_id) is not None:
            log.error(
                "two configured Docker engines are one, or share an id (a cloned "
                "/etc/docker/key.json: remove it on one and restart that engine); "
                "this one is not used",
                extra={"engine": self.name, "host_id": host_id},
            )
            await backend.close()
            return True
        if self._first:
            async with self._sessions() as db:
                adopted = await store.adopt_unplaced(db, host_id)
                await db.commit()
            if adopted:
                log.info("sandboxes placed on the first engine", extra={"count": adopted})
        await self._bring_up(backend, host_id, description)
        return True

    async def _keep_connecting(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sandbox_backend_retry_seconds)
            if await self._connect(quiet=True):
                return

    async def _bring_up(
        self, backend: SandboxBackend, host_id: str, description: EngineDescription
    ) -> None:
        settings = self._settings
        make_spec = partial(container_spec, settings.sandbox_namespace)
        pool = WarmPool(backend, self._runtimes, make_spec, self._sessions, host_id)
        self.host_id = host_id
        self._engines.attach(
            Engine(
                backend=backend,
                files=SandboxFiles(backend, settings.sandbox_max_file_bytes),
                oom=OomCounter(backend),
                pool=pool,
                host_id=host_id,
                description=description,
            )
        )
        self.reaper = Reaper(
            backend=backend,
            sessions=self._sessions,
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
        self.duties = HostDuties(identity, self._sessions, backend, pool)
        await self.duties.start()
        if self.duties.held:  # (the metrics need not wait for the first reaper pass)
            with contextlib.suppress(Exception):
                await self._count()
        self._tasks.every("reaper", settings.sandbox_reaper_interval_seconds, self._check_and_reap)
        await self._set_answering(True)
        log.info(
            "Docker engine connected",
            extra={"engine": self.name, "host_id": host_id, "cpus": description.cpu_millis // 1000},
        )

    async def _check_and_reap(self) -> None:
        """Notices the engine going and coming back; reaps while it answers and this process
        holds the host's duties; reports its sandboxes lost once it has been down long."""
        engine = self._engines.of_host(self.host_id)
        reaper, duties = self.reaper, self.duties
        assert engine is not None
        assert reaper is not None
        assert duties is not None
        try:
            await engine.backend.ping()
        except BackendUnavailable:
            await self._set_answering(False)
            await self._maybe_down(duties)
            return
        self._silent_since = None
        self._reported_down = False
        await self._set_answering(True)
        if duties.held:
            await reaper.tick()
            await self._count()
        else:
            self.census = HostCensus()

    async def _count(self) -> None:
        """The duty holder's count of the host's sandboxes and warm containers (metrics)."""
        assert self.host_id is not None
        async with self._sessions() as db:
            sandboxes = await store.census(db, self.host_id)
            ready = await pool_store.ready_by_runtime(db, [self.host_id])
        self.census = HostCensus(sandboxes, ready)

    async def _maybe_down(self, duties: HostDuties) -> None:
        now = time.monotonic()
        if self._silent_since is None:
            self._silent_since = now
        silent = now - self._silent_since
        if self._reported_down or silent < self._settings.sandbox_host_down_after_seconds:
            return
        if not duties.held:
            return  # the holder reports it (or this process, once it holds the duties)
        lost = await duties.host_down(HOST_DOWN_MESSAGE)
        self._reported_down = True
        self.census = HostCensus()
        log.warning(
            "Docker host down: its sandboxes are lost",
            extra={"engine": self.name, "host_id": self.host_id, "lost_sandboxes": len(lost)},
        )

    async def _set_answering(self, answering: bool) -> None:
        assert self.host_id is not None
        self._engines.set_available(self.host_id, answering)
        if answering == self._answering:
            return
        self._answering = answering
        log.log(
            logging.INFO if answering else logging.WARNING,
            "Docker engine answers" if answering else "Docker engine does not answer",
            extra={"engine": self.name, "host_id": self.host_id},
        )
        await self._changed()
