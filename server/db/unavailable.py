"""Telling "the database cannot be reached" apart from a bug.

A connection refused, lost mid-call or not handed out by the pool in time is the
database's state, not the server's fault: the call ends UNAVAILABLE DATABASE_UNAVAILABLE
with a RetryInfo, and health follows the database (server/db/health.py). Only the
exception path looks here; a call that succeeds never does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import TracebackType

import asyncpg
from sqlalchemy import exc

from server.core.errors import Unavailable

DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
RETRY_AFTER = timedelta(seconds=1)

_DRIVER_MODULES = ("asyncpg", "sqlalchemy")
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    exc.DisconnectionError,
    exc.TimeoutError,  # the pool handed out no connection in time
)
_CLOSED_MESSAGES = ("connection is closed", "connection was closed", "underlying connection")


def database_unavailable(cause: BaseException | None = None) -> Unavailable:
    error = Unavailable(
        "the database is unavailable; retry shortly", DATABASE_UNAVAILABLE, retry_after=RETRY_AFTER
    )
    error.__cause__ = cause
    return error


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what caused it (the driver's error under SQLAlchemy's, and so on)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(
            cause
            for cause in (
                current.__cause__,
                current.__context__,
                getattr(current, "orig", None),
            )
            if isinstance(cause, BaseException)
        )


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says the database cannot be reached."""
    return any(_is_connection_error(cause) for cause in causes(error))


def is_unstorable_text(error: BaseException) -> bool:
    """Whether `error` is PostgreSQL refusing a text value (a NUL character) no check caught."""
    return any(
        isinstance(cause, asyncpg.exceptions.CharacterNotInRepertoireError)
        for cause in causes(error)
    )


def _is_connection_error(error: BaseException) -> bool:
    if isinstance(error, _CONNECTION_ERRORS):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, exc.OperationalError):
            return True
        return isinstance(error, exc.InterfaceError) and _says_closed(error)
    if isinstance(error, asyncpg.InterfaceError):  # raw driver (the read lane)
        return _says_closed(error)
    # Connection refused, reset, or a connect timeout: an OSError, but only the driver's
    # (a file the server failed to write is a bug of ours, not the database's state).
    return isinstance(error, OSError) and _raised_in_driver(error.__traceback__)


def _says_closed(error: BaseException) -> bool:
    # An InterfaceError also means misuse ("another operation is in progress"): only a
    # closed connection counts.
    message = str(error)
    return any(text in message for text in _CLOSED_MESSAGES)


def _raised_in_driver(traceback: TracebackType | None) -> bool:
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False
