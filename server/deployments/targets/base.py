"""The interface every deploy target implements, and the progress it reports.

A target is built from its settings and plain-text credentials (the service keeps them
encrypted and decrypts them to build one), publishes a `Site` under a deployment id and
returns a `Published`: the live URL and a JSON-serializable `handle`, which the service
stores and later hands back to `remove`. `remove` is idempotent: removing twice, or after the
target lost the deployment by other means, succeeds.

Failures are the errors of server/core/errors.py with the reasons of `errors.py`; they never
carry a token.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from server.deployments.site import Site


class Phase(enum.Enum):
    PREPARING = "preparing"
    """Hashing files, asking the target what it already has."""
    UPLOADING = "uploading"
    """Sending files; `files_done` of `files_total` are there."""
    PROCESSING = "processing"
    """The target has every file and is making the deployment ready."""
    SWITCHING = "switching"
    """About to make the new deployment the live site."""
    CLEANING_UP = "cleaning_up"
    """Live; recording that, and removing what older deployments left behind."""


@dataclass(frozen=True)
class Progress:
    phase: Phase
    files_total: int = 0
    """Files this deployment sends (what the target already had is not counted)."""
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0


ProgressCallback = Callable[[Progress], Awaitable[None]]

Handle = Mapping[str, Any]
"""What `remove` needs later; JSON-serializable (strings, numbers, lists, dicts)."""


@dataclass(frozen=True)
class Published:
    url: str
    """Where visitors see the site."""
    handle: Handle


class DeployTarget(Protocol):
    kind: str
    """A stable name of the kind of target ("s3", "netlify", …)."""

    async def publish(
        self, deployment_id: str, site: Site, progress: ProgressCallback
    ) -> Published: ...

    async def remove(self, handle: Handle) -> None: ...


async def no_progress(_: Progress) -> None:
    """A progress callback that ignores what it is told."""


class UploadCounter:
    """Counts finished uploads of concurrent tasks and reports each step, in order."""

    def __init__(self, progress: ProgressCallback, files: int, size: int) -> None:
        self._progress = progress
        self._lock = asyncio.Lock()
        self._files_total = files
        self._bytes_total = size
        self._files_done = 0
        self._bytes_done = 0

    async def start(self) -> None:
        await self._report()

    async def uploaded(self, size: int) -> None:
        async with self._lock:
            self._files_done += 1
            self._bytes_done += size
            await self._report()

    async def _report(self) -> None:
        await self._progress(
            Progress(
                Phase.UPLOADING,
                files_total=self._files_total,
                files_done=self._files_done,
                bytes_total=self._bytes_total,
                bytes_done=self._bytes_done,
            )
        )


async def run_bounded(jobs: list[Callable[[], Awaitable[None]]], concurrency: int) -> None:
    """Runs `jobs` with at most `concurrency` at a time; the first failure cancels the rest."""
    slots = asyncio.Semaphore(max(1, concurrency))

    async def bounded(job: Callable[[], Awaitable[None]]) -> None:
        async with slots:
            await job()

    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(bounded(job))
    except BaseExceptionGroup as failures:
        raise _first_failure(failures) from None


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_failure(first) if isinstance(first, BaseExceptionGroup) else first
