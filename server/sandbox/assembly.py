"""Builds the Sandbox service from the settings: what `wire()` binds and registers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.pagination import PageTokens
from server.projects.cleanup import ProjectDeletionHook
from server.sandbox.manager import SandboxManager
from server.sandbox.service import SERVICE_NAME, SandboxService


@dataclass(frozen=True)
class SandboxParts:
    servicer: SandboxService
    project_cleanup: ProjectDeletionHook
    """For `Dependencies.project_hooks`: a deleted project's sandboxes end with it."""
    lifecycle: SandboxManager
    """For `background`: connects to Docker (or keeps trying), reconciles, runs the warm
    pool and the reaper; `stop()` removes the warm pool and leaves sandboxes running."""
    service_name: str
    """The health service name that follows Docker's availability (see `follow_health`)."""

    def follow_health(self, set_serving: Callable[[bool], Awaitable[None]]) -> None:
        """Calls `set_serving(available)` now and whenever Docker comes or goes."""
        self.lifecycle.add_availability_listener(set_serving)


def build_sandbox(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], pages: PageTokens
) -> SandboxParts:
    manager = SandboxManager(settings, sessions)
    return SandboxParts(
        servicer=SandboxService(manager, pages),
        project_cleanup=manager.project_deletion_hook,
        lifecycle=manager,
        service_name=SERVICE_NAME,
    )
