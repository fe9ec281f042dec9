"""Settings of worker processes (FORGE_WORKERS); Settings inherits them."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class WorkerSettings(BaseSettings):
    # --- sandbox host duties (owned by server/sandbox) ---------------------------------
    sandbox_host_id: str = Field(
        "",
        max_length=200,
        description="this Docker engine's id in the database (sandbox rows and the host "
        "lease); empty: '<sandbox_namespace>@<the engine's ID from docker info>'",
    )
    sandbox_host_lease_seconds: float = Field(
        15.0,
        gt=0,
        le=600,
        description="how long a process holds a Docker host's duties (reconciliation, reaper, "
        "warm pool, container ends) and its executions without renewing; renewed every third "
        "of it, and taken over by another process once it expires",
    )
