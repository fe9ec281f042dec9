"""Following the Docker engine's event stream for the ends of managed containers.

The SDK's `events()` generator blocks, so one thread reads it and hands each event to the
event loop; closing the stream (its HTTP response) is what makes that thread return. The
thread is one of its own, not one of the loop's default executor: a stream is followed for
the server's whole life, and a few of them (one per Docker host and server) would otherwise
take every thread of that small pool and stall every other `asyncio.to_thread` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

import docker
from server.sandbox.backend import LABEL_MANAGED, LABEL_NAMESPACE, BackendError

# A container stopping ("die") or being removed ("destroy"). An "oom" event alone is not an
# end: the kernel may kill one process and leave the container running (its end is a "die").
_ENDS = ("die", "destroy")
_DONE = object()
STOP_SECONDS = 5.0  # for the pump's thread to notice its stream was closed


async def container_ends(api: docker.APIClient, namespace: str) -> AsyncGenerator[str, None]:
    """The id of every managed container of `namespace` that stops or is removed, as it
    happens; returns when the engine closes the stream, raises BackendError if it fails."""
    filters = {
        "type": ["container"],
        "event": list(_ENDS),
        "label": [f"{LABEL_MANAGED}=true", f"{LABEL_NAMESPACE}={namespace}"],
    }
    try:
        stream = await asyncio.to_thread(api.events, decode=True, filters=filters)
    except Exception as error:
        raise BackendError(f"cannot follow the Docker engine's events: {error}") from error
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def hand_over(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for event in stream:
                hand_over(event)
        except Exception as error:  # the stream was closed or the engine went away
            hand_over(error)
        finally:
            hand_over(_DONE)

    reader = threading.Thread(target=pump, name=f"docker-events {namespace}", daemon=True)
    reader.start()
    pump_done = False
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                pump_done = True
                return
            if isinstance(item, Exception):
                raise BackendError(f"the Docker event stream failed: {item}") from item
            container_id = _container_id(item)
            if container_id:
                yield container_id
    finally:
        # Closing the response ends the blocking read in the pump's thread, which then says
        # it is done (unless it already has).
        with contextlib.suppress(Exception):
            stream.close()
        if not pump_done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_until_done(queue), STOP_SECONDS)


async def _until_done(queue: asyncio.Queue[Any]) -> None:
    while await queue.get() is not _DONE:
        pass


def _container_id(event: Any) -> str:
    if not isinstance(event, dict) or event.get("Type", "container") != "container":
        return ""
    if event.get("Action", event.get("status")) not in _ENDS:
        return ""
    actor = event.get("Actor") or {}
    return str(actor.get("ID") or event.get("id") or "")
