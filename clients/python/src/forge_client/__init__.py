"""Forge's Python client.

    from forge_client import AsyncForge, Forge, ForgeError, projects

`AsyncForge` (grpclib) and `Forge` (grpcio) hold the connection and the credentials; their
`auth`, `projects`, `agents`, `sandbox`, `artifacts` and `deployments` attributes are the
typed stubs of the six services, whose messages live in the modules of the same names."""

from forge_client._policy import RetryPolicy
from forge_client._proto.forge.agents import v1 as agents
from forge_client._proto.forge.artifacts import v1 as artifacts
from forge_client._proto.forge.auth import v1 as auth
from forge_client._proto.forge.deployments import v1 as deployments
from forge_client._proto.forge.projects import v1 as projects
from forge_client._proto.forge.sandbox import v1 as sandbox
from forge_client.aio import AsyncForge
from forge_client.credentials import Credentials, Tokens
from forge_client.errors import Code, FieldViolation, ForgeError, QuotaViolation
from forge_client.streams import kind
from forge_client.sync import Forge

__all__ = [
    "AsyncForge",
    "Code",
    "Credentials",
    "FieldViolation",
    "Forge",
    "ForgeError",
    "QuotaViolation",
    "RetryPolicy",
    "Tokens",
    "agents",
    "artifacts",
    "auth",
    "deployments",
    "kind",
    "projects",
    "sandbox",
]
