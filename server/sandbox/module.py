"""Builds SandboxService: Docker sandboxes, their files and executions.

Its health follows Docker's availability; it offers a project-deletion hook (a deleted
project's sandboxes end with it)."""

from __future__ import annotations

from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.module import BuildContext, ServiceModule
from server.sandbox.manager import SandboxManager
from server.sandbox.service import SandboxService


def build(ctx: BuildContext) -> ServiceModule:
    manager = SandboxManager(ctx.settings, ctx.sessions)
    servicer = SandboxService(manager, ctx.page_tokens)
    return ServiceModule(
        name="sandbox",
        bindings=[ServiceBinding.of(sandbox_pb2, sandbox_pb2_grpc, "SandboxService", servicer)],
        # Connects to Docker (or keeps trying), reconciles, runs the warm pool and the
        # reaper; stopping removes the warm pool and leaves sandboxes running.
        background=[manager],
        offers=Offers(project_deletion=[manager.project_deletion_hook]),
        health=manager.add_availability_listener,
    )
