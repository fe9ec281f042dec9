"""Processes under measurement: pinned to a core, CPU time and peak RSS sampled via psutil."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE = "0"
LOAD_CORE = "1"


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def per_token_us(window: Mapping[str, Any], name: str) -> float:
    """CPU µs per token the process `name` spent over a chat load generator's window."""
    return float(window["cpu"][name]) / max(int(window["tokens"]), 1) * 1e6


def pinned(core: str, argv: Sequence[str]) -> list[str]:
    """Prefix `argv` with taskset when it exists (2-core machines: server and load apart)."""
    return ["taskset", "-c", core, *argv] if _has_taskset() else list(argv)


async def pin_process(pid: int, core: str) -> None:
    """Every thread of a running process (e.g. Envoy's workers) onto `core`."""
    if not _has_taskset():
        return
    proc = await asyncio.create_subprocess_exec(
        "taskset", "-a", "-p", "-c", core, str(pid), stdout=asyncio.subprocess.DEVNULL
    )
    await proc.wait()


def _has_taskset() -> bool:
    return any((Path(p) / "taskset").exists() for p in os.environ.get("PATH", "").split(":"))


@dataclass
class Usage:
    cpu_seconds: float
    peak_rss_bytes: int


class Measured:
    """A running child process whose CPU time and RSS are sampled while it works."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._ps = psutil.Process(proc.pid)
        self._peak_rss = 0
        self._sampler: asyncio.Task[None] | None = None
        self._cpu_start = 0.0

    def _cpu(self) -> float:
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def _rss(self) -> int:
        return int(self._ps.memory_info().rss)

    def begin(self) -> None:
        """Starts a measurement window."""
        self._cpu_start = self._cpu()
        self._peak_rss = self._rss()
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self._peak_rss = max(self._peak_rss, self._rss())
            await asyncio.sleep(0.02)

    async def end(self) -> Usage:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        return Usage(self._cpu() - self._cpu_start, max(self._peak_rss, self._rss()))

    def rss(self) -> int:
        return self._rss()


async def spawn(
    argv: Sequence[str],
    *,
    core: str,
    env: Mapping[str, str] | None = None,
    ready: re.Pattern[bytes] | None = None,
    timeout: float = 90,
) -> tuple[Measured, re.Match[bytes] | None]:
    """Starts a pinned child; with `ready`, waits for a matching stderr line."""
    proc = await asyncio.create_subprocess_exec(
        *pinned(core, argv),
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    match: re.Match[bytes] | None = None
    if ready is not None:
        assert proc.stderr is not None
        tail: list[bytes] = []

        async def wait_ready() -> re.Match[bytes]:
            assert proc.stderr is not None
            async for line in proc.stderr:
                tail.append(line)
                found = ready.search(line)
                if found:
                    return found
            raise RuntimeError(
                "process exited before it was ready:\n" + b"".join(tail[-30:]).decode()
            )

        match = await asyncio.wait_for(wait_ready(), timeout)
        asyncio.create_task(_drain(proc))  # noqa: RUF006 - drained until the process exits
    return Measured(proc), match


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    async for _ in proc.stderr:
        pass


async def stop(measured: Measured, timeout: float = 15) -> None:
    proc = measured.proc
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run_load(module: str, args: Mapping[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Runs a load generator (`python -m bench.loadgen.<module>`) pinned to the load core;
    it prints one JSON object with its measurements."""
    proc = await asyncio.create_subprocess_exec(
        *pinned(LOAD_CORE, [sys.executable, "-m", f"bench.loadgen.{module}", json.dumps(args)]),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator {module} failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@dataclass
class Row:
    benchmark: str
    metric: str
    value: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)
        for row in rows:
            print(
                f"  {row.benchmark:<12} {row.metric:<46} {row.value:>14}  {row.target}", flush=True
            )

    def markdown(self) -> str:
        lines = [
            "| benchmark | metric | value | target | met |",
            "|---|---|---:|---|---|",
        ]
        for r in self.rows:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            value = f"{r.value} ({r.note})" if r.note else r.value
            lines.append(f"| {r.benchmark} | {r.metric} | {value} | {r.target} | {met} |")
        return "\n".join(lines)
