"""The service modules this server is made of, in build and start order."""

from __future__ import annotations

from server.agents import module as agents
from server.artifacts import module as artifacts
from server.auth import module as auth
from server.core.module import ModuleBuilder
from server.deployments import module as deployments
from server.projects import module as projects
from server.sandbox import module as sandbox

SERVICE_MODULES: tuple[ModuleBuilder, ...] = (
    auth.build,
    projects.build,
    agents.build,
    sandbox.build,
    artifacts.build,
    deployments.build,
)
