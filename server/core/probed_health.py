"""Health that follows one dependency (the database, the blob store): a bounded probe every
`interval` seconds, and at once when a call found the dependency gone; followers hear the
answer when it changes (and, when they start following, the last answer a probe gave)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from server.core.tasks import TaskSupervisor, Ticker

log = logging.getLogger(__name__)

SetServing = Callable[[bool], Awaitable[None]]


class ProbedHealth:
    def __init__(
        self,
        what: str,
        check: Callable[[], Awaitable[object]],
        interval: float,
        timeout: float,
        *,
        assumed: bool | None,
        probe_first: bool,
    ) -> None:
        """`check` raises when `what` is out of reach; `assumed` is the answer before the
        first probe (None: unknown); `probe_first`: `start()` probes before it returns."""
        self._what = what
        self._check = check
        self._interval = interval
        self._timeout = timeout
        self._probe_first = probe_first
        self._tasks = TaskSupervisor(f"{what} health")
        self._ticker: Ticker | None = None
        self._listeners: list[SetServing] = []
        self._probed = False
        self.available = assumed
        """What the last probe found (`assumed` before the first)."""

    def follow(self, set_serving: SetServing) -> None:
        """`set_serving(available)` runs whenever the dependency comes or goes."""
        self._listeners.append(set_serving)
        if self._probed and self.available is not None:
            self._tasks.spawn(_tell(set_serving, self.available), name="tell")

    async def start(self) -> None:
        if self._probe_first:
            await self.probe()
        self._ticker = self._tasks.every("probe", self._interval, self.probe)

    async def stop(self) -> None:
        await self._tasks.stop()
        self._ticker = None

    def poke(self) -> None:
        """A call found the dependency out of reach: probe now, not at the next tick."""
        if self._ticker is not None:
            self._ticker.poke()

    async def probe(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._check()
        except Exception as error:
            available = False
            if self.available is not False:
                log.warning(f"{self._what} is unreachable", extra={"error": repr(error)})
        else:
            available = True
            if self.available is False:
                log.warning(f"{self._what} is reachable again")
        self._probed = True
        if available != self.available:
            self.available = available
            for listener in self._listeners:
                await listener(available)
        return available


async def _tell(set_serving: SetServing, available: bool) -> None:
    await set_serving(available)
