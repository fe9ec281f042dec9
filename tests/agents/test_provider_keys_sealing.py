"""Provider keys at rest (server/core/sealing.py): AES-256-GCM bound to the row,
rotation, and the configurations the server refuses to start with."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from server.agents.key_binding import RowBinding
from server.config import Settings
from server.core.keys import InsecureConfiguration
from server.core.sealing import KeySealer, KeyUnavailable, Sealed, key_id_of

SECRET = b"s" * 32


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


def binding(provider: str = "openai") -> RowBinding:
    return RowBinding(uuid.uuid4(), uuid.uuid4(), None, provider)


def test_a_sealed_key_opens_only_for_its_own_row() -> None:
    sealer = KeySealer([os.urandom(32)])
    row = binding()
    sealed = sealer.seal(row, "sk-secret-12345")
    assert b"sk-secret" not in sealed.ciphertext
    assert sealer.open(row, sealed) == "sk-secret-12345"
    moved = [
        RowBinding(uuid.uuid4(), row.user_id, None, row.provider),
        RowBinding(row.row_id, uuid.uuid4(), None, row.provider),
        RowBinding(row.row_id, None, row.user_id, row.provider),
        RowBinding(row.row_id, row.user_id, None, "gemini"),
    ]
    for other in moved:
        with pytest.raises(KeyUnavailable):
            sealer.open(other, sealed)
    tampered = Sealed(sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]), sealed.key_id)
    with pytest.raises(KeyUnavailable):
        sealer.open(row, tampered)


def test_the_first_key_seals_and_every_key_opens(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    row = binding()
    sealed_old = KeySealer([old]).seal(row, "sk-old-key-123")
    rotated = KeySealer.from_settings(
        settings(tmp_path, provider_key_encryption_keys=f"{b64(new)}, {b64(old)}"), SECRET
    )
    assert rotated.current_key_id == key_id_of(new)
    assert rotated.open(row, sealed_old) == "sk-old-key-123"
    assert rotated.seal(row, "x" * 10).key_id == key_id_of(new)
    with pytest.raises(KeyUnavailable):
        KeySealer([new]).open(row, sealed_old)


def test_development_without_keys_derives_one_from_the_server_secret(tmp_path: Path) -> None:
    first = KeySealer.from_settings(settings(tmp_path), SECRET)
    again = KeySealer.from_settings(settings(tmp_path), SECRET)
    other = KeySealer.from_settings(settings(tmp_path), b"o" * 32)
    row = binding()
    sealed = first.seal(row, "sk-dev-key-1234")
    assert again.open(row, sealed) == "sk-dev-key-1234"
    with pytest.raises(KeyUnavailable):
        other.open(row, sealed)
    # Configuring keys later: the first seals, the derived one still opens (to be re-sealed).
    configured = KeySealer.from_settings(
        settings(tmp_path, provider_key_encryption_keys=b64(os.urandom(32))), SECRET
    )
    assert configured.current_key_id != first.current_key_id
    assert configured.open(row, sealed) == "sk-dev-key-1234"


def test_production_without_keys_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfiguration, match="FORGE_PROVIDER_KEY_ENCRYPTION_KEYS"):
        KeySealer.from_settings(
            settings(tmp_path, environment="production", jwt_secret="p" * 32), SECRET
        )
    good = b64(os.urandom(32))
    sealer = KeySealer.from_settings(
        settings(
            tmp_path,
            environment="production",
            jwt_secret="p" * 32,
            provider_key_encryption_keys=good,
        ),
        SECRET,
    )
    assert sealer.key_ids == {key_id_of(base64.b64decode(good))}


@pytest.mark.parametrize(
    "configured",
    ["not base64!", b64(os.urandom(16)), f"{b64(os.urandom(32))},{b64(os.urandom(31))}"],
)
def test_malformed_keys_refuse_to_start_without_quoting_them(
    tmp_path: Path, configured: str
) -> None:
    with pytest.raises(InsecureConfiguration) as refused:
        KeySealer.from_settings(settings(tmp_path, provider_key_encryption_keys=configured), SECRET)
    message = str(refused.value)
    assert "FORGE_PROVIDER_KEY_ENCRYPTION_KEYS" in message
    for part in configured.split(","):
        assert part not in message
