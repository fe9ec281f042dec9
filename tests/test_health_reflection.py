"""Health per service and the reflection API."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.app import ForgeServer
from server.config import Settings
from tests.conftest import make_settings
from tests.support.testing_service import TEST_MODULES

FORGE_SERVICES = [
    "forge.auth.v1.AuthService",
    "forge.projects.v1.ProjectService",
    "forge.agents.v1.AgentService",
    "forge.sandbox.v1.SandboxService",
    "forge.artifacts.v1.ArtifactService",
    "forge.deployments.v1.DeploymentService",
]


@pytest.mark.parametrize("service", ["", *FORGE_SERVICES])
async def test_health_check_serving(channel: grpc.aio.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_list_reports_every_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.List(health_pb2.HealthListRequest(), timeout=5)
    statuses = {name: entry.status for name, entry in response.statuses.items()}
    assert {"", *FORGE_SERVICES} <= set(statuses)
    assert set(statuses.values()) == {health_pb2.HealthCheckResponse.SERVING}


async def test_health_check_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await health.Check(health_pb2.HealthCheckRequest(service="forge.nope.v1.X"), timeout=5)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_every_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: set[str] = set()
    async for response in stub.ServerReflectionInfo(requests(), timeout=5):
        names.update(s.name for s in response.list_services_response.service)
    assert set(FORGE_SERVICES) <= names
    assert "grpc.health.v1.Health" in names


async def test_reflection_describes_a_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="forge.projects.v1.ProjectService"
        )

    async for response in stub.ServerReflectionInfo(requests(), timeout=5):
        protos = response.file_descriptor_response.file_descriptor_proto
        assert protos, response
        break


async def test_production_defaults_keep_reflection_off_and_grpc_on_loopback(
    database_url: str, tmp_path: Path
) -> None:
    assert Settings().listen_address.startswith("127.0.0.1:")
    settings = make_settings(
        database_url,
        tmp_path,
        environment="production",
        jwt_secret="p" * 32,
        provider_key_encryption_keys=[base64.b64encode(os.urandom(32)).decode()],
    )
    assert not settings.reflection_enabled
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as production:
            stub = reflection_pb2_grpc.ServerReflectionStub(production)

            async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
                yield reflection_pb2.ServerReflectionRequest(list_services="")

            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in stub.ServerReflectionInfo(requests(), timeout=5):
                    pass
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            health = health_pb2_grpc.HealthStub(production)
            served = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert served.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await app.stop(grace=0)
