"""A provider stream read ahead of its consumer, text deltas merged while the consumer is busy.

The provider stream is read in a task of its own (the producer) for as long as the consumer
iterates; what it reads waits in a short queue, where a text delta arriving behind another
one that is still waiting is appended to it. So while a chat stream's previous event is
still being written (or the server is too busy to write it yet), the deltas that arrive in
the meantime go out as one event, and a server that falls behind sends fewer, larger events
instead of falling further behind. When the consumer keeps up, every delta goes out as it
came: there is no timer, so nothing waits for company. (A provider whose SDK parses several
deltas out of one network read hands them over back to back; they merge too.)

Only when the whole event loop is over its load target (server/core/loop_load.py) does a
delta sent wait the load's `hold` before the next is taken, so that the deltas arriving
meanwhile go out together: an overloaded server sends fewer, larger events for the same
text, and its streams keep their pace.

The whole provider stream, opening and closing included, runs in the producer task: SDK
streams that enter anyio cancel scopes must leave them in the task that entered them. When
the consumer stops early (closed, cancelled), the producer is cancelled at once, which
closes the provider stream in the producer's next step. It is not awaited: the consumer's
own close must not wait (a generator being closed that awaits is "already running" to
whoever else closes it, as a chat's call_ended does). `stops` can end the stream from
outside (a chat's CancelAnswer): what was read and not yet taken is dropped, the producer
is cancelled the same way, and the consumer raises the error given before its next event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from server.core.loop_load import NO_LOAD, LoopLoad
from server.llm.base import ProviderEvent, TextDelta

Stop = Callable[[BaseException], None]
"""Ends a coalesced stream from outside: the consumer raises the exception given."""
Stops = Callable[[Stop], Callable[[], None]]
"""Watches for a reason to stop (calling the `Stop` it is given); returns the function
that ends the watch."""


class _Text:
    """Deltas waiting to go out as one; joined once, when it is taken (a delta nothing was
    merged into goes out as it came)."""

    __slots__ = ("first", "parts")

    def __init__(self, first: TextDelta) -> None:
        self.first = first
        self.parts: list[str] | None = None

    def append(self, text: str) -> None:
        if self.parts is None:
            self.parts = [self.first.text]
        self.parts.append(text)

    def taken(self) -> TextDelta:
        return self.first if self.parts is None else TextDelta("".join(self.parts))


class _Ahead:
    """What the producer has read and the consumer not yet taken."""

    __slots__ = ("ended", "failure", "queue", "waiter")

    def __init__(self) -> None:
        # A list, not a deque: it holds one or two items (text deltas merge), and an empty
        # deque costs 760 bytes per open stream, a list 56.
        self.queue: list[ProviderEvent | _Text] = []
        self.waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.failure: BaseException | None = None

    def put(self, event: ProviderEvent) -> None:
        if self.ended:  # stopped from outside while the provider was answering
            return
        queue = self.queue
        if type(event) is TextDelta:
            if queue and type(last := queue[-1]) is _Text:
                last.append(event.text)
                return
            queue.append(_Text(event))
        else:
            queue.append(event)
        self._wake()

    def end(self, failure: BaseException | None) -> None:
        if self.ended:  # stopped from outside first: that is how it ends
            return
        self.ended = True
        self.failure = failure
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def _produce(stream: AsyncGenerator[ProviderEvent, None], ahead: _Ahead) -> None:
    try:
        async with aclosing(stream):
            async for event in stream:
                ahead.put(event)
    except asyncio.CancelledError:
        ahead.end(None)  # the consumer stopped it
        raise
    except BaseException as failure:
        ahead.end(failure)
    else:
        ahead.end(None)


async def coalesced(
    stream: AsyncGenerator[ProviderEvent, None],
    load: LoopLoad = NO_LOAD,
    stops: Stops | None = None,
) -> AsyncGenerator[ProviderEvent, None]:
    """`stream`'s events in order, runs of text deltas the consumer was not ready for (or,
    under `load`, that arrived within its hold) merged into one; the stream's failure is
    raised here after the events before it, a stop's error before the next event."""
    ahead = _Ahead()
    queue = ahead.queue
    loop = asyncio.get_running_loop()
    producer = loop.create_task(_produce(stream, ahead), name="provider-stream")

    def stop(error: BaseException) -> None:
        if not ahead.ended:
            queue.clear()
            ahead.end(error)
            producer.cancel()

    unwatch = stops(stop) if stops is not None else None
    try:
        while True:
            if queue:
                item = queue.pop(0)
                if type(item) is _Text:
                    yield item.taken()
                    if hold := load.hold:
                        await asyncio.sleep(hold)
                else:
                    yield item  # type: ignore[misc]  # (not a _Text, so a ProviderEvent)
            elif ahead.ended:
                break
            else:
                ahead.waiter = loop.create_future()
                try:
                    await ahead.waiter
                finally:
                    ahead.waiter = None
        if ahead.failure is not None:
            raise ahead.failure
    finally:
        if unwatch is not None:
            unwatch()
        if producer.done():
            _retrieve(producer)
        else:
            producer.cancel()
            producer.add_done_callback(_retrieve)


def _retrieve(producer: asyncio.Task[None]) -> None:
    """Its failure, if any, was raised to the consumer (or nobody is left to tell)."""
    if not producer.cancelled():
        producer.exception()
