"""Secrets at rest (users' and projects' provider keys, deploy targets' tokens): AES-256-GCM
under key-encryption keys from Settings.

`Settings.provider_key_encryption_keys`: base64 keys of 32 bytes; the first seals, every one
opens (rotation: docs/provider-keys.md). Each stored secret records the id of the key that
sealed it (the first 8 hex digits of the SHA-256 of that key), and its associated data
binds the ciphertext to its row (a `Binding`: id, owner, what it is for): moved to another
row, it no longer opens. In development with no keys configured, one is derived from the
server secret (and still opens what it sealed once keys are configured); in production the
server then refuses to start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Protocol

from server.config import Settings
from server.core.aead import LazyAesGcm
from server.core.keys import InsecureConfiguration

KEY_BYTES = 32
NONCE_BYTES = 12
_DERIVATION_LABEL = b"forge provider key encryption v1"


class KeyUnavailable(Exception):
    """A stored key cannot be opened: the key that sealed it is no longer configured, or
    the ciphertext was altered or moved."""


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes
    """Nonce + AES-GCM ciphertext and tag."""
    key_id: str


class Binding(Protocol):
    """What a ciphertext is bound to: its row, as associated data."""

    def associated_data(self) -> bytes: ...


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _decode(value: str, position: int) -> bytes:
    """One configured key; the message never contains the key."""
    where = f"FORGE_PROVIDER_KEY_ENCRYPTION_KEYS: key {position}"
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InsecureConfiguration(
            f"{where} is not valid base64 (make one with: openssl rand -base64 32)"
        ) from None
    if len(key) != KEY_BYTES:
        raise InsecureConfiguration(
            f"{where} decodes to {len(key)} bytes, not {KEY_BYTES} "
            "(make one with: openssl rand -base64 32)"
        )
    return key


class KeySealer:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key-encryption key is needed")
        self._keys = {key_id_of(key): LazyAesGcm(key) for key in keys}
        self.current_key_id = key_id_of(keys[0])

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes) -> KeySealer:
        """Raises InsecureConfiguration for malformed keys, or none in production."""
        configured = [
            _decode(value.get_secret_value(), position)
            for position, value in enumerate(settings.provider_key_encryption_keys, start=1)
        ]
        if settings.environment == "production":
            if not configured:
                raise InsecureConfiguration(
                    "FORGE_PROVIDER_KEY_ENCRYPTION_KEYS must be set in production "
                    "(make one with: openssl rand -base64 32)"
                )
            return cls(configured)
        # In development the derived key stays able to open what it sealed (last), so that
        # configuring keys later re-seals the stored keys instead of losing them.
        derived = hmac.new(secret, _DERIVATION_LABEL, hashlib.sha256).digest()
        return cls([*configured, derived])

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def seal(self, binding: Binding, plain: str) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        aead = self._keys[self.current_key_id]
        sealed = aead.encrypt(nonce, plain.encode(), binding.associated_data())
        return Sealed(nonce + sealed, self.current_key_id)

    def open(self, binding: Binding, sealed: Sealed) -> str:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise KeyUnavailable(f"sealed with key {sealed.key_id}, which is not configured")
        data = sealed.ciphertext
        # Imported on use, as the cipher is: server/core/aead.py.
        from cryptography.exceptions import InvalidTag

        try:
            plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], binding.associated_data())
        except InvalidTag:
            raise KeyUnavailable("the ciphertext does not open for its row") from None
        return plain.decode()
