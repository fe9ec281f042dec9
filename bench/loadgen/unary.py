"""A fixed number of unary gRPC calls in flight for a while: GetProject with a JWT, or the
public TestingService.Echo (for the bare-servicer vs interceptor comparison)."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.testing.v1 import testing_pb2, testing_pb2_grpc

from bench.loadgen.common import args, emit

Call = Callable[[], Awaitable[Any]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _call(channel: grpc.aio.Channel, params: dict[str, Any]) -> Call:
    if params["method"] == "echo":
        echo = testing_pb2_grpc.TestingServiceStub(channel)
        request = testing_pb2.EchoRequest(message="hello")
        return lambda: echo.Echo(request, timeout=30)
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    get = projects_pb2.GetProjectRequest(project_id=params["project_id"])
    metadata = (("authorization", f"Bearer {params['token']}"),)
    return lambda: projects.GetProject(get, metadata=metadata, timeout=30)


async def main() -> None:
    params = args()
    seconds: float = params["seconds"]
    concurrency: int = params["concurrency"]
    # `channels` connections of their own (server workers are picked per connection); the
    # callers take them in turn.
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{params['port']}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(params.get("channels", 1))
    ]
    try:
        calls = [_call(channel, params) for channel in channels]
        for call in calls:
            await call()  # connected, and the call works

        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        cpu_started = _cpu()
        until = started + seconds

        async def worker(call: Call) -> None:
            nonlocal errors
            while (begun := time.perf_counter()) < until:
                try:
                    await call()
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - begun)

        await asyncio.gather(*(worker(calls[i % len(calls)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = _cpu() - cpu_started
    finally:
        for channel in channels:
            await channel.close()
    emit(
        {
            "calls": len(latencies),
            "errors": errors,
            "elapsed": elapsed,
            "latencies": latencies,
            "client_cpu": cpu,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
