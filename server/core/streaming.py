"""Server streams: what Chat, Exec, RunCode (and WatchRun) share.

Every event message carries a `seq` (1, 2, 3 … unless the source brings its own), and a
stream that fails ends with an in-band `error` event before the call ends with the same
status, because REST clients reading SSE through Envoy cannot see gRPC trailers. When the
call ends early (client gone, deadline passed), the source is closed at once, not whenever
the garbage collector finalises it, so work behind it (a provider stream, a process) stops
and is recorded now.

    async with server_stream(source, convert.event, convert.error_event) as messages:
        async for message in messages:
            yield message
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import TypeVar

from server.core.errors import ForgeError, Unavailable

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
    event and then ends the call with the same status (a bug: `lost()`, logged)."""
    seq = 0
    try:
        async with aclosing(source) as events:
            async for event in events:
                seq += 1
                yield to_message(event, seq)
    except ForgeError as error:
        yield error_message(error, seq + 1)
        raise
    except Exception as error:
        log.exception("server stream failed")
        failure = lost()
        yield error_message(failure, seq + 1)
        raise failure from error


@asynccontextmanager
async def server_stream(
    source: AsyncGenerator[E, None],
    to_message: ToMessage[E, M],
    error_message: ErrorMessage[M],
    *,
    lost: Callable[[], ForgeError] = stream_lost,
) -> AsyncIterator[AsyncGenerator[M, None]]:
    """`numbered(...)`, closed (and with it the source) when the block ends, however it
    ends."""
    async with aclosing(numbered(source, to_message, error_message, lost=lost)) as messages:
        yield messages
