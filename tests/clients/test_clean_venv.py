"""Acceptance: a clean virtualenv with only `pip install ./clients/python` (no
googleapis-common-protos, no protobuf) sees the error reason, and its sync and async clients
call an authenticated RPC with a deadline without user-written interceptors."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from server.app import ForgeServer

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"

SCRIPT = """
import asyncio, json, sys
from forge_client import AsyncForge, Forge, ForgeError, auth

address, email = sys.argv[1], sys.argv[2]
result = {}
try:
    import google.rpc  # noqa: F401
    result["googleapis"] = True
except ImportError:
    result["googleapis"] = False

with Forge.connect(address) as forge:
    forge.register(email, "Passw0rd-venv", "Venv")
    try:
        forge.register(email, "Passw0rd-venv", "Venv")
    except ForgeError as error:
        result["sync_reason"] = error.reason
        result["request_id"] = error.request_id
    me = forge.with_options(timeout=5).auth.get_current_user(auth.GetCurrentUserRequest())
    result["sync_user"] = me.email


async def main():
    async with AsyncForge.connect(address) as forge:
        try:
            await forge.register(email, "Passw0rd-venv")
        except ForgeError as error:
            result["async_reason"] = error.reason
        await forge.login(email, "Passw0rd-venv")
        me = await forge.auth.get_current_user(auth.GetCurrentUserRequest(), timeout=5)
        result["async_user"] = me.email

asyncio.run(main())
print(json.dumps(result))
"""


async def run(*argv: str | Path, cwd: Path | None = None, timeout: float = 240) -> str:
    proc = await asyncio.create_subprocess_exec(
        *map(str, argv),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, output.decode(errors="replace")
    return output.decode()


@pytest.mark.timeout(300)
async def test_clean_virtualenv_with_only_the_client_package(
    forge: ForgeServer, tmp_path: Path
) -> None:
    # A copy, so that the build leaves nothing in the working tree.
    source = tmp_path / "client"
    shutil.copytree(
        CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    await run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", source)
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)

    email = f"venv-{uuid.uuid4().hex[:8]}@example.com"
    output = await run(python, script, f"127.0.0.1:{forge.port}", email, cwd=tmp_path)
    result = json.loads(output.strip().splitlines()[-1])

    assert result["googleapis"] is False
    assert result["sync_reason"] == "EMAIL_TAKEN"
    assert result["async_reason"] == "EMAIL_TAKEN"
    assert result["request_id"]
    assert result["sync_user"] == email
    assert result["async_user"] == email
