"""GET /healthz on Envoy, for load balancers: it follows the server's gRPC health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiohttp
import pytest
from grpc_health.v1 import health_pb2

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from tests.conftest import TEST_DESCRIPTOR, make_settings
from tests.support.testing_service import TEST_MODULES
from tests.support.waiting import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Envoy checks every 5 s and needs two failures: leave room on a busy machine.
HEALTH_FOLLOWS_WITHIN = 45.0


@pytest.fixture
async def own_server(database_url: str, tmp_path: Path) -> AsyncIterator[ForgeServer]:
    app = ForgeServer(make_settings(database_url, tmp_path / "data"), TEST_MODULES)
    await app.start()
    yield app
    await app.stop(grace=0)


async def _healthz(envoy: EnvoyProcess) -> tuple[int, object]:
    async with aiohttp.ClientSession() as http, http.get(f"{envoy.base_url}/healthz") as answer:
        return answer.status, await answer.json()


async def test_healthz_follows_the_servers_health(own_server: ForgeServer) -> None:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=own_server.port,
        descriptor_path=TEST_DESCRIPTOR,
        listen_host="127.0.0.1",
    )
    async with EnvoyProcess(config) as envoy:

        async def answers(status: int, state: str) -> bool:
            return await _healthz(envoy) == (status, {"status": state})

        def follows(status: int, state: str) -> Awaitable[bool]:
            return eventually(
                lambda: answers(status, state), timeout=HEALTH_FOLLOWS_WITHIN, interval=0.5
            )

        await follows(200, "SERVING")
        await own_server.health.set("", NOT_SERVING)
        await follows(503, "NOT_SERVING")
        await own_server.health.set("", SERVING)
        await follows(200, "SERVING")
