"""List settings read from the environment as "a, b" or as a JSON list."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from server.config import Settings


@pytest.mark.parametrize("value", ["127.0.0.1, ::1", '["127.0.0.1", "::1"]'])
def test_list_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FORGE_TRUSTED_PROXIES", value)
    monkeypatch.setenv("FORGE_ADMIN_EMAILS", value.replace("127.0.0.1", "Ada@Example.com"))
    settings = Settings()
    assert settings.trusted_proxies == ["127.0.0.1", "::1"]
    assert settings.admin_emails == ["ada@example.com", "::1"]


def test_no_proxy_is_trusted_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGE_TRUSTED_PROXIES", raising=False)
    assert Settings().trusted_proxies == []


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("FORGE_HISTORY_TOKEN_BUDGET", "lots", "history_token_budget"),
        ("FORGE_OPENAI_ENDPOINTS", "{not json", "openai_endpoints"),
    ],
)
def test_a_bad_setting_refuses_to_start_in_one_line(variable: str, value: str, named: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "server"],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    lines = [line for line in finished.stderr.splitlines() if line.startswith("forge:")]
    assert len(lines) == 1, finished.stderr
    assert named in lines[0]
    assert "Traceback" not in finished.stderr


@pytest.mark.parametrize(
    "value",
    [
        "unix:///var/run/docker.sock, tcp://10.0.0.2:2376",
        '["unix:///var/run/docker.sock", {"url": "tcp://10.0.0.2:2376"}]',
    ],
)
def test_docker_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FORGE_DOCKER_HOSTS", value)
    monkeypatch.setenv("FORGE_DOCKER_TLS_DIR", "/etc/forge/docker-tls")
    settings = Settings()
    first, second = settings.docker_hosts
    assert first.url == "unix:///var/run/docker.sock"
    assert settings.tls_dir_of(first) is None
    assert str(settings.tls_dir_of(second)) == "/etc/forge/docker-tls"


@pytest.mark.parametrize(
    ("hosts", "complaint"),
    [
        ("tcp://10.0.0.2:2376", "TCP without TLS"),
        ("ssh://builder", "neither unix:// nor tcp://"),
        ("unix:///a.sock, unix:///a.sock", "names an engine twice"),
    ],
)
def test_docker_hosts_that_cannot_work_refuse_to_start(hosts: str, complaint: str) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "FORGE_DOCKER_TLS_DIR"}
    finished = subprocess.run(
        [sys.executable, "-m", "server"],
        env={**environment, "FORGE_DOCKER_HOSTS": hosts},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert complaint in finished.stderr
