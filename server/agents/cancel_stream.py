"""An answer's provider stream that CancelAnswer can stop (cancel_answer.py).

Racing every delta against the cancel in a task of its own would cost a task per delta;
instead (as server/core/streaming.py does for shutdown), when the cancel comes while the
stream's task waits inside the provider, that task is cancelled, and the cancellation is
taken back here and turned into `Cancelled` (ANSWER_CANCELLED). When it comes while a delta
is being sent, the stream stops before the next one is asked for. Either way the provider
stream is closed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TypeVar

from server.agents.cancel_answer import ANSWER
from server.core.cancels import Cancels
from server.core.errors import Cancelled

E = TypeVar("E")


def answer_cancelled() -> Cancelled:
    return Cancelled("the answer was cancelled", "ANSWER_CANCELLED")


class _Stop:
    __slots__ = ("interrupted", "requested", "task")

    def __init__(self) -> None:
        self.requested = False
        self.interrupted = False
        self.task: asyncio.Task[object] | None = None

    def fire(self) -> None:
        self.requested = True
        if self.task is not None and not self.interrupted:
            self.interrupted = True
            self.task.cancel("the answer was cancelled")

    def take_back(self) -> bool:
        """Whether the task's cancellation was ours (then it is undone)."""
        if not self.interrupted:
            return False
        self.interrupted = False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True


async def stoppable(
    stream: AsyncGenerator[E, None], cancels: Cancels | None, message_id: uuid.UUID
) -> AsyncGenerator[E, None]:
    """`stream`'s events until it ends, or until the answer is cancelled (then raises
    `Cancelled`)."""
    async with aclosing(stream):
        if cancels is None:
            async for event in stream:
                yield event
            return
        stop = _Stop()
        unwatch = cancels.watch(ANSWER, message_id, stop.fire)
        try:
            while True:
                if stop.requested:
                    raise answer_cancelled()
                stop.task = asyncio.current_task()
                try:
                    event = await anext(stream)
                except StopAsyncIteration:
                    if stop.take_back():
                        raise answer_cancelled() from None
                    return
                except asyncio.CancelledError:
                    if stop.take_back():
                        raise answer_cancelled() from None
                    raise
                finally:
                    stop.task = None
                if stop.take_back():  # the provider swallowed the cancellation
                    raise answer_cancelled()
                yield event
        finally:
            unwatch()
