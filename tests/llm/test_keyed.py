"""Providers bound to callers' own keys (server/llm/keyed.py): one per provider and key,
reused, the least recently used closed when too many are kept, all closed at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from server.config import Settings
from server.llm.keyed import KeyedProviders


def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        anthropic_base_url="http://127.0.0.1:9",
        gemini_base_url="http://127.0.0.1:9",
        openai_endpoints={"openai": {"base_url": "http://127.0.0.1:9/v1", "models": ["m"]}},
    )


async def test_one_provider_per_key_reused_and_closed(tmp_path: Path) -> None:
    keyed = KeyedProviders(settings(tmp_path), kept=2)
    first = keyed.provider("anthropic", SecretStr("sk-one-12345"))
    assert keyed.provider("anthropic", SecretStr("sk-one-12345")) is first
    other = keyed.provider("anthropic", SecretStr("sk-two-12345"))
    assert other is not first
    gemini = keyed.provider("gemini", SecretStr("sk-one-12345"))
    assert gemini.name == "gemini"
    # Three kept at most two: the least recently used (`first`) was pushed out and closed.
    assert len(keyed) == 2
    await asyncio.gather(*keyed._closing)
    assert first._client.is_closed()  # type: ignore[attr-defined]
    assert not other._client.is_closed()  # type: ignore[attr-defined]
    assert keyed.provider("anthropic", SecretStr("sk-one-12345")) is not first
    endpoint = keyed.provider("openai", SecretStr("sk-three-1234"))
    assert endpoint.name == "openai"
    await keyed.aclose()
    assert len(keyed) == 0


async def test_a_provider_that_takes_no_keys_is_refused(tmp_path: Path) -> None:
    keyed = KeyedProviders(settings(tmp_path))
    assert keyed.provider_names == {"anthropic", "gemini", "openai"}
    for name in ("echo", "ollama", ""):
        with pytest.raises(ValueError, match="takes no keys"):
            keyed.provider(name, SecretStr("sk-whatever-1"))
    await keyed.aclose()
