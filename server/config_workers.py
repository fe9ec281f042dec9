"""Settings of worker processes (FORGE_WORKERS); Settings inherits them."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings


class WorkerSettings(BaseSettings):
    # --- sandbox host duties (owned by server/sandbox) ---------------------------------
    sandbox_host_id: str = Field(
        "",
        max_length=200,
        description="this Docker engine's id in the database (sandbox rows and the host "
        "lease), with one engine only; empty: '<sandbox_namespace>@<the engine's ID from "
        "docker info>', followed by its data root when that is not /var/lib/docker",
    )
    sandbox_host_lease_seconds: float = Field(
        15.0,
        gt=0,
        le=600,
        description="how long a process holds a Docker host's duties (reconciliation, reaper, "
        "warm pool, container ends) and its executions without renewing; renewed every third "
        "of it, and taken over by another process once it expires",
    )
    process_lease_seconds: float = Field(
        15.0,
        gt=0,
        le=600,
        description="how long a server process's concurrency places (open streams, running "
        "executions: counted across every process) outlive it if it dies without giving "
        "them back; renewed every third of it",
    )
    # --- worker processes (server/workers.py) -----------------------------------------
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="server processes serving one port (SO_REUSEPORT), each with its own event "
        "loop, under a supervisor that starts the embedded database and runs migrations once "
        "and replaces a worker that exits; 1: a single process; default: the number of cores",
    )
    worker_index: int | None = Field(
        None,
        ge=0,
        description="internal: set by the supervisor in the processes it starts (their port is "
        "shared and their log lines carry it as 'worker')",
    )
    worker_restart_max_seconds: float = Field(
        30.0,
        gt=0,
        description="longest wait before a worker that keeps failing is started again (a "
        "worker that served a while, or exited cleanly, is replaced at once; each quick failure "
        "doubles the wait from half a second)",
    )
