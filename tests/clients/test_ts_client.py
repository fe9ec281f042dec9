"""The TypeScript client (clients/ts) against the real server and Envoy: its Node test suite
(test/*.test.ts, Node's test runner) runs over gRPC to the server, gRPC through Envoy and
gRPC-Web through Envoy. This test generates and compiles the package first (npm run build:
buf + protoc-gen-es, tsc), so it never runs a stale build. Without npm's packages installed
(`npm ci` at the repo root, which `make check` runs) it skips, and fails in CI."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from gateway.launcher import EnvoyProcess
from server.app import ForgeServer

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "clients" / "ts"
NEEDED = [REPO_ROOT / "node_modules" / ".bin" / tool for tool in ("buf", "protoc-gen-es", "tsc")]
BUILD_TIMEOUT = 180.0
TEST_TIMEOUT = 240.0
# 4 routes (gRPC to the server, gRPC via Envoy, gRPC-Web from Node and with fetch) x 4
# tests, and the CORS preflight of a browser.
MIN_TESTS = 17


def _npm() -> str:
    npm = shutil.which("npm")
    missing = [str(path.relative_to(REPO_ROOT)) for path in NEEDED if not path.exists()]
    if npm and not missing:
        return npm
    why = "npm is not installed" if not npm else f"npm ci has not been run ({missing[0]} missing)"
    if os.environ.get("CI") == "true":
        raise AssertionError(f"{why}: CI must run the TypeScript client's tests")
    pytest.skip(why)


async def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    """Runs `command` in clients/ts without blocking the event loop (the server under test
    runs in it); returns its output, or fails the test with it."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=PACKAGE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(
            f"{' '.join(command)} took over {timeout:.0f} s:\n{out.decode(errors='replace')}"
        )
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {proc.returncode}:\n{text}")
    return text


async def test_typescript_client_over_grpc_and_grpc_web(
    forge: ForgeServer, envoy: EnvoyProcess
) -> None:
    npm = _npm()
    env = {
        **os.environ,
        # scripts/gen in clients/ts reads the googleapis protos of this interpreter's wheels.
        "PYTHON": sys.executable,
        "FORGE_GRPC_URL": f"http://127.0.0.1:{forge.port}",
        "FORGE_GATEWAY_URL": envoy.base_url,
        "FORGE_ECHO_TOKEN_DELAY_MS": str(forge.settings.echo_token_delay_ms),
        "NO_COLOR": "1",
    }
    await _run([npm, "run", "build"], env, BUILD_TIMEOUT)
    report = await _run([npm, "test"], env, TEST_TIMEOUT)
    # Every test of every route ran and passed (a suite that found no test must not pass).
    counts = dict(re.findall(r"^\u2139 (tests|pass|fail) (\d+)$", report, re.MULTILINE))
    assert int(counts.get("tests", "0")) >= MIN_TESTS, report
    assert counts.get("pass") == counts["tests"], report
