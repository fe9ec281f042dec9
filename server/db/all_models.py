"""Imports every model module so Base.metadata knows every table (Alembic, schema tests)."""

# Service packages add their model modules below as they land.
from server.db import (
    agent_models,  # noqa: F401
    artifact_models,  # noqa: F401
    build_models,  # noqa: F401
    catalog_models,  # noqa: F401
    deployment_models,  # noqa: F401
    idempotency_models,  # noqa: F401
    limit_models,  # noqa: F401
    models,  # noqa: F401
    provider_key_models,  # noqa: F401
    run_models,  # noqa: F401
    sandbox_models,  # noqa: F401
)
