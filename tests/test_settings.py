"""List settings read from the environment as "a, b" or as a JSON list."""

from __future__ import annotations

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
