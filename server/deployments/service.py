"""DeploymentService servicer (protos in, domain calls, protos out; page tokens are handled
here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from forge.deployments.v1 import deployments_pb2, deployments_pb2_grpc
from google.protobuf import empty_pb2

from server.core.context import current_call
from server.core.pagination import PageTokens
from server.deployments import convert
from server.deployments.deploy_targets import DeployTargets
from server.deployments.deployments import Deployments

Context = grpc.aio.ServicerContext[Any, Any]


class DeploymentService(deployments_pb2_grpc.DeploymentServiceServicer):
    def __init__(
        self, targets: DeployTargets, deployments: Deployments, page_tokens: PageTokens
    ) -> None:
        self._targets = targets
        self._deployments = deployments
        self._pages = page_tokens

    async def CreateDeployTarget(
        self, request: deployments_pb2.CreateDeployTargetRequest, context: Context
    ) -> deployments_pb2.DeployTarget:
        created = await self._targets.create(
            current_call().require_caller(),
            request.project_id,
            convert.target_draft(request.deploy_target),
        )
        return convert.target_to_proto(created)

    async def GetDeployTarget(
        self, request: deployments_pb2.GetDeployTargetRequest, context: Context
    ) -> deployments_pb2.DeployTarget:
        target = await self._targets.get(current_call().require_caller(), request.deploy_target_id)
        return convert.target_to_proto(target)

    async def ListDeployTargets(
        self, request: deployments_pb2.ListDeployTargetsRequest, context: Context
    ) -> deployments_pb2.ListDeployTargetsResponse:
        page = self._pages.page(
            "deploy_targets", request.page_size, request.page_token, {"p": request.project_id}
        )
        result = await self._targets.list(current_call().require_caller(), request.project_id, page)
        return deployments_pb2.ListDeployTargetsResponse(
            deploy_targets=[convert.target_to_proto(target) for target in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def DeleteDeployTarget(
        self, request: deployments_pb2.DeleteDeployTargetRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._targets.delete(current_call().require_caller(), request.deploy_target_id)
        return empty_pb2.Empty()

    async def CreateDeployment(
        self, request: deployments_pb2.CreateDeploymentRequest, context: Context
    ) -> deployments_pb2.Deployment:
        created = await self._deployments.create(
            current_call().require_caller(),
            request.project_id,
            convert.deployment_draft(request.deployment),
        )
        return convert.deployment_to_proto(created)

    async def GetDeployment(
        self, request: deployments_pb2.GetDeploymentRequest, context: Context
    ) -> deployments_pb2.Deployment:
        deployment = await self._deployments.get(
            current_call().require_caller(), request.deployment_id
        )
        return convert.deployment_to_proto(deployment)

    async def ListDeployments(
        self, request: deployments_pb2.ListDeploymentsRequest, context: Context
    ) -> deployments_pb2.ListDeploymentsResponse:
        filters = {"p": request.project_id, "t": request.deploy_target_id}
        page = self._pages.page("deployments", request.page_size, request.page_token, filters)
        result = await self._deployments.list(
            current_call().require_caller(), request.project_id, request.deploy_target_id, page
        )
        return deployments_pb2.ListDeploymentsResponse(
            deployments=[convert.deployment_to_proto(item) for item in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def DeleteDeployment(
        self, request: deployments_pb2.DeleteDeploymentRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._deployments.delete(current_call().require_caller(), request.deployment_id)
        return empty_pb2.Empty()

    async def WatchDeployment(
        self, request: deployments_pb2.WatchDeploymentRequest, context: Context
    ) -> AsyncIterator[deployments_pb2.Deployment]:
        caller = current_call().require_caller()
        async for view in self._deployments.watch(caller, request.deployment_id):
            yield convert.deployment_to_proto(view)
