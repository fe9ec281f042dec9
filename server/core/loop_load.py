"""How loaded this process's event loop is, and how long streams should hold their events
to shed that load.

A sampler task wakes every `interval` seconds and measures, since its last wake-up, the share
of the time the loop's thread spent on the CPU (`busy`) and how late the wake-up itself came
(`lag`: a loop with a long queue of ready work, or a process starved of its core, wakes
everyone late). Each is smoothed over a few samples.

From them it sets `hold`: while the loop is busier than `busy_target` (or lags more than
LAG_LIMIT), streams that relay many small events (chat deltas) wait `hold` seconds after
sending one before sending the next, so that what arrives meanwhile goes out as one larger
event (server/llm/coalesce.py). The hold starts at MIN_HOLD, grows while the loop stays
over its target and shrinks once it is well under it, down to none: a server that keeps up
never holds an event. Fewer events for the same text is what lets an overloaded server keep
its streams' pace, and leaves the loop room to open new streams and answer other calls.

`overloaded` tells admission (server/core/admission.py) that the loop has no room left:
new work queued now would wait behind everything already running.
"""

from __future__ import annotations

import asyncio
import time

from server.core.tasks import TaskSupervisor

MIN_HOLD = 0.05
LAG_LIMIT = 0.05
"""A loop this late to wake a timer (smoothed) is over its target whatever its CPU share:
the process is short of its core, or its ready queue is this long."""
_GROW = 1.5
_SHRINK = 0.7
_UNDER = 0.15
"""How far under `busy_target` the loop must be before holds shrink (no flapping)."""
_SMOOTHING = 0.5


class LoopLoad:
    def __init__(self, busy_target: float, max_hold: float, interval: float = 0.25) -> None:
        self._busy_target = busy_target
        self._max_hold = max_hold
        self._interval = interval
        self.busy = 0.0
        """The loop thread's smoothed share of a core, 0 to 1."""
        self.lag = 0.0
        """The smoothed lateness of the sampler's wake-ups, in seconds."""
        self.hold = 0.0
        """How long a stream holds its next event after sending one; 0 when the loop keeps
        up."""
        self._tasks = TaskSupervisor("loop-load")

    @property
    def overloaded(self) -> bool:
        """Holding events as long as they may be held, and still over the target."""
        return self.hold >= self._max_hold and self._over()

    async def start(self) -> None:
        if self._max_hold <= 0:
            return  # holding is switched off: nothing to measure for
        self._tasks.spawn(self._sample(), name="sampler")

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._interval
        cpu, wall = time.thread_time(), loop.time()
        while True:
            await asyncio.sleep(interval)
            now_cpu, now_wall = time.thread_time(), loop.time()
            elapsed = now_wall - wall
            if elapsed > 0:
                self.observe((now_cpu - cpu) / elapsed, max(elapsed - interval, 0.0))
            cpu, wall = now_cpu, now_wall

    def observe(self, busy: float, lag: float) -> None:
        """One sample: the loop thread's CPU share and the sampler's lateness since the last."""
        self.busy += _SMOOTHING * (min(busy, 1.0) - self.busy)
        self.lag += _SMOOTHING * (lag - self.lag)
        if self._over():
            self.hold = min(max(self.hold * _GROW, MIN_HOLD), self._max_hold)
        elif self.busy < self._busy_target - _UNDER and self.lag < LAG_LIMIT / 2:
            shrunk = self.hold * _SHRINK
            self.hold = shrunk if shrunk >= MIN_HOLD else 0.0

    def _over(self) -> bool:
        return self.busy > self._busy_target or self.lag > LAG_LIMIT


NO_LOAD = LoopLoad(busy_target=1.0, max_hold=0.0)
"""A load that never holds (its sampler never starts): for code run without a server."""
