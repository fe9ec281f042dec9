"""4. Sandbox: create from the warm pool vs cold, exec in a warm sandbox, RunCode hello-world,
through gRPC end to end; the peer is the docker CLI (`docker run -d`, `docker exec`), taking
turns with Forge call by call, and for exec also the Engine API called directly (the floor
under anything built on `docker exec`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from bench.harness import Report, Row, percentile, run_load
from bench.infra import ForgeProcess, Infra, forge_server

IMAGE = "forge-sandbox-python:1"
POOL_SIZE = 2
WARM_CREATES = 15
COLD_CREATES = 12
EXECS = 30
EXEC_WARMUP = 10
RUN_CODES = 15

WARM_CREATE_TARGET_MS = 30.0
EXEC_P50_TARGET_MS = 50.0
EXEC_P99_TARGET_MS = 150.0
RUN_CODE_TARGET_MS = 150.0


def _ms(seconds: float) -> float:
    return seconds * 1000


def _p(values: Sequence[float], q: float) -> float:
    return _ms(percentile(values, q))


class Phases:
    """Runs the load phases against one server, measuring its CPU time and RSS over each."""

    def __init__(self, server: ForgeProcess, params: dict[str, Any]) -> None:
        self._server = server
        self._params = params
        self.peak_rss = 0

    async def run(self, phase: str, n: int) -> tuple[dict[str, Any], float]:
        """(the load generator's result, server CPU seconds per operation)."""
        measured = self._server.measured
        measured.begin()
        result = await run_load("sandbox", {**self._params, "phase": phase, "n": n})
        usage = await measured.end()
        self.peak_rss = max(self.peak_rss, usage.peak_rss_bytes)
        return result, usage.cpu_seconds / n


async def _remove_containers(label: str) -> None:
    ps = await asyncio.create_subprocess_exec(
        "docker", "ps", "-aq", "--filter", f"label={label}", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await ps.communicate()
    if ids := out.decode().split():
        rm = await asyncio.create_subprocess_exec(
            "docker", "rm", "-f", "-v", *ids, stdout=asyncio.subprocess.DEVNULL
        )
        await rm.wait()


def _latency(
    name: str,
    times: Sequence[float],
    *,
    p50_target: float | None = None,
    p99_target: float | None = None,
    peer: Sequence[float] = (),
    peer_name: str = "",
    note: str = "",
) -> list[Row]:
    """Rows for p50 and p99, with the ratio to the peer's p50 when there is one."""
    p50, p99 = _p(times, 50), _p(times, 99)
    notes = [note] if note else []
    if peer:
        notes.insert(0, f"{p50 / _p(peer, 50):.2f}x {peer_name} p50 ({_p(peer, 50):.1f} ms)")
    return [
        Row(
            "sandbox",
            f"{name} p50",
            f"{p50:.1f} ms",
            f"≤ {p50_target:.0f} ms" if p50_target is not None else "",
            p50 <= p50_target if p50_target is not None else None,
            note="; ".join(notes),
        ),
        Row(
            "sandbox",
            f"{name} p99",
            f"{p99:.1f} ms",
            f"≤ {p99_target:.0f} ms" if p99_target is not None else "",
            p99 <= p99_target if p99_target is not None else None,
            note=f"{peer_name} p99 {_p(peer, 99):.1f} ms" if peer else "",
        ),
    ]


def _cpu(what: str, seconds: float) -> Row:
    return Row("sandbox", f"server CPU per {what}", f"{seconds * 1000:.1f} ms")


def _exec_rows(label: str, result: dict[str, Any]) -> list[Row]:
    api = _p(result["api_exec"], 50)
    floor = f"{_p(result['times'], 50) / api:.2f}x the Engine API called directly ({api:.1f} ms)"
    return _latency(
        f"exec `{label}`, warm sandbox",
        result["times"],
        p50_target=EXEC_P50_TARGET_MS,
        p99_target=EXEC_P99_TARGET_MS,
        peer=result["docker_exec"],
        peer_name="docker exec",
        note=f"{floor}; `started` event p50 {_p(result['started'], 50):.1f} ms",
    )


async def run(infra: Infra, report: Report) -> None:
    namespace = f"bench-{secrets.token_hex(4)}"
    peer_label = f"forge.bench={namespace}"
    env = {
        "FORGE_SANDBOX_NAMESPACE": namespace,
        "FORGE_SANDBOX_POOL_SIZE": str(POOL_SIZE),
        "FORGE_SANDBOX_POOL_SIZES": '{"node": 0}',
        "FORGE_BCRYPT_ROUNDS": "4",
    }
    try:
        async with forge_server(infra, env) as server:
            phases = Phases(
                server,
                {
                    "port": server.port,
                    "pool_size": POOL_SIZE,
                    "warmup": EXEC_WARMUP,
                    "image": IMAGE,
                    "label": peer_label,
                },
            )
            warm, warm_cpu = await phases.run("create_warm", WARM_CREATES)
            cold, cold_cpu = await phases.run("create_cold", COLD_CREATES)
            execs, exec_cpu = await phases.run("exec", EXECS)
            codes, code_cpu = await phases.run("run_code", RUN_CODES)
    finally:
        await _remove_containers(f"forge.namespace={namespace}")
        await _remove_containers(peer_label)
    if not warm["all_warm"] or not cold["all_cold"]:
        raise RuntimeError("a create that should have been warm (or cold) was not")

    report.add(
        *_latency(
            "create, warm pool",
            warm["times"],
            p50_target=WARM_CREATE_TARGET_MS,
            peer=warm["docker_run"],
            peer_name="docker run -d",
        ),
        _cpu("warm create (+ delete, pool refill)", warm_cpu),
        *_latency(
            "create, cold",
            cold["times"],
            peer=cold["docker_run"],
            peer_name="docker run -d",
        ),
        _cpu("cold create (+ delete)", cold_cpu),
        *_exec_rows("true", execs["true"]),
        *_exec_rows("python3 -c 'print(1)'", execs["python"]),
        # Per Forge exec: the peer's calls cost the server nothing.
        _cpu("exec", exec_cpu * EXECS / (2 * EXECS + EXEC_WARMUP)),
        *_latency(
            "RunCode hello-world, request → exit",
            codes["times"],
            p50_target=RUN_CODE_TARGET_MS,
            note=f"`started` event p50 {_p(codes['started'], 50):.1f} ms, "
            f"p99 {_p(codes['started'], 99):.1f} ms; first stdout p50 "
            f"{_p(codes['first_output'], 50):.1f} ms",
        ),
        _cpu("RunCode (+ pool refill)", code_cpu),
        Row("sandbox", "peak server RSS", f"{phases.peak_rss / 2**20:.0f} MiB"),
    )
