"""A fixed number of HTTP GETs in flight for a while (aiohttp, keep-alive): the FastAPI peer's
GET /v1/projects/{id} with a bearer JWT."""

from __future__ import annotations

import asyncio
import resource
import time

import aiohttp

from bench.loadgen.common import args, emit


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    params = args()
    seconds: float = params["seconds"]
    concurrency: int = params["concurrency"]
    url = f"http://127.0.0.1:{params['port']}/v1/projects/{params['project_id']}"
    headers = {"authorization": f"Bearer {params['token']}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def call() -> bool:
            async with http.get(url) as response:
                await response.read()
                return response.status == 200

        if not await call():
            raise RuntimeError("the peer does not answer GET /v1/projects/{id} with 200")

        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        cpu_started = _cpu()
        until = started + seconds

        async def worker() -> None:
            nonlocal errors
            while (begun := time.perf_counter()) < until:
                if await call():
                    latencies.append(time.perf_counter() - begun)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = _cpu() - cpu_started
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
