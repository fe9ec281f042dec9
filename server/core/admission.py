"""Admission of expensive stream opens (a chat: authentication, its share, checks, reads and
writes, up to its first event) under a burst: at most `concurrency` open at once, at most
`backlog` more wait their turn in order (only as many as get their turn within `max_wait`,
judged by how long opens take now: a loaded server opens slower, so it queues fewer; and
none while the event loop is overloaded, server/core/loop_load.py), and the rest are
refused at once — before any of that work, so a refusal costs next to nothing — with
RESOURCE_EXHAUSTED SERVER_BUSY and a RetryInfo delay of about how long the queue ahead
would take, counting the clients refused in the last seconds (they are out there waiting
to come back), spread at random so that refused clients neither all come back together
nor sooner than the server can let them in. The opens let in stay quick (a bounded queue),
and the streams already open keep the event loop.

The call interceptor admits the methods a binding names (ServiceBinding.admitted).
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from datetime import timedelta

from server.core.errors import ResourceExhausted
from server.core.loop_load import NO_LOAD, LoopLoad

SERVER_BUSY = "SERVER_BUSY"
MIN_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
_SMOOTHING = 0.1  # weight of the newest open in the moving average of open times
_OUTSIDE_SECONDS = 5
"""Refusals within this many seconds count as clients still to come back."""


class _RecentCount:
    """How many events happened in the last `seconds` whole seconds (one bucket a second)."""

    __slots__ = ("_buckets", "_second")

    def __init__(self, seconds: int) -> None:
        self._buckets = [0] * seconds
        self._second = int(time.monotonic())

    def add(self, now: float) -> int:
        """Counts one event at `now`; how many there were in the window, this one included."""
        second = int(now)
        buckets = self._buckets
        # The seconds passed since the last event start empty (all of them after a long gap).
        for passed in range(self._second + 1, min(second, self._second + len(buckets)) + 1):
            buckets[passed % len(buckets)] = 0
        self._second = second
        buckets[second % len(buckets)] += 1
        return sum(buckets)


class Admission:
    def __init__(
        self,
        what: str,
        concurrency: int,
        backlog: int,
        max_wait: float = float("inf"),
        load: LoopLoad = NO_LOAD,
    ) -> None:
        self._what = what
        self._concurrency = concurrency
        self._backlog = backlog
        self._max_wait = max_wait
        self._load = load
        self._running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._open_seconds = 0.01  # moving average of an admitted open's duration
        self._refused = _RecentCount(_OUTSIDE_SECONDS)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self) -> float:
        """Waits for a place (in order) and takes it; its start time, for `leave`.
        SERVER_BUSY at once when the backlog is full."""
        if self._running < self._concurrency and not self._waiting:
            self._running += 1
            return time.monotonic()
        if (
            len(self._waiting) >= self._backlog
            or self._wait_for(1) > self._max_wait
            or self._load.overloaded
        ):
            raise self._busy()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # the place is handed over by leave (running stays counted)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._pass_on()  # handed a place just as it went: pass it on
            else:
                self._waiting.remove(turn)
            raise
        return time.monotonic()

    def leave(self, entered: float) -> None:
        """Gives the place taken at `entered` back (to the next in line, if any)."""
        elapsed = time.monotonic() - entered
        self._open_seconds += _SMOOTHING * (elapsed - self._open_seconds)
        self._pass_on()

    def _pass_on(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._running -= 1

    def _wait_for(self, more: int) -> float:
        """About how long the last of `more` new waiters would wait for its turn."""
        return (len(self._waiting) + more) / self._concurrency * self._open_seconds

    def _busy(self) -> ResourceExhausted:
        # Clients refused in the last seconds are still to come back: they queue too.
        outside = self._refused.add(time.monotonic())
        ahead = self._wait_for(self._running + outside)
        delay = min(max(ahead, MIN_RETRY_SECONDS) * random.uniform(1.0, 2.0), MAX_RETRY_SECONDS)  # noqa: S311
        return ResourceExhausted(
            f"the server is busy {self._what}; retry after the delay given",
            SERVER_BUSY,
            retry_after=timedelta(seconds=round(delay, 3)),
            metadata={"running": str(self._running), "waiting": str(len(self._waiting))},
        )
