"""Killing what an execution leaves behind: every process in the container that carries its
marker (FORGE_EXEC_ID in the environment, inherited by every child), wherever it went (a new
session, a double fork); process groups alone do not hold such processes."""

from __future__ import annotations

import asyncio
import logging

from server.sandbox.backend import (
    BackendError,
    ContainerGone,
    ContainerNotRunning,
    ContainerPaused,
    ResourceLimit,
    SandboxBackend,
)

log = logging.getLogger(__name__)

MARKER = "FORGE_EXEC_ID"
# Run as the sandbox user, which owns every process there. A few rounds catch children
# forked while the previous round was killing.
_SCRIPT = r"""
for round in 1 2 3 4 5 6 7 8; do
  found=$(grep -l -s -z -x -F "FORGE_EXEC_ID=$1" /proc/[0-9]*/environ) || exit 0
  for file in $found; do
    pid=${file#/proc/}; kill -KILL "${pid%/environ}" 2>/dev/null
  done
done
"""
_ATTEMPTS = 40
_RETRY_SECONDS = 0.05


async def kill_leftovers(backend: SandboxBackend, container_id: str, marker: str) -> None:
    argv = ["/bin/sh", "-c", _SCRIPT, "sh", marker]
    for _ in range(_ATTEMPTS):
        try:
            await backend.run_helper(
                container_id, argv, env={MARKER: "cleanup"}, max_output=4096, timeout=30
            )
            return
        except ResourceLimit:  # no process slot for the clean-up itself yet
            await asyncio.sleep(_RETRY_SECONDS)
        except (ContainerGone, ContainerNotRunning, ContainerPaused):
            return
        except BackendError as error:
            log.warning("could not kill an execution's leftovers", extra={"error": str(error)})
            return
    log.warning("gave up killing an execution's leftovers")
