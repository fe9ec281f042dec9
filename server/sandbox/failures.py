"""What a client sees when a sandbox cannot be used: backend failures turned into domain
errors, and the state checks every sandbox operation makes."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.errors import (
    FailedPrecondition,
    ForgeError,
    NotFound,
    QuotaViolation,
    ResourceExhausted,
    Unavailable,
)
from server.db.sandbox_models import SandboxRow
from server.sandbox import store
from server.sandbox.backend import (
    WORKSPACE,
    BackendError,
    BackendUnavailable,
    ContainerGone,
    ContainerNotRunning,
    ContainerPaused,
    NoSpace,
    ResourceLimit,
)

log = logging.getLogger(__name__)

BACKEND_UNAVAILABLE = "SANDBOX_BACKEND_UNAVAILABLE"


def backend_unavailable() -> Unavailable:
    return Unavailable(
        "the sandbox backend (Docker engine) is unavailable",
        BACKEND_UNAVAILABLE,
        retry_after=timedelta(seconds=30),
    )


def host_unavailable(sandbox_id: str) -> Unavailable:
    """The sandbox's Docker host does not answer (others may: new sandboxes go there)."""
    return Unavailable(
        "the Docker host this sandbox runs on is unavailable",
        "SANDBOX_HOST_UNAVAILABLE",
        retry_after=timedelta(seconds=30),
        metadata={"sandbox_id": sandbox_id},
    )


def hosts_full(memory_bytes: int) -> ResourceExhausted:
    """No answering Docker host has the memory a new sandbox asks for left."""
    return ResourceExhausted(
        f"no Docker host has {memory_bytes // (1024 * 1024)} MiB of memory free for another "
        "sandbox; delete one or ask for less",
        "SANDBOX_HOSTS_FULL",
        quota_violations=[
            QuotaViolation("sandbox.limits.memory_bytes", "more than any host has free")
        ],
        retry_after=timedelta(seconds=30),
    )


def execution_lost() -> Unavailable:
    """An execution's stream failed for a reason of ours (a bug), not the engine's."""
    return Unavailable("the execution was lost", "SANDBOX_EXECUTION_LOST")


def sandbox_not_found() -> NotFound:
    return NotFound("sandbox not found", "SANDBOX_NOT_FOUND")


def sid(row: SandboxRow | None) -> dict[str, str]:
    return {"sandbox_id": str(row.id)} if row is not None else {}


def require_state(row: SandboxRow, allowed: tuple[str, ...]) -> None:
    if row.state in allowed:
        return
    if row.state == "paused":
        raise FailedPrecondition(
            "the sandbox is paused; resume it first", "SANDBOX_PAUSED", metadata=sid(row)
        )
    if row.state == "lost":
        # The same answer as when a call is the first to find the container gone.
        raise FailedPrecondition(
            "the sandbox's container is gone"
            + (f" ({row.state_message})" if row.state_message else ""),
            "SANDBOX_LOST",
            metadata={**sid(row), "state": row.state},
        )
    raise FailedPrecondition(
        f"the sandbox is {row.state}" + (f" ({row.state_message})" if row.state_message else ""),
        "SANDBOX_NOT_RUNNING",
        metadata={**sid(row), "state": row.state},
    )


async def failure(
    sessions: async_sessionmaker[AsyncSession], error: BackendError, row: SandboxRow | None = None
) -> ForgeError:
    """The error a client sees for a backend failure; a vanished container marks its
    sandbox lost."""
    if isinstance(error, BackendUnavailable):
        return backend_unavailable()
    if isinstance(error, ContainerGone | ContainerNotRunning):
        if row is not None:
            async with sessions() as db:
                why = (
                    "container vanished"
                    if isinstance(error, ContainerGone)
                    else ("container stopped")
                )
                await store.set_state(db, row.id, "lost", why)
                await db.commit()
        return FailedPrecondition(
            "the sandbox's container is gone", "SANDBOX_LOST", metadata=sid(row)
        )
    if isinstance(error, ContainerPaused):
        return FailedPrecondition("the sandbox is paused", "SANDBOX_PAUSED", metadata=sid(row))
    if isinstance(error, NoSpace):
        return ResourceExhausted(
            f"no space left in {WORKSPACE}",
            "SANDBOX_DISK_FULL",
            quota_violations=[QuotaViolation("sandbox.limits.disk_bytes", "the workspace is full")],
        )
    if isinstance(error, ResourceLimit):
        return ResourceExhausted(
            "the sandbox has no process slot left",
            "SANDBOX_PIDS_EXHAUSTED",
            quota_violations=[QuotaViolation("sandbox.limits.pids", "process limit reached")],
        )
    log.warning("sandbox backend error", extra={"error": str(error)})
    return Unavailable("the sandbox backend failed; try again", "SANDBOX_BACKEND_ERROR")
