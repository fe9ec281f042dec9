"""20 concurrent logins in a loop while a health probe measures how long the server's event
loop keeps calls waiting."""

from __future__ import annotations

import asyncio
import time

import grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.loadgen.common import args, emit

PASSWORD = "Bench-Passw0rd"


async def probe(health: health_pb2_grpc.HealthStub, until: float, rtts: list[float]) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        rtts.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)


async def main() -> None:
    params = args()
    port, seconds, concurrency = params["port"], params["seconds"], params["concurrency"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        email = "bench-login@example.com"
        await auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=30)

        idle: list[float] = []
        await probe(health, time.perf_counter() + 2, idle)

        loaded: list[float] = []
        logins = 0
        started = time.perf_counter()
        until = started + seconds

        async def worker() -> None:
            nonlocal logins
            while time.perf_counter() < until:
                await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=60)
                logins += 1

        await asyncio.gather(probe(health, until, loaded), *(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    emit({"logins": logins, "elapsed": elapsed, "idle_rtts": idle, "loaded_rtts": loaded})


if __name__ == "__main__":
    asyncio.run(main())
