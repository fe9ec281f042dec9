"""Server streams: what Chat, Exec, RunCode (and WatchRun) share.

Every event message carries a `seq` (1, 2, 3 … unless the source brings its own), and a
stream that fails ends with an in-band `error` event before the call ends with the same
status, because REST clients reading SSE through Envoy cannot see gRPC trailers. When the
call ends early (client gone, deadline passed), the source is closed at once, not whenever
the garbage collector finalises it, so work behind it (a provider stream, a process) stops
and is recorded now.

When the server stops, its shutdown signal (server/core/shutdown.py) ends every stream
still open a little before the grace period runs out: the source is interrupted (cancelled
where it waits, or closed before its next event is asked for) and the stream ends with an
in-band `error` UNAVAILABLE SERVER_SHUTTING_DOWN, then the call with that status.

    async with server_stream(source, convert.event, convert.error_event) as messages:
        async for message in messages:
            yield message
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Generic, TypeVar

from server.core.errors import ForgeError, Unavailable
from server.core.shutdown import ShutdownSignal, current_shutdown, server_shutting_down
from server.db.unavailable import database_unavailable, is_database_unavailable

log = logging.getLogger(__name__)

E = TypeVar("E")
M = TypeVar("M")

ToMessage = Callable[[E, int], M]
"""Builds the event message for a domain event and its seq."""
ErrorMessage = Callable[[ForgeError, int], M]
"""Builds the terminal `error` event message for a failure and its seq."""


def stream_lost() -> ForgeError:
    return Unavailable("the stream was lost", "STREAM_LOST")


async def numbered(
    source: AsyncGenerator[E, None],
    to_message: ToMessage[E, M],
    error_message: ErrorMessage[M],
    *,
    lost: Callable[[], ForgeError] = stream_lost,
) -> AsyncGenerator[M, None]:
    """The source's events as messages numbered from 1; a failure becomes a last `error`
    event and then ends the call with the same status (the database out of reach:
    DATABASE_UNAVAILABLE; a bug: `lost()`, logged), and so does the server's shutdown
    (SERVER_SHUTTING_DOWN)."""
    seq = 0
    reader = _Reader(source, current_shutdown())
    try:
        async with aclosing(source):
            with reader:
                while await reader.advance():
                    seq += 1
                    yield to_message(reader.event, seq)
    except ForgeError as error:
        yield error_message(error, seq + 1)
        raise
    except Exception as error:
        failure: ForgeError
        if is_database_unavailable(error):
            failure = database_unavailable(cause=error)  # logged by the call interceptor
        else:
            log.exception("server stream failed")
            failure = lost()
        yield error_message(failure, seq + 1)
        raise failure from error


class _Reader(Generic[E]):
    """Reads the source's next event, unless the shutdown signal came first.

    Racing every event against the signal in a task of its own would cost a task per
    event; instead, when the signal comes while the call's task waits inside the source,
    that task is cancelled (the source sees what a client going away makes it see), and
    the cancellation is taken back and turned into SERVER_SHUTTING_DOWN here. When it comes
    while the event is being sent, the stream ends before the next one is asked for."""

    __slots__ = (
        "_interrupted",
        "_shutdown",
        "_source",
        "_stop_listening",
        "_task",
        "_waiting",
        "event",
    )

    def __init__(self, source: AsyncGenerator[E, None], shutdown: ShutdownSignal | None) -> None:
        self._source = source
        self._shutdown = shutdown
        self._task: asyncio.Task[object] | None = None
        """The call's task, which reads every event (looked up once, not per event)."""
        self._waiting = False
        """Whether the task is inside the source, waiting for its next event."""
        self._interrupted = False
        self._stop_listening: Callable[[], None] | None = None
        self.event: E

    def __enter__(self) -> None:
        self._task = asyncio.current_task()
        if self._shutdown is not None:
            self._stop_listening = self._shutdown.listen(self._interrupt)

    def __exit__(self, *exc_info: object) -> None:
        if self._stop_listening is not None:
            self._stop_listening()

    def _interrupt(self) -> None:
        if self._waiting and self._task is not None:
            self._interrupted = True
            self._task.cancel("the server is shutting down")

    async def advance(self) -> bool:
        """Whether there is a next event (in `self.event`); raises SERVER_SHUTTING_DOWN
        once the signal has come."""
        if self._shutdown is not None and self._shutdown.triggered:
            raise server_shutting_down()
        self._waiting = True
        try:
            self.event = await anext(self._source)
        except StopAsyncIteration:
            if self._interrupted:
                self._take_back()
                raise server_shutting_down() from None
            return False
        except BaseException as error:
            if self._interrupted:
                self._take_back()
                raise server_shutting_down() from error
            raise
        finally:
            self._waiting = False
        if self._interrupted:  # the source swallowed the cancellation: send its event
            self._take_back()
        return True

    def _take_back(self) -> None:
        self._interrupted = False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()


def server_stream(
    source: AsyncGenerator[E, None],
    to_message: ToMessage[E, M],
    error_message: ErrorMessage[M],
    *,
    lost: Callable[[], ForgeError] = stream_lost,
) -> aclosing[AsyncGenerator[M, None]]:
    """`numbered(...)`, closed (and with it the source) when the block ends, however it
    ends. (A plain `aclosing`: a context-manager generator would hold ~800 bytes more for
    as long as each stream is open.)"""
    return aclosing(numbered(source, to_message, error_message, lost=lost))
