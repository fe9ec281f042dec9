"""The server's shutdown signal: triggered a little before the grace period of a stopping
server runs out, so that streams still open end with their terminal `error` event
(UNAVAILABLE, SERVER_SHUTTING_DOWN) while there is still time to send it, instead of being
cut off by grpc's "Cancelling all calls".

ForgeServer owns one and binds it (`serving_under`) while its grpc server starts: the calls
it serves run in copies of that context, so `server_stream` finds it (`current_shutdown`)
without every servicer being handed it. Several servers in one process (tests) each have
their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from server.core.errors import Unavailable

SERVER_SHUTTING_DOWN = "SERVER_SHUTTING_DOWN"


def server_shutting_down() -> Unavailable:
    return Unavailable(
        "the server is shutting down; try again",
        SERVER_SHUTTING_DOWN,
        retry_after=timedelta(seconds=1),
    )


class ShutdownSignal:
    """Triggered once; listeners are called at that moment (in the event loop's thread)."""

    def __init__(self) -> None:
        self._triggered = False
        self._listeners: set[Callable[[], None]] = set()

    @property
    def triggered(self) -> bool:
        return self._triggered

    def trigger(self) -> None:
        if self._triggered:
            return
        self._triggered = True
        listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Calls `listener` when the signal is triggered (not if it already was); returns
        what stops listening."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)


_current: ContextVar[ShutdownSignal | None] = ContextVar("forge_shutdown", default=None)


def current_shutdown() -> ShutdownSignal | None:
    """The signal of the server serving this call; None outside one (e.g. unit tests)."""
    return _current.get()


@contextmanager
def serving_under(signal: ShutdownSignal) -> Iterator[None]:
    """Binds `signal` for what starts in this block (tasks created copy the binding)."""
    token = _current.set(signal)
    try:
        yield
    finally:
        _current.reset(token)
