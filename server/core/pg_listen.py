"""One PostgreSQL connection kept listening on channels (LISTEN/NOTIFY): reconnected with
backoff when it cannot connect or is lost, and pinged so that a silently dead connection is
noticed. Used by runs' notifications and by cancels; notifications sent while it was down
are lost, so each user re-reads what matters when `on_listening` runs again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 10.0
PING_SECONDS = 10.0
"""How often an idle listening connection is checked (a dead one gets no notifications)."""
PING_TIMEOUT_SECONDS = 5.0

Listener = Callable[[Any, int, str, str], None]
"""asyncpg's notification callback: (connection, pid, channel, payload)."""


async def keep_listening(
    dsn: str,
    name: str,
    channels: Mapping[str, Listener],
    on_listening: Callable[[Any], None],
    on_lost: Callable[[], None],
    application_name: str = "",
) -> None:
    """Runs until cancelled. `on_listening(connection)` runs each time the channels are
    listened to (again); `on_lost()` each time the connection is gone."""
    delay = FIRST_RETRY_SECONDS
    settings = {"application_name": application_name} if application_name else None
    while True:
        try:
            connection = await asyncpg.connect(dsn, server_settings=settings)
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            log.warning(
                f"{name}: cannot connect; retrying",
                extra={"error": str(error), "retry_seconds": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
            continue
        delay = FIRST_RETRY_SECONDS
        try:
            await _serve(connection, channels, on_listening)
            log.warning(f"{name}: connection lost")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            log.warning(f"{name}: connection lost", extra={"error": str(error)})
        finally:
            on_lost()
            with contextlib.suppress(Exception):
                connection.terminate()
        await asyncio.sleep(FIRST_RETRY_SECONDS)


async def _serve(
    connection: Any, channels: Mapping[str, Listener], on_listening: Callable[[Any], None]
) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    for channel, listener in channels.items():
        await connection.add_listener(channel, listener)
    on_listening(connection)
    while not lost.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), PING_SECONDS)
        if not lost.is_set():
            await asyncio.wait_for(connection.execute("SELECT 1"), PING_TIMEOUT_SECONDS)
