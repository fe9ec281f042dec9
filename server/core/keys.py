"""The server secret (signs access tokens and page tokens)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from server.config import Settings

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
_SECRET_FILE = "jwt_secret"


class InsecureConfiguration(RuntimeError):
    """The server refuses to start with this configuration."""


def server_secret(settings: Settings) -> bytes:
    """FORGE_JWT_SECRET; in development, a secret generated once and kept under data_dir."""
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise InsecureConfiguration(
                f"FORGE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
            )
        return secret
    if settings.environment == "production":
        raise InsecureConfiguration("FORGE_JWT_SECRET must be set in production")
    path = Path(settings.data_dir) / _SECRET_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(MIN_SECRET_BYTES).encode()
    # Written whole under a name of its own, then published with link(), which fails when
    # the file exists: processes starting at once (workers) all end with the one secret.
    draft = path.with_name(f".{_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return path.read_bytes().strip()
    finally:
        draft.unlink(missing_ok=True)
    log.warning("generated a development JWT secret", extra={"path": str(path)})
    return secret
