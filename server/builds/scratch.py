"""A sandbox made for one build and removed after it, however the build ends: finished,
failed, its event stream closed early, or its task cancelled (even while the sandbox is
still being created)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

from server.core.context import Caller
from server.core.ports import ScratchSandboxPort

log = logging.getLogger(__name__)

RUNTIME = "node"

# Removals that outlive the build that started them (it was cancelled): kept referenced
# until they end.
_removals: set[asyncio.Task[None]] = set()


@asynccontextmanager
async def scratch_sandbox(
    port: ScratchSandboxPort, caller: Caller, project_id: uuid.UUID
) -> AsyncIterator[uuid.UUID]:
    creating = asyncio.ensure_future(port.create_sandbox(caller, project_id, RUNTIME))
    try:
        sandbox_id = await asyncio.shield(creating)
    except asyncio.CancelledError:
        _in_background(_remove_once_created(port, caller, creating))
        raise
    try:
        yield sandbox_id
    finally:
        removal = _in_background(_remove(port, caller, sandbox_id))
        # Cancelled here, the removal still ends in the background.
        await asyncio.shield(removal)


def _in_background(work: Awaitable[None]) -> asyncio.Task[None]:
    task = asyncio.ensure_future(work)
    _removals.add(task)
    task.add_done_callback(_removals.discard)
    return task


async def _remove_once_created(
    port: ScratchSandboxPort, caller: Caller, creating: asyncio.Future[uuid.UUID]
) -> None:
    try:
        sandbox_id = await creating
    except Exception:  # nothing was created, so nothing to remove
        return
    await _remove(port, caller, sandbox_id)


async def _remove(port: ScratchSandboxPort, caller: Caller, sandbox_id: uuid.UUID) -> None:
    """Never raises: a sandbox left behind ends at its idle time-to-live anyway."""
    try:
        await port.delete_sandbox(caller, sandbox_id)
    except Exception as error:
        log.warning(
            "could not remove a build's sandbox",
            extra={"sandbox_id": str(sandbox_id), "error": str(error)},
        )
