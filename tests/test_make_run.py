"""`scripts/run` (what `make run` calls) brings up the server and Envoy on a fresh data
directory, answers REST with JSON, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp

from tests.support.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_run_serves_rest_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    grpc_port, gateway_port, admin_port = _free_port(), _free_port(), _free_port()
    env = {
        **os.environ,
        "FORGE_LISTEN_ADDRESS": f"127.0.0.1:{grpc_port}",
        "FORGE_DATA_DIR": str(tmp_path / "forge-data"),
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_ADMIN_PORT": str(admin_port),
        "FORGE_SANDBOX_NAMESPACE": f"test-make-run-{os.getpid()}",
        "FORGE_SANDBOX_POOL_SIZE": "0",
    }
    env.pop("FORGE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        str(REPO_ROOT / "scripts" / "run"),
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def answer() -> tuple[int, str, object] | None:
                if proc.returncode is not None:
                    raise AssertionError("scripts/run exited early")
                try:
                    async with http.post(
                        f"http://127.0.0.1:{gateway_port}/v1/auth:register",
                        json={"email": "ada@example.com", "password": "Passw0rd-ada"},
                    ) as r:
                        if r.status in (502, 503):  # Envoy up, server not yet
                            return None
                        return r.status, r.content_type, await r.json()
                except aiohttp.ClientConnectionError:
                    return None

            status, content_type, body = await eventually(answer, timeout=120, interval=0.2)
        assert content_type == "application/json"
        assert status == 200, body
        assert isinstance(body, dict)
        assert body["user"]["email"] == "ada@example.com"
        assert body["tokens"]["accessToken"]
        # The embedded database keeps its data under the data directory.
        assert (tmp_path / "forge-data" / "pgdata" / "PG_VERSION").exists()

        os.killpg(proc.pid, signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
