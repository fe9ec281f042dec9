"""bcrypt (cost 12) runs off the event loop: while 20 logins hash, health checks started
after them all complete before most logins do (were the loop hashing, they would wait
behind nearly all of them)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.conftest import make_settings
from tests.support.accounts import login, register


@pytest.fixture(scope="module")
async def costly_server(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    url = await postgres.ensure_database("forge_bcrypt")
    app = ForgeServer(make_settings(url, tmp_path_factory.mktemp("bcrypt"), bcrypt_rounds=12))
    await app.start()
    yield app
    await app.stop(grace=0)


async def test_health_answers_while_logins_hash(costly_server: ForgeServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{costly_server.port}") as channel:
        account = await register(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def timed_login() -> float:
            await login(channel, account.email)
            return time.perf_counter()

        async def timed_health() -> float:
            response = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
            return time.perf_counter()

        logins = [asyncio.create_task(timed_login()) for _ in range(20)]
        await asyncio.sleep(0)  # let the login requests go out first
        health_done = await asyncio.gather(*(timed_health() for _ in range(50)))
        logins_done = await asyncio.gather(*logins)
    assert max(health_done) < statistics.median(logins_done)
