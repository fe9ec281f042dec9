"""Admission of expensive starts (opening a chat: its checks, reads and writes) under a
burst: at most `concurrency` run at once, at most `backlog` more wait their turn in order,
and the rest are refused at once with RESOURCE_EXHAUSTED SERVER_BUSY and RetryInfo, rather
than each waiting behind thousands of others for tens of seconds while the streams already
open starve for the event loop.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from server.core.errors import ResourceExhausted

SERVER_BUSY = "SERVER_BUSY"


class Admission:
    def __init__(self, what: str, concurrency: int, backlog: int, retry_after: float) -> None:
        self._what = what
        self._concurrency = concurrency
        self._backlog = backlog
        self._retry_after = timedelta(seconds=retry_after)
        self._running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Runs the block once admitted; SERVER_BUSY when the backlog is full."""
        if self._running < self._concurrency and not self._waiting:
            self._running += 1
        else:
            await self._wait_turn()
        try:
            yield
        finally:
            self._leave()

    async def _wait_turn(self) -> None:
        if len(self._waiting) >= self._backlog:
            raise ResourceExhausted(
                f"the server is busy {self._what}; retry in a moment",
                SERVER_BUSY,
                retry_after=self._retry_after,
                metadata={"running": str(self._running), "waiting": str(len(self._waiting))},
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # the place is handed over by _leave (running stays counted)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._leave()  # handed a place just as it went: pass it on
            else:
                self._waiting.remove(turn)
            raise

    def _leave(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the place passes to the next in line
                return
        self._running -= 1
