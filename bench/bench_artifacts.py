"""6. Artifacts: 20 MiB uploads and downloads through gRPC (MB/s) and how much the server's
RSS grows while they run, on the local blob store and on S3 (moto's server on loopback)."""

from __future__ import annotations

import re
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.harness import SERVER_CORE, Report, Row, median, run_load, spawn, stop
from bench.infra import BENCH_SECRET, ForgeProcess, Infra
from tests.fakes.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoS3Server

MiB = 2**20
SIZE = 20 * MiB
CHUNK = 256 * 1024
TRANSFERS = 2
RSS_GROWTH_TARGET = 32 * MiB
_SERVING = re.compile(rb"forge: serving on port (\d+)")
# No warm sandboxes (they would compete for the CPU) and a namespace of our own: a server's
# reconciliation removes unknown containers of its namespace.
_NO_SANDBOXES = {
    "FORGE_SANDBOX_POOL_SIZE": "0",
    # One server process (FORGE_WORKERS), pinned to the server core.
    "FORGE_WORKERS": "1",
    "FORGE_SANDBOX_NAMESPACE": f"bench-artifacts-{secrets.token_hex(4)}",
}


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak_rss(pid: int) -> bool:
    """Resets the kernel's RSS high-water mark (VmHWM) of `pid`; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _window(
    server: ForgeProcess, params: Mapping[str, Any]
) -> tuple[dict[str, Any], float, int]:
    """Runs one load phase: (result, server CPU seconds, RSS growth over the phase).

    The peak is the kernel's own high-water mark (VmHWM, reset before the phase), so a
    short spike between two samples is not missed; the sampled peak where it cannot be reset.
    """
    pid = server.measured.proc.pid
    exact = _reset_peak_rss(pid)
    before = _status_bytes(pid, "VmRSS")
    server.measured.begin()
    result = await run_load("artifacts", params)
    usage = await server.measured.end()
    peak = _status_bytes(pid, "VmHWM") if exact else usage.peak_rss_bytes
    return result, usage.cpu_seconds, max(0, peak - before)


@asynccontextmanager
async def _server(
    infra: Infra, url: str, data_dir: Path, env: Mapping[str, str]
) -> AsyncIterator[ForgeProcess]:
    """`python -m server` on a given database and data directory (as infra.forge_server), so
    that a second process can serve what the first one stored."""
    measured, match = await spawn(
        [sys.executable, "-m", "server"],
        core=SERVER_CORE,
        env={
            "FORGE_LISTEN_ADDRESS": "127.0.0.1:0",
            "FORGE_DATABASE_URL": url,
            "FORGE_DATA_DIR": str(data_dir),
            "FORGE_JWT_SECRET": BENCH_SECRET,
            "FORGE_LOG_LEVEL": "WARNING",
            "FORGE_BCRYPT_ROUNDS": "4",
            **_NO_SANDBOXES,
            **env,
        },
        ready=_SERVING,
    )
    assert match is not None
    try:
        yield ForgeProcess(measured, int(match.group(1)), url)
    finally:
        await stop(measured)


async def _measure(
    infra: Infra, report: Report, store: str, env: Mapping[str, str], note: str = ""
) -> None:
    """Uploads into one server process, then downloads from a fresh one (on the same data):
    each is measured in a process that has not yet done a large transfer."""
    url = await infra.database()
    data_dir = Path(tempfile.mkdtemp(dir=infra.workdir))
    async with _server(infra, url, data_dir, env) as server:
        base: dict[str, Any] = {"port": server.port, "chunk": CHUNK}
        session = await run_load("artifacts", {**base, "phase": "setup"})
        up, up_cpu, up_growth = await _window(
            server,
            {**base, **session, "phase": "upload", "size": SIZE, "count": TRANSFERS},
        )
        up_rss = server.measured.rss()
    async with _server(infra, url, data_dir, env) as server:
        base = {"port": server.port, "chunk": CHUNK, **session}
        # Warm-up: the small artifact the setup stored.
        await run_load("artifacts", {**base, "phase": "download", "ids": [session["warm_id"]]})
        down, down_cpu, down_growth = await _window(
            server, {**base, "phase": "download", "ids": up["ids"]}
        )
        down_rss = server.measured.rss()
    if any(size != SIZE for size in down["sizes"]):
        raise RuntimeError("a download came back with the wrong size")
    megabytes = SIZE / 1e6
    for what, result, cpu, growth, rss in (
        ("upload", up, up_cpu, up_growth, up_rss),
        ("download", down, down_cpu, down_growth, down_rss),
    ):
        seconds = median(result["times"])
        report.add(
            Row(
                "artifacts",
                f"{store}: 20 MiB {what}",
                f"{megabytes / seconds:.0f} MB/s",
                note=f"median of {TRANSFERS}, {seconds * 1000:.0f} ms each"
                + (f"; {note}" if note else ""),
            ),
            Row(
                "artifacts",
                f"{store}: server CPU per MiB {what}ed",
                f"{cpu / (TRANSFERS * SIZE / MiB) * 1000:.1f} ms",
            ),
            Row(
                "artifacts",
                f"{store}: peak server RSS growth during {what}s",
                f"{growth / MiB:.1f} MiB",
                f"< {RSS_GROWTH_TARGET // MiB} MiB",
                growth < RSS_GROWTH_TARGET,
                note=f"server RSS {rss / MiB:.0f} MiB after",
            ),
        )


async def run(infra: Infra, report: Report) -> None:
    await _measure(infra, report, "local", {"FORGE_BLOB_STORE": "local"})
    async with MotoS3Server() as moto:
        bucket = await moto.create_bucket()
        await _measure(
            infra,
            report,
            "S3 (moto)",
            {
                "FORGE_BLOB_STORE": "s3",
                "FORGE_S3_BUCKET": bucket,
                "FORGE_S3_ENDPOINT_URL": moto.endpoint_url,
                "FORGE_S3_REGION": REGION,
                "FORGE_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "FORGE_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "FORGE_S3_ADDRESSING_STYLE": "path",
            },
            note="moto keeps objects in memory in its own process",
        )
