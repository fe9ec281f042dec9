"""Background tasks with an owner: named, crashes logged, restarted by policy, cancelled on
shutdown. Every component with work of its own (mail sender, sandbox reaper and pool, chat
settling, run loops) keeps one `TaskSupervisor` instead of bare `asyncio.create_task`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from server.db.unavailable import is_database_unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class Ticker:
    """A periodic task: runs `tick` every `interval` seconds, or at once when poked."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Runs the next tick now instead of at the end of the interval."""
        self._wake.set()

    async def wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval)
        self._wake.clear()


class TaskSupervisor:
    """The background tasks of one component (`owner` names it in logs and task names)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, work: Coroutine[Any, Any, T], *, name: str = "", log_failure: bool = True
    ) -> asyncio.Task[T]:
        """Runs `work` once; the task is cancelled by `stop()` if still running. Its failure
        is logged, unless `log_failure` is False because whoever awaits it handles it."""
        task = asyncio.get_running_loop().create_task(work, name=self._name(name))
        self._tasks.add(task)
        task.add_done_callback(self._finished if log_failure else self._finished_quietly)
        return task

    async def shielded(self, work: Coroutine[Any, Any, T], *, name: str = "") -> T:
        """Runs `work` in a task of its own that the caller's cancellation does not stop
        (e.g. storing how a cancelled answer ended), and waits for it."""
        return await asyncio.shield(self.spawn(work, name=name, log_failure=False))

    def forever(
        self,
        name: str,
        work: Callable[[], Awaitable[None]],
        *,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> asyncio.Task[None]:
        """Runs `work` until `stop()`; when it crashes (or returns), it is logged and
        started again after a delay that doubles up to `max_delay`."""
        return self.spawn(self._restarting(name, work, first_delay, max_delay), name=name)

    def every(self, name: str, interval: float, tick: Callable[[], Awaitable[object]]) -> Ticker:
        """Runs `tick` every `interval` seconds (first after one interval, or when poked)
        until `stop()`; a failing tick is logged and the next one runs as usual."""
        ticker = Ticker(interval)

        async def loop() -> None:
            while True:
                await ticker.wait()
                try:
                    await tick()
                except Exception as error:
                    if is_database_unavailable(error):  # health reports it; no traceback
                        log.warning(
                            "background tick failed: the database is unavailable",
                            extra={"task": self._name(name)},
                        )
                    else:
                        log.exception("background tick failed", extra={"task": self._name(name)})

        self.spawn(loop(), name=name)
        return ticker

    async def drain(self, timeout: float) -> None:
        """Waits, at most `timeout` seconds, for the tasks running now to finish."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def stop(self) -> None:
        """Cancels every task and waits until they have all ended."""
        while self._tasks:
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    async def _restarting(
        self, name: str, work: Callable[[], Awaitable[None]], first: float, most: float
    ) -> None:
        delay = first
        while True:
            try:
                await work()
            except Exception:
                log.exception("background task crashed", extra={"task": self._name(name)})
            else:
                log.warning("background task ended; restarting", extra={"task": self._name(name)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, most)

    def _name(self, name: str) -> str:
        return f"{self.owner}:{name}" if name else self.owner

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background task failed", exc_info=error, extra={"task": task.get_name()})

    def _finished_quietly(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it
