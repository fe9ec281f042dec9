"""AES-GCM whose library loads on first use: `cryptography` (its Rust extension alone is about
7 MiB of resident memory) stays out of a server that never seals anything.

Encrypts and decrypts exactly as `cryptography`'s AESGCM does, and raises what it raises
(`cryptography.exceptions.InvalidTag` for a ciphertext that does not open)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZES = (16, 24, 32)


class LazyAesGcm:
    """One AES-GCM key; the cipher is built on the first encrypt or decrypt."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in KEY_SIZES:  # as AESGCM(key) would, at once
            raise ValueError("AESGCM key must be 128, 192, or 256 bits.")
        self._key = key
        self._cipher: AESGCM | None = None

    def _built(self) -> AESGCM:
        # Two threads racing here would each build an equal cipher; either one serves.
        if self._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._cipher = AESGCM(self._key)
        return self._cipher

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        return self._built().encrypt(nonce, data, associated_data)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        return self._built().decrypt(nonce, data, associated_data)
