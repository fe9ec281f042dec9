"""The production-like deployment files are valid (images cannot be pulled here, so the
compose file is validated rather than run)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if os.environ.get("CI") == "true":
        raise AssertionError("docker-compose must be installed in CI (.ci/run installs it)")
    pytest.skip("docker-compose is not installed")


async def test_docker_compose_config_is_valid() -> None:
    command = _compose_command()
    proc = await asyncio.create_subprocess_exec(
        *command,
        "-f",
        str(REPO_ROOT / "docker-compose.yml"),
        "config",
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "FORGE_JWT_SECRET": "x" * 64,
            "FORGE_PROVIDER_KEY_ENCRYPTION_KEYS": base64.b64encode(bytes(32)).decode(),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    config = yaml.safe_load(out)
    assert set(config["services"]) >= {"postgres", "server", "envoy"}
    assert config["services"]["envoy"]["network_mode"] == "service:server"


def test_gateway_image_uses_the_same_envoy_config() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "FROM envoyproxy/envoy" in dockerfile
    assert "COPY gateway/envoy.yaml /etc/envoy/envoy.yaml" in dockerfile
