"""9. Worker scaling: GetProject QPS (JWT + PostgreSQL, 50 in flight) with FORGE_WORKERS=1 and
FORGE_WORKERS=2 in the same run, and their ratio.

The load generator stays pinned to its core as in the unary benchmark. One worker is pinned to
the server core; two workers get the server core and one more: another core when the machine
has one to spare, else the load generator's (on 2 cores the workers then share it with the
load, and the ratio says what a second process gains there, not what it gains on a machine
with a core for each)."""

from __future__ import annotations

import os

from bench.bench_unary import CONCURRENCY, WARMUP_SECONDS, _setup
from bench.harness import LOAD_CORE, SERVER_CORE, Report, Row, run_load
from bench.infra import Infra, forge_server

B = "scaling"
SECONDS = 3.0
CHANNELS = 8
"""Connections the load spreads over (the kernel hands each to one worker)."""


def _cores_for_two() -> str:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    spare = [c for c in cores if str(c) not in (SERVER_CORE, LOAD_CORE)]
    return f"{SERVER_CORE},{spare[0] if spare else LOAD_CORE}"


async def _qps(infra: Infra, workers: int, core: str, seconds: float) -> tuple[float, int]:
    env = {
        "FORGE_BCRYPT_ROUNDS": "4",
        "FORGE_WORKERS": str(workers),
        "FORGE_SHUTDOWN_DRAIN_SECONDS": "0",
    }
    async with forge_server(infra, env, core=core) as server:
        token, project_id = await _setup(server.port)
        call = {
            "port": server.port,
            "method": "get_project",
            "token": token,
            "project_id": project_id,
            "concurrency": CONCURRENCY,
            "channels": CHANNELS,
        }
        await run_load("unary", {**call, "seconds": WARMUP_SECONDS})
        result = await run_load("unary", {**call, "seconds": seconds})
    return result["calls"] / result["elapsed"], int(result["errors"])


async def run(infra: Infra, report: Report, seconds: float = SECONDS) -> None:
    two_cores = _cores_for_two()
    one, one_errors = await _qps(infra, 1, SERVER_CORE, seconds)
    two, two_errors = await _qps(infra, 2, two_cores, seconds)
    errors = f", errors {one_errors} / {two_errors}" if one_errors or two_errors else ""
    report.add(
        Row(B, "GetProject QPS, 1 worker", f"{one:,.0f}", note=f"core {SERVER_CORE}"),
        Row(B, "GetProject QPS, 2 workers", f"{two:,.0f}", note=f"cores {two_cores}"),
        Row(
            B,
            "2 workers / 1 worker QPS",
            f"{two / one:.2f}x",
            note=f"load generator on core {LOAD_CORE}{errors}",
        ),
    )
