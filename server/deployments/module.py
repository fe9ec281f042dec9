"""Builds DeploymentService: a project's deploy targets (sealed tokens) and deployments,
published in the background (runner.py) through the targets of targets/.

Consumes the artifact port (an artifact version as a site's files)."""

from __future__ import annotations

from forge.deployments.v1 import deployments_pb2, deployments_pb2_grpc

from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.module import BuildContext, ServiceModule
from server.core.sealing import KeySealer
from server.deployments.cleanup import ProjectDeploymentsCleanup
from server.deployments.deploy_targets import DeployTargets
from server.deployments.deployments import Deployments
from server.deployments.runner import DeploymentRunner
from server.deployments.service import DeploymentService


def build(ctx: BuildContext) -> ServiceModule:
    settings = ctx.settings
    targets = DeployTargets(ctx.sessions, KeySealer.from_settings(settings, ctx.secret), settings)
    runner = DeploymentRunner(ctx.sessions, settings)
    deployments = Deployments(ctx.sessions, targets, ctx.hooks.artifacts, runner, settings)
    servicer = DeploymentService(targets, deployments, ctx.page_tokens)
    return ServiceModule(
        name="deployments",
        bindings=[
            ServiceBinding.of(deployments_pb2, deployments_pb2_grpc, "DeploymentService", servicer)
        ],
        background=[runner],
        offers=Offers(project_deletion=[ProjectDeploymentsCleanup(targets, runner)]),
    )
