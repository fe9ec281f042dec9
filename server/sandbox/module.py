"""Builds SandboxService: Docker sandboxes, their files and executions.

Its health follows Docker's availability; it offers a project-deletion hook (a deleted
project's sandboxes end with it), its system counters, and the sandbox port agent runs
use (server/core/ports.py)."""

from __future__ import annotations

from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.limits import UserShares
from server.core.metrics import current_metrics
from server.core.module import BuildContext, ServiceModule
from server.sandbox import store
from server.sandbox.artifact_code import ArtifactCode
from server.sandbox.cancel import ExecutionCancels
from server.sandbox.parts import assemble
from server.sandbox.port import SandboxForRuns
from server.sandbox.service import SandboxService


def build(ctx: BuildContext) -> ServiceModule:
    parts = assemble(
        ctx.settings,
        ctx.sessions,
        UserShares(ctx.hooks.limits, ctx.settings),
        ctx.cancels,
        ctx.holds,
    )
    servicer = SandboxService(
        parts.lifecycle,
        parts.executions,
        parts.files,
        ctx.page_tokens,
        ExecutionCancels(ctx.sessions, ctx.cancels),
        ArtifactCode(ctx.hooks.artifacts),
    )
    metrics = current_metrics()
    if metrics is not None:
        connection = parts.connection
        metrics.labelled_gauge(
            "forge_sandboxes",
            "live sandboxes by Docker host and state, exported by the process holding the "
            "host's duties (counted every reaper interval)",
            ("host", "state"),
            connection.sandboxes_by_host,
        )
        metrics.labelled_gauge(
            "forge_sandbox_pool_ready",
            "warm containers ready by Docker host and runtime, exported by the process holding "
            "the host's duties",
            ("host", "runtime"),
            connection.pool_by_host,
        )
        metrics.labelled_gauge(
            "forge_docker_engine_up",
            "1 while a Docker engine answers this process, 0 while it does not",
            "host",
            connection.engines_answering,
        )
    return ServiceModule(
        name="sandbox",
        bindings=[ServiceBinding.of(sandbox_pb2, sandbox_pb2_grpc, "SandboxService", servicer)],
        # Starting connects to Docker (or keeps trying), reconciles, then starts the warm
        # pool and the reaper, in that order; stopping removes the warm pool and leaves
        # sandboxes running.
        background=[parts.connection],
        offers=Offers(
            project_deletion=[parts.lifecycle.project_deletion_hook],
            system_counters=store.system_counters(),
            sandbox=SandboxForRuns(parts.lifecycle, parts.executions, parts.files),
        ),
        health=parts.connection.follow,
    )
