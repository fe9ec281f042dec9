"""The connections to the container engines (FORGE_DOCKER_HOSTS, or the one default engine):
starting each (host_connection.py), saying whether any answers, and tearing down.

Without an engine the server still starts: every sandbox call answers UNAVAILABLE until one
answers. SandboxService's health follows whether any engine answers. The engines found are
put into the shared EngineProvider, through which every other part reaches them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.holds import Holds
from server.core.tasks import TaskSupervisor
from server.sandbox.docker_connect import engine_addresses
from server.sandbox.duties import HostDuties
from server.sandbox.engine import EngineProvider
from server.sandbox.host_connection import HostConnection
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
        own_holds: Holds | None = None,
    ) -> None:
        """`work` runs the sandbox's one-shot tasks (recording executions, clean-ups); they
        use the engines, so stopping waits for them before it closes the engines. `owner`
        names this process in leases. `own_holds`: the parts' own concurrency places (no
        server's), started first and stopped last."""
        self._own_holds = own_holds
        self._engines = engine
        self._work = work
        self._tasks = TaskSupervisor("sandbox-connection")
        self.hosts = [
            HostConnection(
                settings,
                sessions,
                engine,
                address,
                first=index == 0,
                runtimes=runtimes,
                lifetimes=lifetimes,
                retirer=retirer,
                owner=owner,
                changed=self._changed,
            )
            for index, address in enumerate(engine_addresses(settings))
        ]
        self._listeners: list[AvailabilityListener] = []
        # What listeners were last told (None: nothing yet, before start()).
        self._reported: bool | None = None
        self._stopped = False

    @property
    def available(self) -> bool:
        """Whether any engine answers."""
        return self._engines.available

    @property
    def reaper(self) -> Reaper | None:
        """The first engine's reaper, once it is up (tests)."""
        return self.hosts[0].reaper

    @property
    def duties(self) -> HostDuties | None:
        """The first engine's duties (held by this process or another), once it is up."""
        return self.hosts[0].duties

    def sandboxes_by_host(self) -> dict[tuple[str, str], float]:
        """(host, state) → live sandboxes, for the hosts whose duties this process holds."""
        return {
            (host.host_id or "", state): count
            for host in self.hosts
            for state, count in host.census.sandboxes.items()
        }

    def pool_by_host(self) -> dict[tuple[str, str], float]:
        """(host, runtime) → warm containers ready, for the hosts whose duties this holds."""
        return {
            (host.host_id or "", runtime): count
            for host in self.hosts
            for runtime, count in host.census.ready.items()
        }

    def engines_answering(self) -> dict[str, float]:
        """host → 1 if its engine answers this process, else 0."""
        return {
            host.host_id: float(host.answering) for host in self.hosts if host.host_id is not None
        }

    def follow(self, listener: AvailabilityListener) -> None:
        """`listener(available)` runs now (if started) and whenever whether any engine
        answers changes (the health of SandboxService follows it)."""
        self._listeners.append(listener)
        if self._reported is not None:
            self._tasks.spawn(_tell(listener, self._engines.available), name="availability")

    async def start(self) -> None:
        if self._own_holds is not None:
            await self._own_holds.start()
        await asyncio.gather(*(host.start() for host in self.hosts))
        await self._changed()

    async def stop(self) -> None:
        """Stops the reapers and warm pool refills, waits for the sandbox work in flight, and
        closes the engines; sandboxes and warm containers keep running (the next start
        reconciles them)."""
        self._stopped = True
        await self._tasks.stop()
        await asyncio.gather(*(host.stop_duties() for host in self.hosts))
        await self._work.drain(_STOP_WAIT_SECONDS)
        await self._work.stop()
        await asyncio.gather(*(host.close() for host in self.hosts))
        if self._own_holds is not None:
            await self._own_holds.stop()

    async def _changed(self) -> None:
        available = self._engines.available
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
