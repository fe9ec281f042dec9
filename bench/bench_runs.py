"""7. Agent runs: 30 concurrent echo runs, each a four-step script with one bash tool call in
a sandbox — runs per second, server CPU per model step, and how long a stored event takes to
reach a watcher, on the process that runs the loop and on a second process that learns of it
through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

from typing import Any

from bench.harness import Report, Row, percentile, run_load
from bench.infra import Infra, forge_server

B = "runs"
RUNS = 30
SANDBOXES = 4
# The echo model streams at full speed: the figures are the run machinery's, not a model's.
_ENV = {
    "FORGE_ECHO_TOKEN_DELAY_MS": "0",
    "FORGE_RUNS_PER_USER": str(RUNS),
    "FORGE_SANDBOX_POOL_SIZE": "0",
}


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.1f}"


def _rows(label: str, result: dict[str, Any], server: str) -> list[Row]:
    delays = [float(d) for d in result["delays"]]
    steps = max(int(result["steps"]), 1)
    cpu_us = float(result["cpu"][server]) / steps * 1e6
    return [
        Row(
            B,
            f"{label}: runs per second",
            f"{result['runs'] / result['seconds']:.1f}",
            note=f"{result['runs']} runs at once, {result['failed']} failed, "
            f"{result['seconds']:.1f} s, {result['events']} events",
        ),
        Row(B, f"{label}: server CPU per step", f"{cpu_us / 1000:.2f} ms", note=f"{steps} steps"),
        Row(
            B,
            f"{label}: event append → watcher p50 / p99",
            f"{_ms(delays, 0.5)} / {_ms(delays, 0.99)} ms",
        ),
    ]


async def run(infra: Infra, report: Report) -> None:
    async with forge_server(infra, _ENV) as first:
        pids = {"first": first.measured.proc.pid}
        same = await run_load(
            "runs",
            {
                "start_port": first.port,
                "watch_port": first.port,
                "runs": RUNS,
                "sandboxes": SANDBOXES,
                "pids": pids,
            },
        )
        report.add(*_rows("one process", same, "first"))
        async with forge_server(infra, _ENV, database_url=first.database_url) as second:
            across = await run_load(
                "runs",
                {
                    "start_port": first.port,
                    "watch_port": second.port,
                    "runs": RUNS,
                    "sandboxes": SANDBOXES,
                    "pids": {**pids, "second": second.measured.proc.pid},
                },
            )
        report.add(*_rows("watched from a second process", across, "first"))
