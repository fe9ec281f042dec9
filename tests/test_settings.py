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
