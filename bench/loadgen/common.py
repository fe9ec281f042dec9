"""Helpers shared by load generators (each runs as its own process and prints one JSON line)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
from collections.abc import Iterator
from typing import Any


def args() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    return parsed


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


@contextlib.contextmanager
def no_collections() -> Iterator[None]:
    """The load generator's garbage collector off while it measures a phase, collected after:
    with 2,000 streams open, its collections stopped its event loop for up to 90 ms, and the
    events arriving meanwhile were timed that much late."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


class LoopLag:
    """How late the load generator's own event loop wakes a timer, sampled every `every`
    seconds while it runs: what its own stalls may add to the times it measures."""

    def __init__(self, every: float = 0.002) -> None:
        self._every = every
        self.lags: list[float] = []
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def stop(self) -> None:
        self._task.cancel()

    async def _sample(self) -> None:
        every, lags = self._every, self.lags
        while True:
            started = time.perf_counter()
            await asyncio.sleep(every)
            lags.append(time.perf_counter() - started - every)
