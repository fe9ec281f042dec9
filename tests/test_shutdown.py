"""SIGTERM: health goes NOT_SERVING, new calls are refused, in-flight calls get the grace
period, and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from forge.testing.v1 import testing_pb2, testing_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.db.embedded import EmbeddedPostgres
from tests.support.process import ServerProcess

GRACE_SECONDS = 2.0


@pytest.fixture
async def server_process(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    url = await postgres.ensure_database("forge_shutdown")
    process = ServerProcess(
        {
            "FORGE_DATABASE_URL": url,
            "FORGE_DATA_DIR": str(tmp_path_factory.mktemp("shutdown")),
            "FORGE_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "FORGE_LOG_FORMAT": "text",
        },
        with_testing_service=True,
    )
    await process.start()
    yield process
    await process.kill()


async def test_sigterm_drains_and_exits_zero(server_process: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_process.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(watch.read(), 10)
        assert first.status == health_pb2.HealthCheckResponse.SERVING

        ticks = testing_pb2_grpc.TestingServiceStub(channel).StreamTicks(
            testing_pb2.StreamTicksRequest(count=0, interval_ms=50)
        )
        first_tick = await asyncio.wait_for(ticks.read(), 10)
        assert isinstance(first_tick, testing_pb2.StreamTicksResponse)
        assert first_tick.tick == 1

        sent = time.monotonic()
        server_process.send_signal(signal.SIGTERM)

        update = await asyncio.wait_for(watch.read(), 5)
        assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
        not_serving_at = time.monotonic()

        # New calls are refused once draining has begun.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server_process.port}") as fresh:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await testing_pb2_grpc.TestingServiceStub(fresh).Echo(
                    testing_pb2.EchoRequest(message="late"), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        # The in-flight stream keeps flowing during the grace period, then ends.
        received_during_grace = 0

        async def drain() -> None:
            nonlocal received_during_grace
            while await asyncio.wait_for(ticks.read(), GRACE_SECONDS + 5) is not grpc.aio.EOF:
                received_during_grace += 1

        with pytest.raises(grpc.aio.AioRpcError):
            await drain()
        ended_at = time.monotonic()
        assert received_during_grace > 0
        assert not_serving_at <= ended_at
        assert ended_at - sent <= GRACE_SECONDS + 3

    assert await server_process.wait(timeout=GRACE_SECONDS + 15) == 0, server_process.text()
