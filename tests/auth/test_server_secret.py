"""The JWT secret: required in production, generated once and kept in development."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server.config import Settings
from server.core.keys import InsecureConfiguration, server_secret


def test_production_refuses_a_missing_or_short_secret(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfiguration):
        server_secret(Settings(environment="production", data_dir=tmp_path))
    with pytest.raises(InsecureConfiguration):
        server_secret(Settings(environment="production", jwt_secret="short", data_dir=tmp_path))
    good = "s" * 40
    assert server_secret(Settings(environment="production", jwt_secret=good)) == good.encode()


def test_development_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = server_secret(Settings(data_dir=tmp_path))
    second = server_secret(Settings(data_dir=tmp_path))
    assert first == second
    assert len(first) >= 32
    mode = (tmp_path / "jwt_secret").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
