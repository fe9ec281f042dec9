"""Health follows the blob store: a probe (S3: HEAD of the bucket; local: the directory is
writable) every `interval` seconds, and at once when a call found the store out of reach;
followers hear the first answer and then every change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from server.artifacts.storage.base import BlobStore
from server.core.tasks import TaskSupervisor, Ticker

log = logging.getLogger(__name__)

SetServing = Callable[[bool], Awaitable[None]]


class BlobStoreHealth:
    """Start it after the store (it probes through the store's client), stop it before."""

    def __init__(self, blobs: BlobStore, interval: float, timeout: float | None = None) -> None:
        self._blobs = blobs
        self._interval = interval
        # Bounds a probe against a host that does not answer (the client's own retries
        # would take longer); a probe is one small request.
        self._timeout = timeout if timeout is not None else max(interval, 2.0)
        self._tasks = TaskSupervisor("blob-store-health")
        self._ticker: Ticker | None = None
        self._listeners: list[SetServing] = []
        self.available: bool | None = None
        """What the last probe found (None before the first)."""
        blobs.on_unreachable(self.poke)

    def follow(self, set_serving: SetServing) -> None:
        """`set_serving(available)` runs now (once probed) and whenever the store comes or
        goes."""
        self._listeners.append(set_serving)
        if self.available is not None:
            self._tasks.spawn(_tell(set_serving, self.available), name="tell")

    async def start(self) -> None:
        await self.probe()
        self._ticker = self._tasks.every("probe", self._interval, self.probe)

    async def stop(self) -> None:
        await self._tasks.stop()
        self._ticker = None

    def poke(self) -> None:
        if self._ticker is not None:
            self._ticker.poke()

    async def probe(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._blobs.probe()
        except Exception as error:
            available = False
            if self.available is not False:
                log.warning("the blob store is unreachable", extra={"error": repr(error)})
        else:
            available = True
            if self.available is False:
                log.warning("the blob store is reachable again")
        if available != self.available:
            self.available = available
            for listener in self._listeners:
                await listener(available)
        return available


async def _tell(set_serving: SetServing, available: bool) -> None:
    await set_serving(available)
